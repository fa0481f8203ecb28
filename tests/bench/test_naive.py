"""The naive per-order pipeline of the benchmark: same end state as the replay and the audits, honestly
counted statements, and a real solo Celery worker consuming one message per command."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

from bench import feed, naive, workload
from matching.core import Side
from orders import invariants
from orders.models import Order, OrderStatus, Trade

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def in_process() -> Iterator[naive.StatementCounter]:
    """A statement counter installed on this process's connection; autocommit restored afterwards."""
    counter = naive.StatementCounter()
    with connection.execute_wrapper(counter):
        yield counter
    if not connection.get_autocommit():
        connection.rollback()
        connection.set_autocommit(True)
    naive.forget_matchers()


def _accept(
    market, traders, redis_client, count: int, seed: int, stop_share: float = 0.0
) -> list[tuple[str, int | None]]:
    feed.publish_reference(redis_client, market, Decimal("30000.20"))
    commands = workload.generate(count, seed=seed, users=len(traders), stop_share=stop_share)
    return feed.accept(market, [u.id for u in traders], commands)


def _assert_end_state(market, commands: list[str], totals_before) -> None:
    assert not Order.objects.filter(coin=market.coin, currency=market.currency, status=OrderStatus.NEW).exists()
    assert invariants.trades_against_replay(market, commands) == []
    assert invariants.holds(market) == []
    assert invariants.crossed_book(market) == []
    assert invariants.duplicate_trades(market) == []
    assert invariants.conservation(totals_before, invariants.asset_totals([market.coin, market.currency])) == []


def test_the_array_book_keeps_price_time_priority_with_the_best_order_last():
    book = naive.ArrayBook()
    rng = random.Random(4)
    for seq in range(1, 400):
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        price = rng.randint(80, 99) if side is Side.BUY else rng.randint(100, 120)
        book.rest(naive.Resting(seq, 1, side, price, 5, seq))
        if seq % 7 == 0:
            book.remove(rng.choice(list(book.index.values())))
        book.check_invariants()

    assert book.bids[-1].price == max(o.price for o in book.bids)
    best_asks = [o for o in book.asks if o.price == book.asks[-1].price]
    assert book.asks[-1] is min(best_asks, key=lambda o: o.seq)


def test_the_naive_matcher_ends_where_the_replay_does_and_its_book_equals_a_rebuilt_one(
    market, traders, redis_client, in_process
):
    items = _accept(market, traders, redis_client, 1500, seed=11)
    totals = invariants.asset_totals(["btc", "usdt"])
    matcher = naive.NaiveMatcher.load(market.id, in_process)

    trades = sum(matcher.handle(command).trades for command, _ in items)

    matcher.book.check_invariants()
    in_memory = [(o.id, o.price, o.remaining, o.seq, o.filled, o.quote, o.fee) for o in matcher.book.orders()]
    connection.set_autocommit(True)
    _assert_end_state(market, [c for c, _ in items], totals)
    assert trades > 100 and in_memory, "the workload trades and leaves orders resting"
    rebuilt = naive.NaiveMatcher.load(market.id, in_process)
    assert [(o.id, o.price, o.remaining, o.seq, o.filled, o.quote, o.fee) for o in rebuilt.book.orders()] == in_memory
    assert rebuilt.last_seq == matcher.last_seq


def test_stop_orders_trigger_in_the_naive_matcher_as_in_the_replay_and_survive_a_rebuild(
    market, traders, redis_client, in_process
):
    items = _accept(market, traders, redis_client, 1500, seed=21, stop_share=0.15)
    totals = invariants.asset_totals(["btc", "usdt"])
    matcher = naive.NaiveMatcher.load(market.id, in_process)

    for command, _ in items:
        matcher.handle(command)

    matcher.book.check_invariants()
    connection.set_autocommit(True)
    _assert_end_state(market, [c for c, _ in items], totals)
    stops = Order.objects.filter(coin=market.coin, currency=market.currency, type__startswith="stop_")
    waiting = list(stops.filter(status=OrderStatus.STOPPING).order_by("seq").values_list("id", flat=True))
    traded = stops.filter(executed_quantity__gt=0).count()  # only a stop that triggered can trade
    assert traded > 20 and waiting, "stops trigger and trade, and some still wait"
    assert list(matcher.stops) == waiting
    rebuilt = naive.NaiveMatcher.load(market.id, in_process)
    assert list(rebuilt.stops) == waiting
    assert rebuilt.last_price == matcher.last_price is not None
    assert [(o.id, o.remaining, o.seq) for o in rebuilt.book.orders()] == [
        (o.id, o.remaining, o.seq) for o in matcher.book.orders()
    ]


def test_a_redelivered_command_changes_nothing_the_second_time(market, traders, redis_client, in_process):
    items = _accept(market, traders, redis_client, 200, seed=12)
    totals = invariants.asset_totals(["btc", "usdt"])
    matcher = naive.NaiveMatcher.load(market.id, in_process)
    for command, _ in items:
        matcher.handle(command)

    naive.forget_matchers()
    again = naive.NaiveMatcher.load(market.id, in_process)  # a worker restarted after a crash
    assert not any(again.handle(command).applied for command, _ in items)

    connection.set_autocommit(True)
    _assert_end_state(market, [c for c, _ in items], totals)


def test_the_statements_counted_are_the_statements_the_server_received(market, traders, redis_client, in_process):
    items = _accept(market, traders, redis_client, 300, seed=13)
    matcher = naive.NaiveMatcher.load(market.id, in_process)
    with connection.cursor() as cursor:
        questions = "SHOW SESSION STATUS LIKE 'Questions'"
        cursor.execute(questions)
        before_server, before_counted = int(cursor.fetchone()[1]), in_process.count

        for command, _ in items:
            matcher.handle(command)

        cursor.execute(questions)
        after_server, after_counted = int(cursor.fetchone()[1]), in_process.count

    # Both windows hold the second SHOW and not the first: the server counts a statement as it starts
    # it, the wrapper as it sends it.
    assert after_server - before_server == after_counted - before_counted
    assert (after_counted - before_counted) / len(items) > 2, "one transaction per order: several statements each"


def _wait(predicate, timeout: float, worker: subprocess.Popen, log_path: Path, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert worker.poll() is None, f"the worker exited: {log_path.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_solo_celery_worker_with_one_message_per_command_ends_where_the_replay_does(
    market, traders, redis_client, tmp_path
):
    items = _accept(market, traders, redis_client, 600, seed=3)
    totals = invariants.asset_totals(["btc", "usdt"])
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()  # no stale messages from other tests
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="settings.test", PYTHONUNBUFFERED="1")
    env["MYSQL_DATABASE"] = settings.DATABASES["default"]["NAME"]  # the test database (test_spot)
    log_path = tmp_path / "naive-worker.log"
    celery = str(Path(sys.executable).parent / "celery")
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            naive.worker_argv(market.code, celery=celery), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            _wait(lambda: naive.ready(market.code), 60, worker, log_path, "the worker to start")
            naive.send_naive(market.code, items, rate=0)
            _wait(lambda: naive.processed(market.code) >= len(items), 120, worker, log_path, "every command")
        finally:
            worker.terminate()
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(10)

    stats = naive.stats(market.code)
    assert stats["commands"] == len(items)
    assert stats["failed"] == 0, log_path.read_text()[-3000:]
    _assert_end_state(market, [c for c, _ in items], totals)
    samples = naive.samples(market.code)
    assert len(samples) == len(items) and all(latency >= 0 for _, latency in samples)
    assert stats["trades"] == Trade.objects.filter(coin="btc").count()
    assert stats["statements"] / stats["commands"] > 2
    assert not naive.ready(market.code), "a stopped worker no longer says it is ready"
