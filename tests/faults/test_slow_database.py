"""A slow database: 20 ms added to every reply the matcher gets from MariaDB (the test's proxy). Order
latency grows by about the added round trips per batch; nothing breaks, nothing is lost."""

from __future__ import annotations

import statistics

import pytest
from django.conf import settings

from bench import feed
from orders import invariants
from spot import keys
from tests.faults.conftest import accept, assert_end_state, stream_settled, wait_until
from tests.pipeline.proxy import CuttableProxy

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ADDED_S = 0.020


def _latencies_ms(redis_client, market) -> list[int]:
    """Per command, from entering the stream to its batch committed and acknowledged (the matcher
    records them with MATCHING_RECORD_LATENCY); read and cleared."""
    key = keys.matcher_latency(market.code)
    values = [int(v.split(b":")[1]) for v in redis_client.lrange(key, 0, -1)]
    redis_client.delete(key)
    return values


def test_a_slow_database_makes_orders_slower_and_breaks_nothing(market, traders, redis_client, matchers):
    items = accept(market, traders, redis_client, 2000, seed=51)
    totals = invariants.asset_totals(["btc", "usdt"])
    proxy = CuttableProxy(int(settings.DATABASES["default"]["PORT"]))
    try:
        matchers.start(env={"MYSQL_PORT": str(proxy.port), "MATCHING_RECORD_LATENCY": "1"})
        wait_until(lambda: redis_client.exists(keys.heartbeat(market.code)), 60, message="the matcher to start")
        feed.push(redis_client, market, items[:1000], rate=500)
        wait_until(lambda: stream_settled(redis_client, market), 60, message="the first half at full speed")
        fast = _latencies_ms(redis_client, market)

        proxy.latency_s = ADDED_S
        feed.push(redis_client, market, items[1000:], rate=500)
        wait_until(lambda: stream_settled(redis_client, market), 120, message="the second half on a slow database")
        slow = _latencies_ms(redis_client, market)
    finally:
        proxy.close()

    assert len(fast) == 1000 and len(slow) == 1000  # every command committed and acknowledged once
    # A batch is at least one UPDATE round trip and a COMMIT on the slow connection: 2 x 20 ms.
    assert statistics.median(slow) >= 2 * ADDED_S * 1000
    assert_end_state(market, [c for c, _ in items], totals)
    p99 = statistics.quantiles
    print(
        f"order latency p50/p99: {statistics.median(fast):.0f}/{p99(fast, n=100)[98]:.0f} ms on a fast DB, "
        f"{statistics.median(slow):.0f}/{p99(slow, n=100)[98]:.0f} ms with {ADDED_S * 1000:.0f} ms added per reply"
    )
