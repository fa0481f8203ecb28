from __future__ import annotations

from decimal import Decimal

import pytest

from orders.models import Balance, Order, Trade
from orders.services import order_cancel, order_place
from tests.conftest import drain_all

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_crossing_pair_trades_at_the_makers_price_and_settles_balances(engine, traders, market):
    seller, buyer = traders[0], traders[1]
    ask = order_place(user=seller, market=market, side="sell", order_type="limit", quantity="0.5", price="100.00")
    bid = order_place(user=buyer, market=market, side="buy", order_type="limit", quantity="0.2", price="101.00")

    assert drain_all(engine) == 2

    ask.refresh_from_db()
    bid.refresh_from_db()
    assert (ask.status, ask.executed_quantity) == ("partially_filled", Decimal("0.2"))
    assert (bid.status, bid.executed_quantity, bid.average_price) == ("executed", Decimal("0.2"), Decimal("100"))
    trade = Trade.objects.get()
    assert (trade.buy_order_id, trade.sell_order_id, trade.price, trade.quantity) == (
        bid.id,
        ask.id,
        100,
        Decimal("0.2"),
    )
    buyer_usdt = Balance.objects.get(user=buyer, asset="usdt")
    assert buyer_usdt.total == Decimal("1000000") - Decimal("20")
    assert buyer_usdt.held == 0  # price improvement of 0.2 x 1 released
    seller_btc = Balance.objects.get(user=seller, asset="btc")
    assert (seller_btc.total, seller_btc.held) == (Decimal("99.8"), Decimal("0.3"))
    assert Balance.objects.get(user=buyer, asset="btc").total == Decimal("100.2") - Decimal("0.0004")  # taker fee 0.2 %


def test_a_cancel_releases_what_the_order_still_held(engine, traders, market):
    order = order_place(user=traders[0], market=market, side="buy", order_type="limit", quantity="1", price="50.00")
    drain_all(engine)
    order_cancel(user=traders[0], order_id=order.id)
    drain_all(engine)

    order.refresh_from_db()
    assert order.status == "canceled"
    assert Balance.objects.get(user=traders[0], asset="usdt").held == 0
    assert Order.objects.filter(status="new").count() == 0


def test_the_matcher_trims_acknowledged_entries_from_the_stream(engine, redis_client):
    from matching.queue import RedisStreamOrderQueue
    from orders.models import DeadLetter
    from tests.dead_letter_queue import empty_dead_letter_queue, record_dead_letters

    empty_dead_letter_queue()
    queue = RedisStreamOrderQueue(redis_client, engine.market)
    cancels = [(f'{{"op":"cancel","id":{n + 1}}}', None) for n in range(3000)]  # unknown: rejected, acked
    queue.push_many(cancels)
    queue.push("not json")
    queue.push_many(cancels)
    drain_all(engine)  # 120 batches: one trim, after the 100th

    assert redis_client.xlen(queue.key) < 1200  # what came after the 100th batch, give or take a node
    assert record_dead_letters() == 1
    assert DeadLetter.objects.get().payload == "not json"  # dead-lettered with its payload before that


def test_trimming_never_drops_an_entry_that_is_still_pending(redis_client):
    from matching.queue import RedisStreamOrderQueue

    queue = RedisStreamOrderQueue(redis_client, "btc_usdt")
    queue.ensure_group()
    queue.push_many([(f'{{"op":"cancel","id":{n + 1}}}', None) for n in range(1000)])
    delivered = queue.pop(1000)
    pending = delivered[500]
    queue.ack([e.id for e in delivered if e.id != pending.id])

    queue.trim(delivered[-1].id)

    assert redis_client.xrange(queue.key, pending.id, pending.id)[0][1] == {b"c": pending.data}
    assert redis_client.xlen(queue.key) <= 600


def test_the_matcher_writes_each_changed_order_through_to_the_cache_after_commit(engine, traders, market, redis_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from orders.selectors import order_get

    ask = order_place(user=traders[0], market=market, side="sell", order_type="limit", quantity="0.5", price="100.00")
    bid = order_place(user=traders[1], market=market, side="buy", order_type="limit", quantity="0.5", price="100.00")
    drain_all(engine)

    cached = {k.decode(): v.decode() for k, v in redis_client.hgetall(f"order:{bid.id}").items()}
    assert cached["status"] == "executed"
    assert Decimal(cached["executed_quantity"]) == Decimal("0.5")
    assert Decimal(cached["average_price"]) == Decimal("100")
    assert Decimal(cached["fee"]) == Decimal("0.001")  # taker 0.2 % of 0.5 btc
    assert 0 < redis_client.ttl(f"order:{bid.id}") <= 3600
    with CaptureQueriesContext(connection) as queries:
        detail = order_get(user=traders[0], order_id=ask.id)
    assert len(queries) == 0
    assert detail["status"] == "executed"


def test_entries_another_consumer_left_pending_are_reclaimed_and_matched(
    engine, traders, market, redis_client, settings
):
    from matching.queue import RedisStreamOrderQueue

    settings.MATCHING_RECLAIM_IDLE_MS = 50
    order = order_place(user=traders[0], market=market, side="buy", order_type="limit", quantity="0.1", price="10.00")
    stranger = RedisStreamOrderQueue(redis_client, market.code, consumer="a-consumer-that-died")
    assert [e.data for e in stranger.pop(10)]  # delivered to it, never acknowledged
    engine.queue.pop(10)  # nothing new for the matcher meanwhile

    import time

    time.sleep(0.1)
    engine.drain(max_seconds=1)

    order.refresh_from_db()
    assert order.status == "pending"
    assert redis_client.xpending(engine.queue.key, engine.queue.group)["pending"] == 0


def test_a_batch_that_cannot_be_written_is_split_and_only_the_entry_at_fault_is_dead_lettered(engine, traders, market):
    from orders.models import Balance, DeadLetter, Order
    from tests.dead_letter_queue import empty_dead_letter_queue, record_dead_letters

    empty_dead_letter_queue()
    seller, buyer, other = traders[0], traders[1], traders[2]
    ask = order_place(user=seller, market=market, side="sell", order_type="limit", quantity="0.5", price="100.00")
    bid = order_place(user=buyer, market=market, side="buy", order_type="limit", quantity="0.5", price="100.00")
    bystander = order_place(user=other, market=market, side="buy", order_type="limit", quantity="0.1", price="90.00")
    # The buyer's BTC row, which the fill must credit, is gone (an operator's mistake, say): the
    # batch's balance update cannot match every row, so nothing of the batch may be written.
    Balance.objects.filter(user=buyer, asset="btc").delete()

    drain_all(engine)

    assert record_dead_letters() == 1
    letter = DeadLetter.objects.get()
    assert str(bid.id) in letter.payload
    assert "MissingBalance" in letter.reason
    assert (letter.reason_kind, letter.order_id) == ("error", bid.id)
    assert letter.deliveries >= 3  # its deliveries in the failed batch and alone
    assert letter.exception.startswith("MissingBalance:")
    assert "Traceback" in letter.traceback and "write_batch" in letter.traceback
    statuses = dict(Order.objects.values_list("id", "status"))
    assert statuses[ask.id] == "pending"  # applied on its own, untouched by the failed fill
    assert statuses[bystander.id] == "pending"
    assert statuses[bid.id] == "new"  # dead-lettered: still holding its funds until an operator acts
    assert Balance.objects.get(user=buyer, asset="usdt").held == Decimal("50")


def test_each_slice_reports_the_entries_still_waiting_in_the_queue_depth_gauge(engine, redis_client):
    from prometheus_client import REGISTRY

    from matching.queue import RedisStreamOrderQueue

    RedisStreamOrderQueue(redis_client, engine.market).push_many(
        [(f'{{"op":"cancel","id":{n + 1}}}', None) for n in range(120)]
    )

    engine.drain(max_seconds=0)  # one batch of 50, then the slice ends

    assert REGISTRY.get_sample_value("spot_queue_depth", {"market": engine.market}) == 70


def test_a_selling_taker_pays_the_taker_rate_in_quote_and_the_resting_buyer_the_maker_rate_in_base(
    engine, traders, market
):
    buyer, seller = traders[0], traders[1]
    order_place(user=buyer, market=market, side="buy", order_type="limit", quantity="1", price="200.00")
    order_place(user=seller, market=market, side="sell", order_type="limit", quantity="1", price="199.00")

    drain_all(engine)

    # Trade at the maker's 200: the seller receives 200 USDT less 0.2 %, the buyer 1 BTC less 0.1 %.
    assert Balance.objects.get(user=seller, asset="usdt").total == Decimal("1000000") + Decimal("199.6")
    assert Balance.objects.get(user=buyer, asset="btc").total == Decimal("100") + Decimal("0.999")
    fees = Balance.objects.filter(user__username="fees")
    assert {b.asset: b.total for b in fees} == {"btc": Decimal("0.001"), "usdt": Decimal("0.4")}


def test_the_matchers_lines_about_an_entry_carry_that_entrys_correlation_id(
    engine, traders, market, redis_client, caplog
):
    import dataclasses
    import logging

    from matching.commands import CancelCommand, encode
    from matching.queue import RedisStreamOrderQueue
    from orders.outbox import order_command
    from orders.services import OrderRequest, order_place_many

    cid = [f"20260123-{n:016x}" for n in range(5)]
    ask = order_place(
        user=traders[0],
        market=market,
        side="sell",
        order_type="limit",
        quantity="0.5",
        price="100.00",
        correlation_id=cid[0],
    )
    bid = order_place(
        user=traders[1],
        market=market,
        side="buy",
        order_type="limit",
        quantity="0.2",
        price="101.00",
        correlation_id=cid[1],
    )
    queue = RedisStreamOrderQueue(redis_client, market.code)
    queue.push(encode(order_command(ask, cid[2])))  # the same order again
    (odd,) = order_place_many(
        market=market,
        requests=[OrderRequest(traders[2].pk, "buy", "limit", Decimal("1"), Decimal("90.00"), "gtc")],
        enqueue=False,
    )
    queue.push(encode(dataclasses.replace(order_command(odd, cid[3]), price=Decimal("90.005"))))  # off the tick grid
    queue.push(encode(CancelCommand(id=ask.id, user=ask.user_id, market=market.code, cid=cid[4])))

    with caplog.at_level(logging.DEBUG, logger="matching.worker.engine"):
        assert drain_all(engine) == 5

    lines = {r.correlation_id: r.getMessage() for r in caplog.records if hasattr(r, "correlation_id")}
    assert lines == {
        cid[0]: f"matcher btc_usdt: order {ask.id} matched: pending, 0 trades",
        cid[1]: f"matcher btc_usdt: order {bid.id} matched: executed, 1 trades",
        cid[2]: f"matcher btc_usdt: order {ask.id} is already in the book; duplicate entry ignored",
        cid[3]: f"matcher btc_usdt: order {odd.id} rejected: price 90.005 is not a multiple of 0.0100000000",
        cid[4]: f"matcher btc_usdt: order {ask.id} canceled",
    }


def test_at_info_level_the_matcher_writes_no_line_per_command(engine, traders, market, caplog):
    import logging

    for n in range(3):
        order_place(user=traders[n], market=market, side="buy", order_type="limit", quantity="1", price=f"9{n}.00")

    with caplog.at_level(logging.INFO, logger="matching.worker.engine"):
        drain_all(engine)

    assert [r.getMessage() for r in caplog.records if r.name == "matching.worker.engine"] == []
