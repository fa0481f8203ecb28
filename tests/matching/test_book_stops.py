"""Unit tests of ``OrderBook``'s stop orders (issue 10): waiting, triggering, cascades, cancel, restore.

Prices are ticks and quantities lots. Every test's book passes ``check_invariants()`` at the end (the
``book`` fixture checks it on teardown).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from matching.core import (
    DuplicateOrder,
    InvalidOrder,
    OrderBook,
    OrderStatus,
    OrderType,
    PlaceResult,
    Side,
    StopCondition,
    TimeInForce,
    UnknownOrder,
)
from matching.core import book as book_module

BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET
STOP_LIMIT, STOP_MARKET = OrderType.STOP_LIMIT, OrderType.STOP_MARKET
GE, LE = StopCondition.GE, StopCondition.LE
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK


@pytest.fixture
def book() -> Iterator[OrderBook]:
    book = OrderBook()
    yield book
    book.check_invariants()


def limit(book: OrderBook, order_id: int, side: Side, price: int, lots: int, user: int = 1) -> PlaceResult:
    return book.place(order_id, user, side, lots, price, LIMIT)


def stop_limit(
    book: OrderBook,
    order_id: int,
    side: Side,
    price: int,
    lots: int,
    base: int,
    condition: StopCondition,
    tif: TimeInForce = GTC,
) -> PlaceResult:
    return book.place(order_id, 7, side, lots, price, STOP_LIMIT, tif, stop_price=base, stop_condition=condition)


def stop_market(
    book: OrderBook,
    order_id: int,
    side: Side,
    lots: int,
    base: int,
    condition: StopCondition,
    budget: int | None = None,
) -> PlaceResult:
    return book.place(
        order_id, 7, side, lots, None, STOP_MARKET, quote_budget=budget, stop_price=base, stop_condition=condition
    )


def trade_at(book: OrderBook, price: int, first_id: int) -> PlaceResult:
    """One lot traded at ``price`` between two fresh orders ``first_id`` and ``first_id + 1``."""
    limit(book, first_id, SELL, price, 1, user=2)
    return limit(book, first_id + 1, BUY, price, 1, user=3)


def entered(result: PlaceResult) -> list[tuple[int, str, int, int | None]]:
    """The triggered stops of a result as (id, status, seq, trigger price)."""
    return [(r.order_id, r.status.value, r.seq, r.trigger_price) for r in result.triggered]


# -- waiting ---------------------------------------------------------------------------------------


def test_a_stop_waits_outside_the_book_with_its_placement_seq(book: OrderBook) -> None:
    result = stop_limit(book, 1, BUY, 105, 4, base=104, condition=GE)

    assert (result.status, result.seq, result.filled, result.remaining, result.trades) == (
        OrderStatus.STOPPING,
        1,
        0,
        0,
        [],
    )
    assert result.trigger_price is None and result.triggered == []
    assert len(book) == 0 and book.stop_count == 1 and 1 in book
    assert book.depth() == ([], [])
    assert book.get(1) is None
    stop = book.get_stop(1)
    assert stop is not None and (stop.stop_price, stop.condition, stop.seq) == (104, GE, 1)


def test_with_no_trade_ever_a_stop_waits_whatever_its_base_price(book: OrderBook) -> None:
    limit(book, 1, SELL, 100, 5)

    assert stop_market(book, 2, BUY, 1, base=1, condition=GE).status is OrderStatus.STOPPING
    assert stop_market(book, 3, SELL, 1, base=10**9, condition=LE).status is OrderStatus.STOPPING
    assert book.last_price is None and book.stop_count == 2


def test_a_trade_below_a_ge_base_price_leaves_the_stop_waiting(book: OrderBook) -> None:
    stop_market(book, 1, BUY, 2, base=101, condition=GE)

    result = trade_at(book, 100, 10)

    assert result.triggered == [] and book.stop_count == 1 and book.last_price == 100


# -- triggering ------------------------------------------------------------------------------------


def test_a_ge_stop_triggers_on_a_trade_at_its_base_price_and_enters_as_a_limit_order(book: OrderBook) -> None:
    stop_limit(book, 1, BUY, 99, 4, base=100, condition=GE)

    result = trade_at(book, 100, 10)

    # seqs: the stop 1, the trade's orders 2 and 3, the stop's entry 4
    assert entered(result) == [(1, "pending", 4, 100)]
    assert book.stop_count == 0 and book.get(1) is not None
    assert book.depth() == ([(99, 4)], [])
    assert book.next_seq == 5


def test_a_le_stop_triggers_on_a_trade_at_or_below_its_base_price(book: OrderBook) -> None:
    stop_limit(book, 1, SELL, 120, 1, base=95, condition=LE)
    stop_limit(book, 2, SELL, 120, 1, base=94, condition=LE)

    result = trade_at(book, 95, 10)

    assert [r.order_id for r in result.triggered] == [1]
    assert book.get_stop(2) is not None


def test_a_triggered_stop_market_trades_against_the_book(book: OrderBook) -> None:
    limit(book, 1, SELL, 101, 3)
    limit(book, 2, SELL, 102, 3)
    stop_market(book, 3, BUY, 4, base=101, condition=GE)

    result = limit(book, 4, BUY, 101, 1)  # trades at 101: triggers 3

    assert entered(result) == [(3, "executed", 5, 101)]
    triggered = result.triggered[0]
    assert [(t.maker_id, t.price, t.quantity) for t in triggered.trades] == [(1, 101, 2), (2, 102, 2)]
    assert (triggered.filled, triggered.notional) == (4, 101 * 2 + 102 * 2)
    assert book.last_price == 102


def test_one_command_that_sweeps_several_prices_triggers_stops_of_both_conditions(book: OrderBook) -> None:
    # A buy sweeping 100..103: a le stop at 100 sees the trade at 100, a ge stop at 103 the one at 103,
    # though the last trade price ends at 103.
    for order_id, price in enumerate((100, 101, 102, 103), start=1):
        limit(book, order_id, SELL, price, 1)
    stop_limit(book, 10, SELL, 200, 1, base=100, condition=LE)
    stop_limit(book, 11, BUY, 50, 1, base=103, condition=GE)
    stop_limit(book, 12, BUY, 50, 1, base=104, condition=GE)

    result = limit(book, 20, BUY, 103, 4)

    assert entered(result) == [(10, "pending", 9, 103), (11, "pending", 10, 103)]
    assert book.get_stop(12) is not None


def test_stops_triggered_by_one_trade_enter_in_placement_order_not_base_price_order(book: OrderBook) -> None:
    stop_limit(book, 1, BUY, 90, 1, base=100, condition=GE)
    stop_limit(book, 2, SELL, 200, 1, base=100, condition=LE)
    stop_limit(book, 3, BUY, 90, 1, base=98, condition=GE)
    stop_limit(book, 4, BUY, 90, 1, base=99, condition=GE)

    result = trade_at(book, 100, 10)

    assert [r.order_id for r in result.triggered] == [1, 2, 3, 4]
    assert [r.seq for r in result.triggered] == [7, 8, 9, 10]
    # Time priority from the trigger: among the bids at 90, the order of entry.
    assert [o.id for o in book.orders() if o.side is BUY] == [1, 3, 4]


def test_a_stop_triggered_at_once_enters_as_its_own_command(book: OrderBook) -> None:
    trade_at(book, 100, 10)
    limit(book, 12, SELL, 100, 5)

    result = stop_limit(book, 1, BUY, 100, 2, base=99, condition=GE)

    assert (result.order_id, result.status, result.seq, result.trigger_price) == (1, OrderStatus.EXECUTED, 4, 100)
    assert [(t.maker_id, t.quantity) for t in result.trades] == [(12, 2)]
    assert result.triggered == [] and book.stop_count == 0 and book.next_seq == 5


def test_triggered_stops_cascade_first_in_first_out(book: OrderBook) -> None:
    # 1 and 2 trigger on the first trade; 1's trades trigger 3, which enters after 2.
    limit(book, 20, SELL, 105, 1)
    limit(book, 21, BUY, 90, 1)
    stop_market(book, 1, BUY, 1, base=100, condition=GE)  # buys at 105
    stop_limit(book, 2, SELL, 101, 1, base=101, condition=LE)  # rests at 101
    stop_market(book, 3, SELL, 1, base=104, condition=GE)  # triggered by the trade at 105: sells at 90
    stop_limit(book, 4, BUY, 80, 1, base=91, condition=LE)  # triggered by 3's trade at 90

    result = trade_at(book, 100, 10)

    assert entered(result) == [
        (1, "executed", 9, 100),
        (2, "pending", 10, 100),
        (3, "executed", 11, 105),
        (4, "pending", 12, 90),
    ]
    assert [(t.taker_id, t.maker_id, t.price) for r in result.triggered for t in r.trades] == [
        (1, 20, 105),
        (3, 21, 90),
    ]
    assert book.stop_count == 0 and book.last_price == 90 and book.next_seq == 13


def test_a_triggered_stop_limit_keeps_its_time_in_force(book: OrderBook) -> None:
    stop_limit(book, 1, BUY, 110, 5, base=100, condition=GE, tif=FOK)

    result = trade_at(book, 100, 10)

    assert entered(result) == [(1, "canceled", 4, 100)]
    assert book.get(1) is None


def test_a_triggered_stop_market_buy_keeps_its_budget(book: OrderBook) -> None:
    limit(book, 1, SELL, 100, 10)
    stop_market(book, 2, BUY, 10, base=100, condition=GE, budget=350)

    result = limit(book, 3, BUY, 100, 1)

    assert [(r.order_id, r.filled, r.notional) for r in result.triggered] == [(2, 3, 300)]


# -- cancel ----------------------------------------------------------------------------------------


def test_cancel_removes_a_waiting_stop_and_says_it_was_one(book: OrderBook) -> None:
    stop_limit(book, 1, SELL, 95, 4, base=96, condition=LE)
    stop_market(book, 2, BUY, 3, base=100, condition=GE)

    limit_cancel = book.cancel(1)
    market_cancel = book.cancel(2)

    assert (limit_cancel.stop, limit_cancel.filled, limit_cancel.canceled, limit_cancel.price) == (True, 0, 4, 95)
    assert (market_cancel.stop, market_cancel.price, market_cancel.user, market_cancel.side) == (True, 0, 7, BUY)
    assert book.stop_count == 0 and 1 not in book
    assert trade_at(book, 96, 10).triggered == []
    with pytest.raises(UnknownOrder):
        book.cancel(1)


def test_a_canceled_stop_leaves_a_dead_heap_entry_that_a_trade_skips(book: OrderBook) -> None:
    stop_market(book, 1, BUY, 1, base=100, condition=GE)
    stop_market(book, 2, BUY, 1, base=101, condition=GE)
    book.cancel(1)
    book.check_invariants()

    result = trade_at(book, 101, 10)

    assert [r.order_id for r in result.triggered] == [2]


def test_canceled_stops_are_compacted_away(book: OrderBook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(book_module, "COMPACT_MIN_DEAD", 2)
    for order_id in range(1, 6):
        stop_market(book, order_id, SELL, 1, base=50, condition=LE)
    for order_id in range(1, 5):
        book.cancel(order_id)
        book.check_invariants()

    assert len(book._le) < 5


# -- rules -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order_type", "price", "base", "condition", "budget", "side"),
    [
        (STOP_LIMIT, 100, None, GE, None, BUY),
        (STOP_LIMIT, 100, 0, GE, None, BUY),
        (STOP_LIMIT, 100, 100, None, None, BUY),
        (STOP_LIMIT, None, 100, GE, None, BUY),
        (STOP_LIMIT, 100, 100, GE, 500, BUY),
        (STOP_MARKET, 100, 100, GE, None, BUY),
        (STOP_MARKET, None, 100, LE, 500, SELL),
        (LIMIT, 100, 100, None, None, BUY),
        (MARKET, None, None, GE, None, BUY),
    ],
    ids=[
        "no base price",
        "zero base price",
        "no condition",
        "stop limit without price",
        "stop limit with budget",
        "stop market with price",
        "budget on a stop market sell",
        "limit with base price",
        "market with condition",
    ],
)
def test_stop_rules_are_refused_and_change_nothing(
    book: OrderBook,
    order_type: OrderType,
    price: int | None,
    base: int | None,
    condition: StopCondition | None,
    budget: int | None,
    side: Side,
) -> None:
    with pytest.raises(InvalidOrder):
        book.place(1, 1, side, 5, price, order_type, quote_budget=budget, stop_price=base, stop_condition=condition)

    assert (len(book), book.stop_count, book.next_seq) == (0, 0, 1)


def test_a_place_with_the_id_of_a_waiting_stop_is_a_duplicate(book: OrderBook) -> None:
    stop_market(book, 1, BUY, 1, base=100, condition=GE)

    with pytest.raises(DuplicateOrder):
        limit(book, 1, SELL, 100, 1)
    with pytest.raises(DuplicateOrder):
        stop_market(book, 1, BUY, 1, base=100, condition=GE)


def test_the_seq_given_to_a_command_is_its_own_and_triggered_stops_continue_after_it(book: OrderBook) -> None:
    stop_limit(book, 1, BUY, 90, 1, base=100, condition=GE)  # seq 1
    limit(book, 2, SELL, 100, 1)  # seq 2

    result = book.place(3, 1, BUY, 1, 100, LIMIT, GTC, seq=40)

    assert (result.seq, [r.seq for r in result.triggered], book.next_seq) == (40, [41], 42)


# -- rebuild ---------------------------------------------------------------------------------------


def test_restore_stop_rebuilds_waiting_stops_that_trigger_as_the_originals_do() -> None:
    original = OrderBook()
    limit(original, 1, SELL, 105, 5)
    trade_at(original, 100, 2)
    stop_limit(original, 10, BUY, 106, 2, base=101, condition=GE)
    limit(original, 11, BUY, 90, 3)
    stop_market(original, 12, SELL, 1, base=95, condition=LE)
    stop_market(original, 13, BUY, 2, base=103, condition=GE, budget=400)

    copy = OrderBook()
    for order in sorted(original.orders(), key=lambda order: order.seq):
        copy.restore(order.id, order.user, order.side, order.price, order.quantity, order.filled, order.seq)
    copy.last_price = original.last_price
    for s in original.stops():
        copy.restore_stop(
            s.id,
            s.user,
            s.side,
            s.quantity,
            s.price,
            s.order_type,
            s.tif,
            s.quote_budget,
            s.stop_price,
            s.condition,
            s.seq,
        )

    copy.check_invariants()
    assert [s.id for s in copy.stops()] == [10, 12, 13]
    assert copy.next_seq == original.next_seq
    taker = (50, 1, BUY, 1, 105, LIMIT, GTC)
    expected, actual = original.place(*taker), copy.place(*taker)
    assert entered(actual) == entered(expected) == [(10, "executed", 9, 105), (13, "executed", 10, 105)]
    assert actual == expected


def test_restore_stop_refuses_a_stop_the_last_price_has_triggered_and_one_out_of_order() -> None:
    book = OrderBook()
    book.last_price = 100

    with pytest.raises(InvalidOrder, match="triggered"):
        book.restore_stop(1, 1, BUY, 1, None, STOP_MARKET, IOC, None, 100, GE, 5)
    book.restore_stop(2, 1, BUY, 1, None, STOP_MARKET, IOC, None, 101, GE, 5)
    with pytest.raises(InvalidOrder, match="sequence"):
        book.restore_stop(3, 1, BUY, 1, None, STOP_MARKET, IOC, None, 101, GE, 4)

    assert [s.id for s in book.stops()] == [2] and book.next_seq == 6
    book.check_invariants()


def test_last_price_refuses_a_non_positive_price() -> None:
    with pytest.raises(InvalidOrder):
        OrderBook().last_price = 0


# -- check_invariants ------------------------------------------------------------------------------


def test_check_invariants_catches_a_waiting_stop_the_last_price_triggers() -> None:
    book = OrderBook()
    stop_market(book, 1, BUY, 1, base=100, condition=GE)
    book.last_price = 100

    with pytest.raises(AssertionError, match="triggers it"):
        book.check_invariants()


def test_check_invariants_catches_a_stop_missing_from_the_index() -> None:
    book = OrderBook()
    stop_market(book, 1, BUY, 1, base=100, condition=GE)
    del book._stops[1]

    with pytest.raises(AssertionError, match="not in the index"):
        book.check_invariants()


def test_check_invariants_catches_a_wrong_dead_stop_count() -> None:
    book = OrderBook()
    stop_market(book, 1, SELL, 1, base=100, condition=LE)
    book._dead_le += 1

    with pytest.raises(AssertionError, match="dead stop entries"):
        book.check_invariants()


def test_check_invariants_catches_a_stop_sharing_a_resting_orders_seq() -> None:
    book = OrderBook()
    limit(book, 1, BUY, 90, 1)
    book.restore_stop(2, 1, BUY, 1, None, STOP_MARKET, IOC, None, 101, GE, 1)

    with pytest.raises(AssertionError, match="used twice"):
        book.check_invariants()
