"""The cache never outlives the truth (issue 8, item 6): when a matcher commits a batch and then loses
Redis, or dies, before its cache write, recovery acknowledges the batch's entries without applying
them again and refreshes the cache of every order the batch changed, the makers it filled included.

The window between the commit and the cache write is opened for real, without a hook in the product:
the test holds the market's checkpoint row locked, so the matcher's batch waits inside its
transaction; it cuts the matcher's Redis (a TCP proxy), then lets the transaction commit.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from decimal import Decimal

import pytest
import redis
from django.conf import settings
from django.db import connection, transaction

from orders.cache import cached_order
from orders.models import Order
from orders.selectors import order_data, order_get
from orders.services import order_cancel, order_place
from spot import keys
from tests.conftest import drain_all
from tests.pipeline.conftest import stream_settled, wait_until
from tests.pipeline.proxy import CuttableProxy

pytestmark = pytest.mark.django_db(transaction=True)

COMPARED = ("status", "executed_quantity", "executed_price", "fee")  # executed_price: the average price


def _redis_proxy() -> tuple[CuttableProxy, str]:
    """A cuttable proxy to the test Redis and the URL of the test database through it."""
    url = settings.MATCHING_REDIS_URL
    proxy = CuttableProxy(int(url.rsplit(":", 1)[1].split("/")[0]))
    return proxy, f"redis://127.0.0.1:{proxy.port}/{url.rsplit('/', 1)[1]}"


def _last_entry(market) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_entry FROM matcher_checkpoints WHERE market_id = %s", [market.id])
        return cursor.fetchone()[0]


def _a_matcher_waits_for_the_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM information_schema.INNODB_TRX AS t "
            "JOIN information_schema.PROCESSLIST AS p ON p.ID = t.trx_mysql_thread_id "
            "WHERE t.trx_state = 'LOCK WAIT' AND p.DB = %s",
            [settings.DATABASES["default"]["NAME"]],
        )
        return cursor.fetchone()[0] > 0


@contextmanager
def _checkpoint_locked(market):
    """Hold the market's checkpoint row: a matcher's batch waits inside its transaction until the block
    ends, then commits."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT last_entry FROM matcher_checkpoints WHERE market_id = %s FOR UPDATE", [market.id])
        yield


def _disagreements(users) -> list[str]:
    """Every order whose ``GET /api/v1/orders/detail/<id>`` read (cache first) differs from its DB row."""
    owners = {user.pk: user for user in users}
    found = []
    for order in Order.objects.order_by("id"):
        served, truth = order_get(user=owners[order.user_id], order_id=order.id), order_data(order)
        if any(served[field] != truth[field] for field in COMPARED):
            found.append(f"order {order.id}: served {[served[f] for f in COMPARED]}, DB {[truth[f] for f in COMPARED]}")
    return found


def _stale_in_cache(redis_client) -> list[int]:
    """Orders whose cached status differs from the DB's (read without refilling anything)."""
    stale = []
    for order in Order.objects.all():
        cached = cached_order(redis_client, order.id)
        if cached is not None and cached["status"] != order.status:
            stale.append(order.id)
    return stale


# -- in-process: one engine whose Redis goes through the proxy -------------------------------------


@pytest.mark.parametrize("recovery", ["the same matcher once Redis is back", "a new matcher after it died"])
def test_orders_committed_just_before_redis_failed_are_served_as_the_db_has_them_after_recovery(
    recovery, market, traders, redis_client
):
    from matching.worker import registry
    from matching.worker.engine import MatchingEngine
    from matching.worker.settlement import MarketSpec
    from orders.balances import fee_account_id

    proxy, url = _redis_proxy()
    engine = MatchingEngine(
        MarketSpec.from_market(market),
        redis_client=redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2),
        fee_account_id=fee_account_id(market),
    )
    try:
        engine.start()
        seller, buyer, other = traders[0], traders[1], traders[2]
        makers = [
            order_place(user=seller, market=market, side="sell", order_type="limit", quantity="0.5", price=price)
            for price in ("100.00", "100.50", "101.00")
        ]
        resting = order_place(user=other, market=market, side="buy", order_type="limit", quantity="1", price="90.00")
        assert drain_all(engine) == 4
        # The batch that commits just before Redis fails: a taker filling two makers and part of a
        # third, a cancel, and an order that rests.
        taker = order_place(user=buyer, market=market, side="buy", order_type="limit", quantity="1.2", price="101.00")
        order_cancel(user=other, order_id=resting.id)
        rests = order_place(user=other, market=market, side="buy", order_type="limit", quantity="2", price="95.00")
        assert {cached_order(redis_client, o.id)["status"] for o in (taker, rests)} == {"new"}

        with _checkpoint_locked(market):
            assert engine.drain_batch() == 3  # matched and handed to the writer, which waits for the lock
            wait_until(_a_matcher_waits_for_the_lock, 10, message="the batch to wait inside its transaction")
            proxy.cut()
        with pytest.raises(redis.ConnectionError):
            engine.flush()  # committed; the cache write and the acknowledgement failed

        assert Order.objects.get(id=taker.id).status == "executed"
        assert set(_stale_in_cache(redis_client)) == {m.id for m in makers} | {taker.id, resting.id, rests.id}

        if recovery == "a new matcher after it died":
            registry.forget_engines()
            redis_client.delete(keys.lease(market.code))  # as its lease expires after a kill -9
            engine = registry.engine_for(market.code)
            engine.start()
            drain_all(engine)
        else:
            proxy.restore()
            engine.drain()

        assert stream_settled(redis_client, market)
        assert _stale_in_cache(redis_client) == []
        assert _disagreements(traders) == []
        assert Order.objects.get(id=makers[2].id).executed_quantity == Decimal("0.2")
    finally:
        engine.stop()
        registry.forget_engines()
        proxy.close()


def test_the_hot_path_reads_nothing_more_from_the_db_for_the_cache(engine, traders, market, redis_client):
    order_place(user=traders[0], market=market, side="sell", order_type="limit", quantity="1", price="100.00")
    order_place(user=traders[1], market=market, side="buy", order_type="limit", quantity="1", price="100.00")
    drain_all(engine)
    before = engine.store.statements

    for n in range(3):
        order_place(user=traders[2], market=market, side="buy", order_type="limit", quantity="1", price=f"9{n}.00")
    drain_all(engine)

    assert engine.store.statements - before == 2  # the batch's order update and its COMMIT, no refresh read
    assert _disagreements(traders) == []


# -- a real matcher process ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("recovery", ["restore", "kill"])
def test_a_matcher_process_cut_from_redis_right_after_a_commit_leaves_no_order_served_older_than_the_db(
    recovery, market, traders, redis_client, matchers
):
    from bench import feed, workload
    from matching.commands import encode
    from orders import invariants
    from orders.outbox import order_command

    feed.publish_reference(redis_client, market, Decimal("30000.20"))
    items = feed.accept(market, [u.id for u in traders], workload.generate(900, seed=31, users=len(traders)))
    totals = invariants.asset_totals(["btc", "usdt"])
    owners = {user.pk: user for user in traders}
    for order in Order.objects.all():
        order_get(user=owners[order.user_id], order_id=order.id)  # every trader read their order: cached `new`
    proxy, url = _redis_proxy()
    matcher = matchers.start(env={"TEST_REDIS_URL": url})  # streams, lease and cache through the proxy
    try:
        feed.push(redis_client, market, items[:300])
        wait_until(lambda: stream_settled(redis_client, market), 60, message="the first orders")
        before = _last_entry(market)

        with _checkpoint_locked(market):
            # The batch that commits: an order far below the market, which nothing later touches
            # (the cache of an order that later batches change is written through again by them).
            far = order_place(user=traders[0], market=market, side="buy", order_type="limit", quantity="1", price="1")
            wait_until(_a_matcher_waits_for_the_lock, 30, message="its batch to wait inside its transaction")
            feed.push(redis_client, market, items[300:])  # matched in memory, never written: applied again later
            proxy.cut()
        wait_until(lambda: _last_entry(market) != before, 30, message="the batch to commit")
        time.sleep(0.5)  # its cache write has failed by now (connection refused)
        assert far.id in _stale_in_cache(redis_client), "the commit came before a lost cache write"

        if recovery == "kill":
            matcher.kill()
            matchers.start()  # Redis directly, after the dead one's lease expires
        else:
            proxy.restore()
        wait_until(lambda: stream_settled(redis_client, market), 90, message="the stream to settle after recovery")
    finally:
        proxy.close()

    stream = [j for j, _ in items[:300]] + [encode(order_command(far, ""))] + [j for j, _ in items[300:]]
    assert invariants.end_state(market, stream, totals) == []
    assert _stale_in_cache(redis_client) == []
    assert _disagreements(traders) == []
