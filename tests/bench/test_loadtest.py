"""The loadtest command on a tiny stream, so it cannot silently rot. Its figures are not asserted
(the machine is shared): its counts, its end-state check and its output files are."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from orders.models import Market

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_the_loadtest_runs_the_real_pipeline_and_writes_the_contracts_json_and_a_plot(tmp_path, redis_client):
    out = tmp_path / "result.json"
    progress = io.StringIO()

    call_command("loadtest", orders=400, rate=0, users=20, json_path=str(out), stderr=progress)

    result = json.loads(out.read_text())
    pipeline = result["pipeline"]
    assert pipeline["orders"] == 400
    assert pipeline["invariants_ok"] is True, pipeline["problems"]
    assert pipeline["dead_lettered"] == 0
    assert pipeline["trades"] > 0
    # --rate 0 fills the stream first, so batches are full: 4 statements per 50 commands at most (the
    # matcher's start-up, its epoch and rebuild, is not counted per order).
    assert 0 < pipeline["db_statements_per_order"] <= 4 / 50
    assert set(pipeline) >= {"seconds", "throughput", "p50_ms", "p99_ms", "max_ms"}
    assert set(result["environment"]) >= {"cpus", "python", "mysql", "redis", "batch_size", "commit"}
    assert out.with_suffix(".png").stat().st_size > 10_000
    assert not Market.objects.exists(), "the scratch market is dropped"
    leftovers = [k for k in redis_client.scan_iter() if k.startswith((b"order:", b"orders:", b"enqueued:"))]
    assert leftovers == [], "its orders' cache entries, stream and markers are dropped too"
    lines = progress.getvalue().splitlines()
    assert any(line.startswith("pipeline intake: ") and " orders accepted in " in line for line in lines), lines
    assert any(line.startswith("pipeline: 400 of 400 settled in ") for line in lines), lines


def test_the_loadtest_refuses_bad_options_with_a_clear_message():
    with pytest.raises(CommandError, match="--rate"):
        call_command("loadtest", orders=10, rate=-1)
    with pytest.raises(CommandError, match="--sweep-rates"):
        call_command("loadtest", orders=10, sweep_rates="fast")


def test_progress_says_how_far_a_long_phase_got_every_few_seconds_and_nothing_when_quiet():
    from bench.loadtest import Progress

    lines: list[str] = []
    done = iter(range(1, 1_000_000))
    with Progress(
        lines.append, "pipeline", "settled", 50_000, lambda: next(done) * 100, sent=lambda: 50_000, every_s=0.01
    ):
        while len(lines) < 3:
            time.sleep(0.005)
    with Progress(None, "pipeline", "settled", 50_000, lambda: 1 / 0, every_s=0.01):
        pass

    assert lines[0].startswith("pipeline: 100 of 50,000 settled after ")
    assert lines[0].endswith("/s), 50,000 sent")
    assert lines[-1].startswith("pipeline: 50,000 of 50,000 settled in ")


def _loadtest_on(database: str) -> subprocess.CompletedProcess[str]:
    """``manage.py loadtest`` in a process of its own, on ``database``."""
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, DJANGO_SETTINGS_MODULE=settings.SETTINGS_MODULE, MYSQL_DATABASE=database)
    command = [sys.executable, "manage.py", "loadtest", "--orders", "10", "--quiet"]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_on_a_database_without_tables_the_loadtest_says_to_run_migrate_instead_of_a_traceback():
    empty = f"{settings.DATABASES['default']['NAME']}_unmigrated"  # this test run's own, next to its test database
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{empty}`")
        cursor.execute(f"CREATE DATABASE `{empty}` CHARACTER SET utf8mb4")
    try:
        run = _loadtest_on(empty)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{empty}`")

    assert run.returncode == 2, run.stderr
    assert f"the database '{empty}' has no tables" in run.stderr
    assert "run `python manage.py migrate` first" in run.stderr
    assert "Traceback" not in run.stderr


def test_on_a_database_that_does_not_exist_the_loadtest_says_to_create_it():
    missing = f"{settings.DATABASES['default']['NAME']}_never_created"

    run = _loadtest_on(missing)

    assert run.returncode == 2, run.stderr
    assert f"the database '{missing}' does not exist" in run.stderr
    assert "Traceback" not in run.stderr
