#!/usr/bin/env bash
# Make sure MariaDB and Redis answer on 127.0.0.1, installing them with apt if they are missing,
# and that the build dependencies of mysqlclient are present. Idempotent; safe to run every time.
set -euo pipefail

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

need_pkgs=()
dpkg -s libmariadb-dev >/dev/null 2>&1 || need_pkgs+=(libmariadb-dev)
command -v pkg-config >/dev/null 2>&1 || need_pkgs+=(pkg-config)
command -v gcc >/dev/null 2>&1 || need_pkgs+=(gcc)
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need_pkgs+=(mariadb-server)
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  echo "services: installing ${need_pkgs[*]}"
  apt_install "${need_pkgs[@]}"
fi

if ! mysqladmin -uroot -h127.0.0.1 ping >/dev/null 2>&1; then
  echo "services: starting MariaDB"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
fi
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  echo "services: starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi

for _ in $(seq 1 60); do
  if mysqladmin -uroot -h127.0.0.1 ping >/dev/null 2>&1 && redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
    exit 0
  fi
  sleep 1
done
echo "services: MariaDB or Redis did not come up on 127.0.0.1 within 60 s" >&2
exit 1
