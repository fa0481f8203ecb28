"""kill -9 of the default worker (the Procfile's: prefork pool of 2 on ``default,dead_letter``) while it
records a burst of dead letters over a slow database: none is lost, none recorded twice."""

from __future__ import annotations

import time

import pytest
from django.conf import settings

from bench import feed
from orders import invariants
from orders.models import DeadLetter
from spot import keys
from tests.faults.conftest import accept, assert_end_state, stream_settled, wait_until
from tests.pipeline.proxy import CuttableProxy

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

LETTERS = 40
VISIBILITY_S = 5  # the broker's redelivery delay for a dead worker's messages (production: 300 s)


def test_killing_the_default_worker_while_it_records_dead_letters_loses_none_and_records_none_twice(
    market, traders, redis_client, matchers, processes
):
    items = accept(market, traders, redis_client, 300, seed=41)
    totals = invariants.asset_totals(["btc", "usdt"])
    stream = keys.stream(market.code)
    chunk = len(items) // 8
    poison: list[str] = []
    for i in range(8):  # five garbage entries after each eighth of the orders
        feed.push(redis_client, market, items[i * chunk : (i + 1) * chunk if i < 7 else len(items)])
        poison += [redis_client.xadd(stream, {"c": f"garbage {i}-{n}"}).decode() for n in range(LETTERS // 8)]
    expected = set(poison)
    assert len(expected) == LETTERS

    proxy = CuttableProxy(int(settings.DATABASES["default"]["PORT"]))
    proxy.latency_s = 0.05  # each round trip of the recorder to the database takes 50 ms more
    env = {"CELERY_VISIBILITY_TIMEOUT_S": str(VISIBILITY_S), "RETRY_CAP_S": "1"}
    try:
        first = processes.default_worker(env={**env, "MYSQL_PORT": str(proxy.port)})
        matchers.start()
        wait_until(lambda: stream_settled(redis_client, market), 90, message="the stream, poison included, to settle")
        wait_until(lambda: DeadLetter.objects.count() >= 3, 60, message="some letters recorded")
        recorded_before = DeadLetter.objects.count()
        first.kill()  # kill -9 of the worker and its pool, mid-burst
        killed_at = time.monotonic()
        assert recorded_before < len(expected), "the burst ended before the kill: slow the recorder down"

        processes.default_worker(env=env)  # a new default worker, straight to the database
        wait_until(
            lambda: DeadLetter.objects.count() >= len(expected), 120, message="every letter recorded after the kill"
        )
        all_after = time.monotonic() - killed_at
        # A letter whose row committed just before the kill comes back after the visibility timeout (the
        # broker's restore scan runs every 10 s) and is counted then, once.
        wait_until(lambda: _counted(redis_client) >= len(expected), 60, message="every letter counted")
        counted_after = time.monotonic() - killed_at
    finally:
        proxy.close()

    assert set(DeadLetter.objects.values_list("entry_id", flat=True)) == expected  # none lost
    assert DeadLetter.objects.count() == len(expected)  # none twice
    assert _counted(redis_client) == len(expected)
    assert_end_state(market, [c for c, _ in items], totals)
    print(
        f"killed after {recorded_before}/{len(expected)} letters; all recorded {all_after:.1f} s and all counted "
        f"{counted_after:.1f} s after the kill (visibility timeout {VISIBILITY_S} s)"
    )


def _counted(redis_client) -> int:
    return sum(int(v) for v in redis_client.hgetall(keys.dead_letter_counts()).values())
