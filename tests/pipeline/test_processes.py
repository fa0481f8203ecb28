"""The pipeline with real Celery matcher processes: end to end, kill -9, a second matcher, poison."""

from __future__ import annotations

import random
import threading
import time
from decimal import Decimal

import pytest

from bench import feed, workload
from matching.queue import RedisStreamOrderQueue
from orders import invariants
from orders.models import DeadLetter, Order, OrderStatus
from spot import keys
from tests.dead_letter_queue import record_dead_letters
from tests.pipeline.conftest import stream_settled, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

DB_RESUME_BOUND_S = 35  # from the database's return to a settled stream (the breaker probes after 30 s)


def _accept(market, traders, redis_client, count, seed):
    feed.publish_reference(redis_client, market, Decimal("30000.20"))
    commands = workload.generate(count, seed=seed, users=len(traders))
    return feed.accept(market, [u.id for u in traders], commands)


def _batches(redis_client, market) -> int:
    """Batches the matcher committed so far (its writer counts each after the commit)."""
    return int(redis_client.hget(keys.matcher_stats(market.code), "batches") or 0)


def _assert_end_state(market, commands, totals_before):
    assert not Order.objects.filter(status=OrderStatus.NEW).exists()
    assert invariants.trades_against_replay(market, commands) == []
    assert invariants.book_against_replay(market, commands) == []
    assert invariants.holds(market) == []
    assert invariants.crossed_book(market) == []
    assert invariants.duplicate_trades(market) == []
    assert invariants.conservation(totals_before, invariants.asset_totals(["btc", "usdt"])) == []


def test_a_matcher_worker_matches_a_stream_like_the_replay_with_one_celery_message_per_batch_or_fewer(
    market, traders, redis_client, matchers
):
    items = _accept(market, traders, redis_client, 2000, seed=3)
    totals = invariants.asset_totals(["btc", "usdt"])
    matchers.start()

    feed.push(redis_client, market, items, rate=4000)
    wait_until(lambda: stream_settled(redis_client, market), 60, message="the stream to be drained")

    _assert_end_state(market, [j for j, _ in items], totals)
    raw = redis_client.hgetall(f"matcher:stats:{market.code}")
    stats = {name: int(raw[name.encode()]) for name in ("commands", "tasks", "batches", "statements")}
    assert stats["commands"] == len(items)
    # Celery carries slices of many batches: never more than one message per batch (plus idle waits,
    # which are bounded by time, not by orders).
    assert stats["tasks"] <= stats["batches"] + 10
    assert stats["statements"] / stats["commands"] <= 0.2  # start-up included; steady state is tested in-process


def test_killing_the_matcher_at_random_moments_loses_and_duplicates_nothing(market, traders, redis_client, matchers):
    items = _accept(market, traders, redis_client, 4000, seed=5)
    totals = invariants.asset_totals(["btc", "usdt"])
    rng = random.Random(2026)
    matcher = matchers.start()
    pusher = threading.Thread(target=feed.push, args=(redis_client, market, items), kwargs={"rate": 1000})
    pusher.start()

    kills = 0
    while pusher.is_alive() and kills < 4:
        time.sleep(rng.uniform(0.3, 1.0))
        matcher.kill()
        kills += 1
        matcher = matchers.start()
    pusher.join()
    wait_until(lambda: stream_settled(redis_client, market), 90, message="the stream to be drained after the kills")

    assert kills >= 3
    _assert_end_state(market, [j for j, _ in items], totals)
    assert Order.objects.filter(coin="btc").count() == sum(1 for _, oid in items if oid)


def test_a_second_matcher_on_the_same_queue_stands_by_and_nothing_is_matched_twice(
    market, traders, redis_client, matchers
):
    items = _accept(market, traders, redis_client, 1500, seed=8)
    totals = invariants.asset_totals(["btc", "usdt"])
    first = matchers.start()
    wait_until(lambda: redis_client.exists(f"lease:{market.code}"), 30, message="the first matcher's lease")
    second = matchers.start()

    feed.push(redis_client, market, items, rate=3000)
    wait_until(lambda: stream_settled(redis_client, market), 60, message="the stream to be drained")

    _assert_end_state(market, [j for j, _ in items], totals)
    wait_until(lambda: "stands by (market btc_usdt" in second.log(), 15, message="the second matcher to stand by")
    assert (first.log() + second.log()).count("lease lease:btc_usdt acquired") == 1


def test_bad_entries_end_in_the_dead_letter_queue_after_three_deliveries_and_the_orders_behind_them_match(
    market, traders, redis_client, matchers
):
    items = _accept(market, traders, redis_client, 600, seed=9)
    totals = invariants.asset_totals(["btc", "usdt"])
    queue = RedisStreamOrderQueue(redis_client, market.code)
    queue.ensure_group()
    half = len(items) // 2
    feed.push(redis_client, market, items[:half])
    garbage = queue.push("this is not json")
    foreign = queue.push('{"op":"cancel","id":1,"market":"doge_usdt","cid":"20260123-a1b2c3d4e5f67890"}')
    feed.push(redis_client, market, items[half:])
    matchers.start()

    wait_until(lambda: stream_settled(redis_client, market), 60, message="the stream, bad entries included, to settle")

    _assert_end_state(market, [j for j, _ in items], totals)
    assert record_dead_letters() == 2  # what the default worker does (tests/pipeline/test_dead_letters.py)
    letters = {d.entry_id: d for d in DeadLetter.objects.all()}
    assert set(letters) == {garbage, foreign}
    assert letters[garbage].payload == "this is not json"
    assert "malformed command" in letters[garbage].reason
    assert "doge_usdt" in letters[foreign].reason
    assert letters[foreign].correlation_id == "20260123-a1b2c3d4e5f67890"
    assert all(d.deliveries == 3 for d in letters.values())


def test_cutting_the_matchers_database_connections_mid_stream_loses_and_duplicates_nothing(
    market, traders, redis_client, matchers
):
    from django.conf import settings
    from django.db import connection

    items = _accept(market, traders, redis_client, 3000, seed=12)
    totals = invariants.asset_totals(["btc", "usdt"])
    matchers.start()
    wait_until(lambda: redis_client.exists(f"lease:{market.code}"), 30, message="the matcher's lease")
    pusher = threading.Thread(target=feed.push, args=(redis_client, market, items), kwargs={"rate": 1500})
    pusher.start()

    cuts = 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID()")
        (own,) = cursor.fetchone()
        while pusher.is_alive() and cuts < 6:
            time.sleep(0.25)
            cursor.execute(
                "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> %s",
                [settings.DATABASES["default"]["NAME"], own],
            )
            for (thread_id,) in cursor.fetchall():
                cursor.execute(f"KILL CONNECTION {int(thread_id)}")
                cuts += 1
    pusher.join()
    wait_until(lambda: stream_settled(redis_client, market), 90, message="the stream to be drained after the cuts")

    assert cuts >= 3
    _assert_end_state(market, [j for j, _ in items], totals)


def test_while_the_database_is_unreachable_orders_wait_the_breaker_opens_and_matching_resumes_by_itself(
    market, traders, redis_client, matchers
):
    from django.conf import settings

    from matching.queue import RedisStreamOrderQueue
    from tests.pipeline.proxy import CuttableProxy

    items = _accept(market, traders, redis_client, 1200, seed=21)
    totals = invariants.asset_totals(["btc", "usdt"])
    proxy = CuttableProxy(int(settings.DATABASES["default"]["PORT"]))
    matcher = matchers.start(env={"MYSQL_PORT": str(proxy.port)})  # its only way to the database
    queue = RedisStreamOrderQueue(redis_client, market.code)
    try:
        feed.push(redis_client, market, items[:400])
        wait_until(lambda: stream_settled(redis_client, market), 60, message="the first orders")

        proxy.cut()
        feed.push(redis_client, market, items[400:])
        wait_until(lambda: "closed -> open" in matcher.log(), 30, message="the breaker to open")
        assert not queue.settled()
        assert Order.objects.filter(status=OrderStatus.NEW).exists()  # waiting, not lost or rejected

        committed = _batches(redis_client, market)
        proxy.restore()
        back = time.monotonic()
        wait_until(lambda: _batches(redis_client, market) > committed, 90, message="a batch to commit again")
        first_commit_after = time.monotonic() - back
        wait_until(lambda: stream_settled(redis_client, market), 90, message="matching to resume")
        resumed_after = time.monotonic() - back
    finally:
        proxy.close()

    _assert_end_state(market, [j for j, _ in items], totals)
    assert "half_open" in matcher.log()
    print(
        f"first batch committed {first_commit_after:.1f} s and the stream settled {resumed_after:.1f} s "
        "after the database came back"
    )
    # The breaker opened just before the database came back and probes again after BREAKER_RESET_S (30 s);
    # the 800 waiting orders then take well under a second.
    assert resumed_after <= DB_RESUME_BOUND_S, f"matching resumed {resumed_after:.1f} s after the database came back"


def test_while_redis_is_unreachable_for_the_matcher_nothing_is_acked_or_lost_and_it_takes_its_market_back(
    market, traders, redis_client, matchers
):
    from django.conf import settings

    from tests.pipeline.proxy import CuttableProxy

    items = _accept(market, traders, redis_client, 1200, seed=22)
    totals = invariants.asset_totals(["btc", "usdt"])
    url = settings.MATCHING_REDIS_URL
    proxy = CuttableProxy(int(url.rsplit(":", 1)[1].split("/")[0]))
    db = url.rsplit("/", 1)[1]
    # Streams, leases and the cache through the proxy; the Celery broker directly.
    matcher = matchers.start(env={"TEST_REDIS_URL": f"redis://127.0.0.1:{proxy.port}/{db}"})
    try:
        feed.push(redis_client, market, items[:400])
        wait_until(lambda: stream_settled(redis_client, market), 60, message="the first orders")

        proxy.cut()
        feed.push(redis_client, market, items[400:])
        time.sleep(settings.MATCHING_LEASE_TTL_MS / 1000 + 1)  # long enough for its lease to expire
        assert not stream_settled(redis_client, market)

        proxy.restore()
        wait_until(lambda: stream_settled(redis_client, market), 90, message="matching to resume")
    finally:
        proxy.close()

    _assert_end_state(market, [j for j, _ in items], totals)
    assert "Error" in matcher.log()  # it did see the outage
