"""Every end-state check of orders/invariants.py holds on a market the real pipeline settled (intake,
then an engine in this process) and reports the violation once that state is broken on purpose."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import MySQLdb
import pytest
from django.db import connection
from django.db.models import F

from bench import feed, workload
from matching.core import RESTING_STATUSES
from matching.worker.batch import Batch
from orders import invariants
from orders.models import Balance, Order, OrderStatus, Trade
from orders.services import OrderRequest, order_place, order_place_many
from tests.conftest import drain_all

pytestmark = pytest.mark.django_db(transaction=True)

BASE_UNIT = Decimal("1E-10")  # the finest amount the schema stores


@dataclass
class Settled:
    commands: list[str]  # the stream's command lines, as the replay reads them
    totals_before: dict[str, Decimal]  # per asset, before anything was matched
    batches: list[Batch]  # what the engine handed to its writer, in order


@pytest.fixture
def settled(engine, market, traders, redis_client) -> Settled:
    """A market the pipeline settled: 400 workload commands accepted by intake and matched by the
    engine; the batches are recorded as the engine hands them to its (real) writer."""
    feed.publish_reference(redis_client, market, Decimal("30000.20"))
    items = feed.accept(market, [u.id for u in traders], workload.generate(400, seed=17, users=len(traders)))
    totals = invariants.asset_totals([market.coin, market.currency])
    batches: list[Batch] = []
    submit = engine.writer.submit

    def recording_submit(batch: Batch, epoch: int) -> None:
        batches.append(batch)
        submit(batch, epoch)

    engine.writer.submit = recording_submit
    feed.push(redis_client, market, items)
    assert drain_all(engine) == len(items)
    return Settled([command for command, _ in items], totals, batches)


def _resting(market, side: str):
    return Order.objects.filter(
        coin=market.coin, currency=market.currency, trade_type=side, status__in=RESTING_STATUSES
    )


def _a_partially_filled_order(market) -> Order:
    order = Order.objects.filter(coin=market.coin, status=OrderStatus.PARTIALLY_FILLED).order_by("id").first()
    assert order is not None, "the workload leaves a partially filled order resting"
    return order


def _accept_without_pushing(market, user) -> Order:
    """An order intake accepted (funds held, row written) that never reached the matcher's stream."""
    request = OrderRequest(user.id, "buy", "limit", Decimal("0.01"), Decimal("100.00"))
    return order_place_many(market=market, requests=[request], enqueue=False)[0]


def test_lost_orders_reports_an_accepted_order_that_never_reached_the_matcher(settled, market, traders):
    assert invariants.lost_orders(market) == []

    _accept_without_pushing(market, traders[0])

    assert invariants.lost_orders(market) == ["1 orders are still new"]


@pytest.fixture
def trades_without_their_unique_index() -> Iterator[None]:
    """uniq_trades_buy_sell dropped for the test (a plain index keeps serving the buy_order foreign
    key), and restored afterwards, the duplicates the test wrote removed first."""
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE trades ADD INDEX tmp_trades_buy_order (buy_order_id), DROP INDEX uniq_trades_buy_sell"
        )
        try:
            yield
        finally:
            cursor.execute(
                "DELETE later FROM trades later JOIN trades earlier "
                "ON earlier.buy_order_id = later.buy_order_id AND earlier.sell_order_id = later.sell_order_id "
                "AND earlier.id < later.id"
            )
            cursor.execute(
                "ALTER TABLE trades ADD UNIQUE INDEX uniq_trades_buy_sell (buy_order_id, sell_order_id), "
                "DROP INDEX tmp_trades_buy_order"
            )


def test_duplicate_trades_reports_a_batch_whose_trades_were_committed_twice(settled, engine, market, request):
    assert invariants.duplicate_trades(market) == []
    batch = next(b for b in reversed(settled.batches) if b.effects.trades)
    trades = Trade.objects.count()

    # Writing a committed batch again (a redelivery the checkpoint failed to skip): the schema refuses it...
    with pytest.raises(MySQLdb.IntegrityError, match="uniq_trades_buy_sell"):
        engine.store.write_batch(batch, epoch=engine.epoch)
    assert Trade.objects.count() == trades
    assert invariants.duplicate_trades(market) == []

    # ... and without the schema's guard the second write goes through; the check is what is left.
    request.getfixturevalue("trades_without_their_unique_index")
    engine.store.write_batch(batch, epoch=engine.epoch)

    assert Trade.objects.count() == trades + len(batch.effects.trades)
    assert invariants.duplicate_trades(market) == [f"{len(batch.effects.trades)} duplicate trades"]


def test_conservation_reports_a_balance_credited_without_a_trade(settled, market, traders):
    before = settled.totals_before
    assert invariants.conservation(before, invariants.asset_totals(["btc", "usdt"])) == []

    Balance.objects.filter(user=traders[0], asset="usdt").update(total=F("total") + BASE_UNIT)

    assert invariants.conservation(before, invariants.asset_totals(["btc", "usdt"])) == [
        f"usdt: total was {before['usdt']}, now {before['usdt'] + BASE_UNIT}"
    ]
    assert before["usdt"] > 0 and before["btc"] > 0


def test_holds_reports_a_held_amount_one_base_unit_off_what_the_open_orders_need(settled, market, traders):
    assert invariants.holds(market) == []
    user = traders[0]
    need = Balance.objects.get(user=user, asset="usdt").held
    assert need > 0, "the trader has open buys"

    Balance.objects.filter(user=user, asset="usdt").update(held=F("held") + BASE_UNIT)

    (problem,) = invariants.holds(market)
    assert problem.startswith(f"user {user.id} holds {need + BASE_UNIT} usdt; open orders need ")
    assert Decimal(problem.rsplit(" ", 1)[1]) == need


def test_holds_counts_what_a_waiting_stop_holds_and_reports_it_when_released_without_a_cancel(engine, market, traders):
    user = traders[0]
    stop = order_place(
        user=user,
        market=market,
        side="buy",
        order_type="stop_limit",
        quantity="0.5",
        price="101.00",
        base_price="100.00",
        stop_condition="ge",
    )
    drain_all(engine)
    assert Order.objects.get(id=stop.id).status == "stopping"
    assert invariants.holds(market) == []

    Balance.objects.filter(user=user, asset="usdt").update(held=0)

    assert invariants.holds(market) == [f"user {user.id} holds 0E-10 usdt; open orders need 50.5000000000"]


def test_crossed_book_reports_a_resting_bid_moved_up_to_the_best_ask(settled, market):
    assert invariants.crossed_book(market) == []
    best_ask = _resting(market, "sell").order_by("price").values_list("price", flat=True).first()
    best_bid = _resting(market, "buy").order_by("-price", "seq").first()
    assert best_ask is not None and best_bid is not None and best_bid.price < best_ask

    Order.objects.filter(id=best_bid.id).update(price=best_ask)

    assert invariants.crossed_book(market) == [f"book is crossed: bid {best_ask} >= ask {best_ask}"]


def test_crossed_book_reports_an_order_with_fills_whose_status_says_it_has_none(settled, market):
    assert invariants.crossed_book(market) == []
    order = _a_partially_filled_order(market)

    Order.objects.filter(id=order.id).update(status=OrderStatus.PENDING)

    assert invariants.crossed_book(market) == ["1 orders have fills but a status that says otherwise"]


def test_book_against_replay_reports_a_resting_quantity_that_differs_from_the_replays(settled, market):
    assert invariants.book_against_replay(market, settled.commands) == []
    levels = list(_resting(market, "buy").values_list("price", flat=True).distinct().order_by("-price"))
    assert len(levels) > 3, "the workload leaves a book several levels deep"
    level = 2
    order = _resting(market, "buy").filter(price=levels[level]).order_by("id").first()

    Order.objects.filter(id=order.id).update(quantity=F("quantity") + market.lot_size)

    assert invariants.book_against_replay(market, settled.commands) == [
        f"bids: the DB rests {len(levels)} levels, the replay {len(levels)} (first difference at level {level})"
    ]


def test_trades_against_replay_reports_a_trade_at_another_price_than_the_replays(settled, market):
    assert invariants.trades_against_replay(market, settled.commands) == []
    ids = list(Trade.objects.filter(coin=market.coin).order_by("id").values_list("id", flat=True))
    assert len(ids) > 20, "the workload trades"
    changed = len(ids) // 2

    Trade.objects.filter(id=ids[changed]).update(price=F("price") + market.tick_size)

    assert invariants.trades_against_replay(market, settled.commands) == [
        f"trades differ from the replay's at #{changed}: {len(ids)} in the DB, {len(ids)} replayed"
    ]


def test_trades_against_replay_reports_an_order_whose_status_differs_from_the_replays(settled, market):
    assert invariants.trades_against_replay(market, settled.commands) == []
    order = _a_partially_filled_order(market)

    Order.objects.filter(id=order.id).update(status=OrderStatus.CANCELED)

    assert invariants.trades_against_replay(market, settled.commands) == [
        f"order {order.id} is canceled in the DB, partially_filled in the replay"
    ]


def test_fees_reports_a_trade_fee_one_base_unit_off_and_the_order_it_no_longer_adds_up_for(settled, market):
    assert invariants.fees(market) == []
    trade = Trade.objects.filter(coin=market.coin, buyer_fee__gt=0).order_by("id").first()
    assert trade is not None
    buy_order = Order.objects.get(id=trade.buy_order_id)
    charged = sum(Trade.objects.filter(buy_order_id=buy_order.id).values_list("buyer_fee", flat=True), Decimal(0))
    assert buy_order.fee == charged

    Trade.objects.filter(id=trade.id).update(buyer_fee=F("buyer_fee") + BASE_UNIT)

    assert invariants.fees(market) == [
        f"trade {trade.id} charged fees {trade.buyer_fee + BASE_UNIT} / {trade.seller_fee}, "
        f"the rates give {trade.buyer_fee} / {trade.seller_fee}",
        f"order {buy_order.id} shows fee {buy_order.fee}, its trades charged {charged + BASE_UNIT}",
    ]


def test_fees_reports_an_order_whose_fee_is_not_what_its_trades_charged(settled, market):
    assert invariants.fees(market) == []
    order = Order.objects.filter(coin=market.coin, fee__gt=0).order_by("id").first()
    assert order is not None

    Order.objects.filter(id=order.id).update(fee=F("fee") + BASE_UNIT)

    assert invariants.fees(market) == [
        f"order {order.id} shows fee {order.fee + BASE_UNIT}, its trades charged {order.fee}"
    ]


def test_executed_quantities_reports_an_order_filled_beyond_the_sum_of_its_trades(settled, market):
    assert invariants.executed_quantities(market) == []
    order = _a_partially_filled_order(market)

    Order.objects.filter(id=order.id).update(executed_quantity=F("executed_quantity") + market.lot_size)

    assert invariants.executed_quantities(market) == [
        "1 orders' executed quantity differs from the sum of their trades"
    ]


def test_end_state_holds_after_the_pipeline_and_lists_what_broke_it(settled, market, traders):
    assert invariants.end_state(market, settled.commands, settled.totals_before) == []
    assert Trade.objects.filter(coin=market.coin).count() > 20, "the clean state is not an empty one"

    _accept_without_pushing(market, traders[1])

    assert invariants.end_state(market, settled.commands, settled.totals_before) == ["1 orders are still new"]
