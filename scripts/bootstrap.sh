#!/usr/bin/env bash
# Services up, promtool present, Python dependencies installed into .venv (reinstalled only when requirements change),
# and the database created. Sourced by run.sh and test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh

# promtool checks deploy/prometheus in the test command; Debian's package prometheus has it. Only the
# tool is wanted: no recommended extras, and the server the package may start is stopped again.
if ! command -v promtool >/dev/null 2>&1; then
  echo "bootstrap: installing promtool (Debian package prometheus)"
  as_root=()
  [ "$(id -u)" = 0 ] || as_root=(sudo -n)
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  "${as_root[@]}" invoke-rc.d prometheus stop >/dev/null 2>&1 || true
fi

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements-dev.txt
  echo "$want" > "$stamp"
fi

mysql -uroot -h127.0.0.1 -e "CREATE DATABASE IF NOT EXISTS \`${MYSQL_DATABASE:-spot}\` CHARACTER SET utf8mb4"
