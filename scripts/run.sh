#!/usr/bin/env bash
# The whole exchange on this machine with demo data: web, one matcher per market queue, the default
# worker, beat and Flower (Procfile, run by honcho). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
mkdir -p var
export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-settings.dev}

.venv/bin/python manage.py migrate --noinput -v 0
seed=$(.venv/bin/python manage.py seed_demo)
echo "$seed"
cat <<INFO

  API            http://127.0.0.1:8000/api/v1/markets   (orders: /api/v1/orders, signed with an API key: DJANGO_SETTINGS_MODULE=settings.dev .venv/bin/python manage.py apikey create --user trader1 --scopes read,trade; docs/API.md)
  Django admin   http://127.0.0.1:8000/admin/        ($(echo "$seed" | grep 'admin login' | sed 's/admin login: //'))
  Flower         http://127.0.0.1:5555/
  Health         http://127.0.0.1:8000/health/live   http://127.0.0.1:8000/health/ready (503 until the DB, Redis and every matcher answer)
                 http://127.0.0.1:9101/health (match_btc)   http://127.0.0.1:9102/health (match_eth)
  Metrics        http://127.0.0.1:9100/metrics (web, every gunicorn worker; not on the API port)   http://127.0.0.1:9101/metrics (match_btc)   http://127.0.0.1:9102/metrics (match_eth)
  Prometheus     prometheus --config.file=deploy/prometheus/prometheus.yml   (scrapes the above; alert rules in deploy/prometheus/rules)
  Some traffic   make demo-load   (or: .venv/bin/python manage.py demo_load)

INFO
exec .venv/bin/honcho start -f Procfile
