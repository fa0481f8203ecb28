"""The loadtest command on a tiny stream, so it cannot silently rot. Its figures are not asserted
(the machine is shared): its counts, its end-state check and its output files are."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from orders.models import Market

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_the_loadtest_runs_the_real_pipeline_and_writes_the_contracts_json_and_a_plot(tmp_path, redis_client):
    out = tmp_path / "result.json"

    call_command("loadtest", orders=400, rate=0, users=20, json_path=str(out))

    result = json.loads(out.read_text())
    pipeline = result["pipeline"]
    assert pipeline["orders"] == 400
    assert pipeline["invariants_ok"] is True, pipeline["problems"]
    assert pipeline["dead_lettered"] == 0
    assert pipeline["trades"] > 0
    # --rate 0 fills the stream first, so batches are full: 4 statements per 50 commands at most.
    assert 0 < pipeline["db_statements_per_order"] <= 0.1
    assert set(pipeline) >= {"seconds", "throughput", "p50_ms", "p99_ms", "max_ms"}
    assert set(result["environment"]) >= {"cpus", "python", "mysql", "redis", "batch_size", "commit"}
    assert out.with_suffix(".png").stat().st_size > 10_000
    assert not Market.objects.exists(), "the scratch market is dropped"
    leftovers = [k for k in redis_client.scan_iter() if k.startswith((b"order:", b"orders:", b"enqueued:"))]
    assert leftovers == [], "its orders' cache entries, stream and markers are dropped too"


def test_the_loadtest_refuses_bad_options_with_a_clear_message():
    with pytest.raises(CommandError, match="--rate"):
        call_command("loadtest", orders=10, rate=-1)
    with pytest.raises(CommandError, match="--sweep-rates"):
        call_command("loadtest", orders=10, sweep_rates="fast")
