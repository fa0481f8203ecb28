#!/usr/bin/env bash
# The whole test suite on real MariaDB, Redis and Celery workers, plus lint, types, import contracts
# and the Prometheus alert rules.
# Usage: scripts/test.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy (matching core, commands, matcher, replay, settlement)"
.venv/bin/mypy
echo "== import contracts (docs/architecture.md)"
.venv/bin/lint-imports --no-cache
echo "== Prometheus config, alert rules and their unit tests (deploy/prometheus)"
promtool check config deploy/prometheus/prometheus.yml
promtool check rules deploy/prometheus/rules/*.yml
promtool test rules deploy/prometheus/tests/*.yml
echo "== pytest"
DJANGO_SETTINGS_MODULE=settings.test .venv/bin/python -m pytest \
  --cov --cov-report=term --cov-report=xml "$@"
