#!/usr/bin/env bash
# Services up, Python dependencies installed into .venv (reinstalled only when requirements change),
# and the database created. Sourced by run.sh and test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh

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
