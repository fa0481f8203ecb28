"""The pipeline with real Celery matcher processes: end to end, a second matcher, poison. (Faults: tests/faults/.)"""

from __future__ import annotations

from decimal import Decimal

import pytest

from bench import feed, workload
from matching.queue import RedisStreamOrderQueue
from orders import invariants
from orders.models import DeadLetter, Order, OrderStatus
from tests.dead_letter_queue import record_dead_letters
from tests.pipeline.conftest import stream_settled, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _accept(market, traders, redis_client, count, seed):
    feed.publish_reference(redis_client, market, Decimal("30000.20"))
    commands = workload.generate(count, seed=seed, users=len(traders))
    return feed.accept(market, [u.id for u in traders], commands)


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
