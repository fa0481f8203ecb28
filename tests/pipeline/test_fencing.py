"""Fencing: once a new owner has taken a market (the lease, then a bumped epoch), a batch the former
owner had matched is never written, whether its store is called directly or its writer thread wakes up
late; the control tests show the very same write going through when nobody took the market."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import pytest

from matching.worker.batch import Batch
from matching.worker.engine import MatchingEngine
from matching.worker.errors import Fenced, NotOwner
from matching.worker.settlement import MarketSpec
from orders import invariants
from orders.balances import fee_account_id
from orders.models import Balance, MatcherCheckpoint, Order, Trade
from orders.services import order_place
from spot import keys
from spot.redis import redis_client as process_redis_client
from tests.conftest import drain_all

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def crossing(engine, market, traders) -> tuple[Order, Order]:
    """A resting ask and a bid that crosses it, both in the market's stream (intake pushed them)."""
    ask = order_place(user=traders[0], market=market, side="sell", order_type="limit", quantity="0.5", price="100.00")
    bid = order_place(user=traders[1], market=market, side="buy", order_type="limit", quantity="0.2", price="101.00")
    return ask, bid


@pytest.fixture
def new_owner(market) -> Iterator[list[MatchingEngine]]:
    """Engines started by ``_take_over`` in the test; stopped at the end."""
    started: list[MatchingEngine] = []
    yield started
    for engine in started:
        engine.stop()


def _take_over(market, redis_client, started: list[MatchingEngine]) -> MatchingEngine:
    """What a matcher on another host does once the old owner's lease has expired: the lease key is
    gone, a new engine takes the lease and bumps the epoch in the DB (``MatchingEngine.start``)."""
    assert redis_client.delete(keys.lease(market.code)) == 1  # expired: the old owner missed its renewals
    engine = MatchingEngine(
        MarketSpec.from_market(market), redis_client=process_redis_client(), fee_account_id=fee_account_id(market)
    )
    started.append(engine)
    engine.start()
    return engine


def _db_state(market) -> dict[str, object]:
    """Everything a batch writes: order rows, trades, balances, the checkpoint (not the epoch)."""
    return {
        "orders": list(
            Order.objects.order_by("id").values_list(
                "id", "status", "executed_quantity", "executed_quote", "average_price", "fee", "seq"
            )
        ),
        "trades": list(Trade.objects.order_by("id").values_list("buy_order_id", "sell_order_id", "price", "quantity")),
        "balances": list(Balance.objects.order_by("user_id", "asset").values_list("user_id", "asset", "total", "held")),
        "checkpoint": list(MatcherCheckpoint.objects.filter(market=market).values_list("last_entry", "last_seq")),
    }


def _epoch(market) -> int:
    return MatcherCheckpoint.objects.get(market=market).epoch


def _match_without_writing(engine: MatchingEngine) -> tuple[Batch, int]:
    """The engine matches its stream's next batch; the hand-over to the writer is kept back (the
    owner stalls between matching and writing). Returns the batch and the epoch it was matched under."""
    kept: list[tuple[Batch, int]] = []
    engine.writer.submit = lambda batch, epoch: kept.append((batch, epoch))
    try:
        assert engine.drain_batch() == 2
    finally:
        del engine.writer.submit  # the writer's own method again
    ((batch, epoch),) = kept
    assert len(batch.effects.trades) == 1
    return batch, epoch


@contextmanager
def stalled_writer(engine: MatchingEngine) -> Iterator[None]:
    """The engine's writer thread is stuck (a long GC pause, a frozen VM) until the block ends: a
    batch handed over meanwhile waits, then is written as if nothing had happened."""
    entered, gate = threading.Event(), threading.Event()

    def stall() -> None:
        entered.set()
        gate.wait(60)

    blocker = threading.Thread(target=engine.writer.call, args=(stall,))
    blocker.start()
    assert entered.wait(10), "the writer thread took the stall"
    try:
        yield
    finally:
        gate.set()
        blocker.join(60)


def test_the_store_refuses_a_batch_the_former_owner_matched_once_a_new_owner_bumped_the_epoch(
    engine, market, redis_client, crossing, new_owner
):
    batch, epoch = _match_without_writing(engine)
    before = _db_state(market)

    successor = _take_over(market, redis_client, new_owner)
    assert successor.epoch == epoch + 1 == _epoch(market)

    with pytest.raises(Fenced, match=f"epoch {epoch} is no longer current"):
        engine.store.write_batch(batch, epoch=epoch)

    assert _db_state(market) == before
    assert Trade.objects.count() == 0
    assert set(Order.objects.values_list("status", flat=True)) == {"new"}


def test_without_a_new_owner_the_store_writes_the_same_batch(engine, market, crossing):
    ask, bid = crossing
    batch, epoch = _match_without_writing(engine)
    before = _db_state(market)

    engine.store.write_batch(batch, epoch=epoch)

    assert _db_state(market) != before
    assert list(Trade.objects.values_list("buy_order_id", "sell_order_id", "quantity")) == [
        (bid.id, ask.id, Decimal("0.2"))
    ]
    assert dict(Order.objects.values_list("id", "status")) == {ask.id: "partially_filled", bid.id: "executed"}
    assert MatcherCheckpoint.objects.get(market=market).last_entry == batch.last_entry


def test_a_former_owner_whose_writer_wakes_after_the_takeover_writes_nothing_and_stops(
    engine, market, redis_client, crossing, new_owner
):
    ask, bid = crossing
    totals = invariants.asset_totals(["btc", "usdt"])
    before = _db_state(market)
    with stalled_writer(engine):
        assert engine.drain_batch() == 2  # matched in memory, handed to the stalled writer
        successor = _take_over(market, redis_client, new_owner)
    # The writer woke up and tried the batch under the old epoch; the engine learns it at its next flush.

    with pytest.raises(NotOwner, match="no longer current"):
        engine.flush()

    assert _db_state(market) == before
    assert not engine.started
    assert not engine.lease.held
    assert redis_client.get(keys.lease(market.code)).decode() == successor.lease.token  # not released by the old one
    assert redis_client.xpending(engine.queue.key, engine.queue.group)["pending"] == 2  # nothing acknowledged

    # The new owner matches the two orders, once. (Its count includes the pending entries it reads again
    # while their first write is in flight; the checkpoint acknowledges those without applying them.)
    drain_all(successor)
    assert list(Trade.objects.values_list("buy_order_id", "sell_order_id", "quantity")) == [
        (bid.id, ask.id, Decimal("0.2"))
    ]
    assert dict(Order.objects.values_list("id", "status")) == {ask.id: "partially_filled", bid.id: "executed"}
    assert invariants.holds(market) == []
    assert invariants.conservation(totals, invariants.asset_totals(["btc", "usdt"])) == []
    assert redis_client.xpending(engine.queue.key, engine.queue.group)["pending"] == 0


def test_without_a_new_owner_the_writer_that_wakes_late_writes_the_batch(engine, market, redis_client, crossing):
    ask, bid = crossing
    with stalled_writer(engine):
        assert engine.drain_batch() == 2

    assert engine.flush() is False

    assert engine.started
    assert engine.lease.held
    assert list(Trade.objects.values_list("buy_order_id", "sell_order_id", "quantity")) == [
        (bid.id, ask.id, Decimal("0.2"))
    ]
    assert dict(Order.objects.values_list("id", "status")) == {ask.id: "partially_filled", bid.id: "executed"}
    assert redis_client.xpending(engine.queue.key, engine.queue.group)["pending"] == 0
