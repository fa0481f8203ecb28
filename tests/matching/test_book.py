"""Unit tests of ``OrderBook``: price-time priority, time in force, market orders, cancels, invariants.

Prices are ticks and quantities lots. Every test's book passes ``check_invariants()`` at the end (the
``book`` fixture checks it on teardown) besides the checks the tests make themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from matching.core import (
    DuplicateOrder,
    InvalidOrder,
    OrderBook,
    OrderStatus,
    OrderType,
    PlaceResult,
    Side,
    TimeInForce,
    UnknownOrder,
)
from matching.core import book as book_module

BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK


@pytest.fixture
def book() -> Iterator[OrderBook]:
    book = OrderBook()
    yield book
    book.check_invariants()


def limit(
    book: OrderBook, order_id: int, side: Side, price: int, lots: int, tif: TimeInForce = GTC, user: int = 1
) -> PlaceResult:
    return book.place(order_id, user, side, lots, price, LIMIT, tif)


def market(
    book: OrderBook, order_id: int, side: Side, lots: int, budget: int | None = None, user: int = 1
) -> PlaceResult:
    return book.place(order_id, user, side, lots, None, MARKET, quote_budget=budget)


def fills(result: PlaceResult) -> list[tuple[int, int, int]]:
    """The result's trades as (maker id, price, lots)."""
    return [(trade.maker_id, trade.price, trade.quantity) for trade in result.trades]


def snapshot(book: OrderBook) -> tuple[Any, ...]:
    """Everything observable about the book, to show that a command changed nothing."""
    orders = [(o.id, o.user, o.side, o.price, o.quantity, o.remaining, o.filled, o.seq) for o in book.orders()]
    return book.depth(), orders, len(book), book.best_bid(), book.best_ask(), book.next_seq


# -- price-time priority ---------------------------------------------------------------------------


def test_it_fills_orders_at_one_price_in_arrival_order(book: OrderBook) -> None:
    limit(book, 1, SELL, 100, 2)
    limit(book, 2, SELL, 100, 3)
    limit(book, 3, SELL, 100, 4)

    result = limit(book, 4, BUY, 100, 6)

    assert fills(result) == [(1, 100, 2), (2, 100, 3), (3, 100, 1)]
    assert result.status is OrderStatus.EXECUTED
    assert book.get(3).remaining == 3
    assert book.depth() == ([], [(100, 3)])


def test_it_sweeps_several_levels_best_price_first(book: OrderBook) -> None:
    limit(book, 1, SELL, 102, 1)
    limit(book, 2, SELL, 100, 1)
    limit(book, 3, SELL, 101, 1)
    limit(book, 4, SELL, 103, 1)

    result = limit(book, 5, BUY, 102, 5)

    assert fills(result) == [(2, 100, 1), (3, 101, 1), (1, 102, 1)]
    assert result.notional == 100 + 101 + 102
    assert book.depth() == ([(102, 2)], [(103, 1)])


def test_a_sell_sweeps_bids_from_the_highest_price_down(book: OrderBook) -> None:
    limit(book, 1, BUY, 98, 1)
    limit(book, 2, BUY, 100, 1)
    limit(book, 3, BUY, 99, 1)
    limit(book, 4, BUY, 100, 1)

    result = limit(book, 5, SELL, 99, 10)

    assert fills(result) == [(2, 100, 1), (4, 100, 1), (3, 99, 1)]
    assert book.depth() == ([(98, 1)], [(99, 7)])


def test_the_trade_price_is_the_makers(book: OrderBook) -> None:
    limit(book, 1, SELL, 100, 1)
    limit(book, 2, BUY, 90, 1)

    bought = limit(book, 3, BUY, 105, 1)
    sold = limit(book, 4, SELL, 80, 1)

    assert fills(bought) == [(1, 100, 1)]
    assert fills(sold) == [(2, 90, 1)]


def test_a_trade_names_both_sides_and_what_the_maker_has_left(book: OrderBook) -> None:
    limit(book, 1, SELL, 100, 5, user=7)

    (trade,) = limit(book, 2, BUY, 100, 2, user=8).trades

    assert (trade.taker_id, trade.maker_id, trade.taker_user, trade.maker_user) == (2, 1, 8, 7)
    assert (trade.taker_side, trade.price, trade.quantity, trade.maker_remaining) == (BUY, 100, 2, 3)


def test_a_partially_filled_maker_keeps_its_place_in_the_queue(book: OrderBook) -> None:
    limit(book, 1, SELL, 100, 5)
    limit(book, 2, SELL, 100, 5)

    first = limit(book, 3, BUY, 100, 2)
    second = limit(book, 4, BUY, 100, 4)

    assert fills(first) == [(1, 100, 2)]
    assert fills(second) == [(1, 100, 3), (2, 100, 1)]
    assert book.get(1) is None
    assert (book.get(2).filled, book.get(2).remaining, book.get(2).status) == (1, 4, OrderStatus.PARTIALLY_FILLED)


def test_orders_of_the_same_user_trade_with_each_other(book: OrderBook) -> None:
    limit(book, 1, SELL, 100, 1, user=3)

    result = limit(book, 2, BUY, 100, 1, user=3)

    assert fills(result) == [(1, 100, 1)]


# -- time in force ---------------------------------------------------------------------------------


def test_a_gtc_order_that_does_not_cross_rests_as_pending(book: OrderBook) -> None:
    limit(book, 1, SELL, 101, 1)

    result = limit(book, 2, BUY, 100, 3)

    assert (result.status, result.filled, result.remaining, result.trades) == (OrderStatus.PENDING, 0, 3, [])
    assert book.best_bid() == 100
    assert book.best_ask() == 101


def test_a_gtc_remainder_rests_as_partially_filled(book: OrderBook) -> None:
    limit(book, 1, SELL, 100, 2)

    result = limit(book, 2, BUY, 101, 5)

    assert (result.status, result.filled, result.remaining) == (OrderStatus.PARTIALLY_FILLED, 2, 3)
    resting = book.get(2)
    assert (resting.price, resting.quantity, resting.filled, resting.remaining) == (101, 5, 2, 3)
    assert resting.status is OrderStatus.PARTIALLY_FILLED
    assert book.depth() == ([(101, 3)], [])


def test_an_ioc_remainder_is_canceled(book: OrderBook) -> None:
    limit(book, 1, SELL, 100, 2)
    limit(book, 2, SELL, 102, 2)

    result = limit(book, 3, BUY, 101, 5, IOC)

    assert fills(result) == [(1, 100, 2)]
    assert (result.status, result.filled, result.remaining) == (OrderStatus.CANCELED, 2, 0)
    assert 3 not in book
    assert book.depth() == ([], [(102, 2)])


def test_an_ioc_that_fills_completely_is_executed(book: OrderBook) -> None:
    limit(book, 1, SELL, 100, 5)

    result = limit(book, 2, BUY, 100, 5, IOC)

    assert (result.status, result.filled) == (OrderStatus.EXECUTED, 5)
    assert len(book) == 0


def test_an_ioc_that_cannot_trade_is_canceled_with_nothing_executed(book: OrderBook) -> None:
    limit(book, 1, SELL, 101, 5)

    result = limit(book, 2, BUY, 100, 5, IOC)

    assert (result.status, result.filled, result.trades) == (OrderStatus.CANCELED, 0, [])
    assert book.depth() == ([], [(101, 5)])


def test_a_fok_that_can_fill_executes_completely_across_levels(book: OrderBook) -> None:
    limit(book, 1, SELL, 100, 2)
    limit(book, 2, SELL, 101, 2)
    limit(book, 3, SELL, 102, 2)

    result = limit(book, 4, BUY, 102, 5, FOK)

    assert fills(result) == [(1, 100, 2), (2, 101, 2), (3, 102, 1)]
    assert (result.status, result.filled) == (OrderStatus.EXECUTED, 5)
    assert book.depth() == ([], [(102, 1)])


@pytest.mark.parametrize("lots", [7, 100])
def test_a_fok_that_cannot_fill_changes_nothing(book: OrderBook, lots: int) -> None:
    limit(book, 1, SELL, 100, 2)
    limit(book, 2, SELL, 101, 4)
    limit(book, 3, BUY, 99, 4)
    before = snapshot(book)

    result = limit(book, 4, BUY, 101, lots, FOK)

    assert (result.status, result.filled, result.remaining, result.trades) == (OrderStatus.CANCELED, 0, 0, [])
    assert snapshot(book)[:-1] == before[:-1]  # all but next_seq: the fok took a sequence number
    assert 4 not in book


def test_a_fok_is_limited_by_its_price(book: OrderBook) -> None:
    limit(book, 1, BUY, 100, 3)
    limit(book, 2, BUY, 99, 3)
    limit(book, 3, BUY, 98, 3)

    too_high = limit(book, 4, SELL, 100, 4, FOK)  # 9 lots bid in all, only 3 at 100 or better
    enough = limit(book, 5, SELL, 99, 6, FOK)

    assert (too_high.status, too_high.filled, too_high.trades) == (OrderStatus.CANCELED, 0, [])
    assert fills(enough) == [(1, 100, 3), (2, 99, 3)]
    assert enough.status is OrderStatus.EXECUTED
    assert book.depth() == ([(98, 3)], [])


def test_a_fok_ignores_canceled_orders_when_counting_what_is_there(book: OrderBook) -> None:
    limit(book, 1, SELL, 100, 3)
    limit(book, 2, SELL, 100, 3)
    book.cancel(1)

    result = limit(book, 3, BUY, 100, 4, FOK)

    assert (result.status, result.filled) == (OrderStatus.CANCELED, 0)
    assert book.depth() == ([], [(100, 3)])


# -- market orders ---------------------------------------------------------------------------------


def test_a_market_order_fills_what_is_there_and_cancels_the_rest(book: OrderBook) -> None:
    limit(book, 1, BUY, 100, 2)
    limit(book, 2, BUY, 90, 2)

    result = market(book, 3, SELL, 10)

    assert fills(result) == [(1, 100, 2), (2, 90, 2)]
    assert (result.status, result.filled, result.remaining, result.notional) == (OrderStatus.CANCELED, 4, 0, 380)
    assert len(book) == 0


def test_a_market_order_that_fills_completely_is_executed(book: OrderBook) -> None:
    limit(book, 1, SELL, 100, 2)
    limit(book, 2, SELL, 500, 2)

    result = market(book, 3, BUY, 3)

    assert fills(result) == [(1, 100, 2), (2, 500, 1)]
    assert result.status is OrderStatus.EXECUTED


@pytest.mark.parametrize("side", [BUY, SELL])
def test_a_market_order_on_an_empty_book_is_canceled(book: OrderBook, side: Side) -> None:
    result = market(book, 1, side, 5)

    assert (result.status, result.filled, result.trades) == (OrderStatus.CANCELED, 0, [])
    assert len(book) == 0


@pytest.mark.parametrize("tif", [GTC, FOK])
def test_a_market_order_behaves_as_ioc_whatever_its_time_in_force(book: OrderBook, tif: TimeInForce) -> None:
    limit(book, 1, SELL, 100, 2)

    result = book.place(2, 1, BUY, 5, None, MARKET, tif)

    assert (result.status, result.filled) == (OrderStatus.CANCELED, 2)
    assert 2 not in book


def test_a_quote_budget_stops_a_market_buy(book: OrderBook) -> None:
    limit(book, 1, SELL, 100, 5)
    limit(book, 2, SELL, 200, 5)

    result = market(book, 3, BUY, 10, budget=799)

    assert fills(result) == [(1, 100, 5), (2, 200, 1)]  # 500 + 200 spent, 99 left buys no more
    assert (result.status, result.filled, result.notional) == (OrderStatus.CANCELED, 6, 700)
    assert book.depth() == ([], [(200, 4)])


def test_a_quote_budget_buys_whole_lots_it_can_afford_at_a_level(book: OrderBook) -> None:
    limit(book, 1, SELL, 100, 10)

    result = market(book, 2, BUY, 10, budget=350)

    assert fills(result) == [(1, 100, 3)]
    assert result.notional == 300
    assert book.depth() == ([], [(100, 7)])


def test_a_quote_budget_below_one_lot_buys_nothing(book: OrderBook) -> None:
    limit(book, 1, SELL, 100, 10)

    result = market(book, 2, BUY, 10, budget=99)

    assert (result.status, result.filled, result.trades) == (OrderStatus.CANCELED, 0, [])
    assert book.depth() == ([], [(100, 10)])


def test_a_market_buy_within_its_budget_executes_its_quantity(book: OrderBook) -> None:
    limit(book, 1, SELL, 100, 10)

    result = market(book, 2, BUY, 4, budget=1_000)

    assert (result.status, result.filled, result.notional) == (OrderStatus.EXECUTED, 4, 400)


# -- cancel ----------------------------------------------------------------------------------------


def test_cancel_returns_the_filled_and_canceled_lots(book: OrderBook) -> None:
    limit(book, 1, SELL, 100, 5, user=9)
    limit(book, 2, BUY, 100, 2)

    result = book.cancel(1)

    assert (result.order_id, result.user, result.side, result.price) == (1, 9, SELL, 100)
    assert (result.filled, result.canceled) == (2, 3)
    assert 1 not in book
    assert book.depth() == ([], [])
    assert book.best_ask() is None


def test_cancel_leaves_the_other_orders_of_the_level(book: OrderBook) -> None:
    limit(book, 1, BUY, 100, 1)
    limit(book, 2, BUY, 100, 2)
    limit(book, 3, BUY, 100, 3)

    book.cancel(2)
    result = limit(book, 4, SELL, 100, 4)

    assert fills(result) == [(1, 100, 1), (3, 100, 3)]


def test_cancel_of_an_unknown_order_raises(book: OrderBook) -> None:
    limit(book, 1, BUY, 100, 1)

    with pytest.raises(UnknownOrder):
        book.cancel(2)


def test_cancel_of_a_filled_order_raises(book: OrderBook) -> None:
    limit(book, 1, BUY, 100, 1)
    limit(book, 2, SELL, 100, 1)

    with pytest.raises(UnknownOrder):
        book.cancel(1)
    with pytest.raises(UnknownOrder):
        book.cancel(2)  # the taker, executed at once


def test_cancel_of_a_canceled_order_raises(book: OrderBook) -> None:
    limit(book, 1, BUY, 100, 1)
    book.cancel(1)

    with pytest.raises(UnknownOrder):
        book.cancel(1)


def test_cancel_of_an_ioc_remainder_raises(book: OrderBook) -> None:
    limit(book, 1, BUY, 100, 1, IOC)

    with pytest.raises(UnknownOrder):
        book.cancel(1)


# -- rejected commands -----------------------------------------------------------------------------


def test_a_duplicate_id_raises_and_changes_nothing(book: OrderBook) -> None:
    limit(book, 1, BUY, 100, 1)
    limit(book, 2, SELL, 105, 1)
    before = snapshot(book)

    with pytest.raises(DuplicateOrder):
        limit(book, 1, SELL, 100, 1)  # would trade, if it were let in

    assert snapshot(book) == before


def test_an_id_may_be_used_again_once_its_order_left_the_book(book: OrderBook) -> None:
    limit(book, 1, BUY, 100, 1)
    book.cancel(1)

    result = limit(book, 1, BUY, 100, 2)

    assert result.status is OrderStatus.PENDING
    assert book.depth() == ([(100, 2)], [])


@pytest.mark.parametrize(
    ("side", "lots", "price", "order_type", "budget"),
    [
        pytest.param(BUY, 0, 100, LIMIT, None, id="zero quantity"),
        pytest.param(SELL, -1, 100, LIMIT, None, id="negative quantity"),
        pytest.param(BUY, 1, None, LIMIT, None, id="limit without price"),
        pytest.param(BUY, 1, 0, LIMIT, None, id="limit at price zero"),
        pytest.param(SELL, 1, -5, LIMIT, None, id="limit at a negative price"),
        pytest.param(SELL, 1, 100, MARKET, None, id="market with a price"),
        pytest.param(SELL, 1, None, MARKET, 1_000, id="budget on a market sell"),
        pytest.param(BUY, 1, 100, LIMIT, 1_000, id="budget on a limit buy"),
        pytest.param(BUY, 1, None, MARKET, 0, id="zero budget"),
        pytest.param(BUY, 1, None, MARKET, -100, id="negative budget"),
    ],
)
def test_invalid_values_raise_and_change_nothing(
    book: OrderBook, side: Side, lots: int, price: int | None, order_type: OrderType, budget: int | None
) -> None:
    limit(book, 1, BUY, 100, 1)
    limit(book, 2, SELL, 101, 1)
    before = snapshot(book)

    with pytest.raises(InvalidOrder) as raised:
        book.place(3, 1, side, lots, price, order_type, quote_budget=budget)

    assert type(raised.value) is InvalidOrder
    assert snapshot(book) == before


def test_a_sequence_behind_the_book_raises_and_changes_nothing(book: OrderBook) -> None:
    book.place(1, 1, BUY, 1, 100, seq=10)
    before = snapshot(book)

    with pytest.raises(InvalidOrder):
        book.place(2, 1, BUY, 1, 100, seq=10)

    assert snapshot(book) == before
    assert book.next_seq == 11


def test_orders_take_increasing_sequence_numbers(book: OrderBook) -> None:
    results = [limit(book, order_id, BUY, 100, 1) for order_id in (1, 2, 3)]
    book.place(4, 1, BUY, 1, 100, seq=50)

    assert [result.seq for result in results] == [1, 2, 3]
    assert book.next_seq == 51


# -- reads -----------------------------------------------------------------------------------------


def test_depth_aggregates_levels_best_first(book: OrderBook) -> None:
    for order_id, (side, price, lots) in enumerate(
        [(BUY, 97, 1), (BUY, 99, 2), (BUY, 99, 3), (BUY, 98, 4), (SELL, 103, 5), (SELL, 101, 6), (SELL, 101, 7)],
        start=1,
    ):
        limit(book, order_id, side, price, lots)

    assert book.depth() == ([(99, 5), (98, 4), (97, 1)], [(101, 13), (103, 5)])
    assert book.depth(2) == ([(99, 5), (98, 4)], [(101, 13), (103, 5)])
    assert book.depth(1) == ([(99, 5)], [(101, 13)])
    assert book.depth(0) == ([], [])


def test_depth_of_an_empty_book_is_empty(book: OrderBook) -> None:
    assert book.depth() == ([], [])
    assert book.depth(5) == ([], [])
    assert (book.best_bid(), book.best_ask()) == (None, None)


def test_orders_lists_each_side_in_priority_order(book: OrderBook) -> None:
    limit(book, 1, SELL, 102, 1)
    limit(book, 2, BUY, 99, 1)
    limit(book, 3, SELL, 101, 1)
    limit(book, 4, BUY, 100, 1)
    limit(book, 5, BUY, 99, 1)
    limit(book, 6, SELL, 101, 1)

    assert [order.id for order in book.orders()] == [4, 2, 5, 3, 6, 1]


# -- lazy deletion ---------------------------------------------------------------------------------


def test_canceling_most_of_a_side_compacts_its_heap(book: OrderBook) -> None:
    count = 3 * book_module.COMPACT_MIN_DEAD
    for order_id in range(1, count + 1):
        limit(book, order_id, BUY, 1 + order_id, 1)  # the newest is the best: cancels stay below the top
    for order_id in range(1, book_module.COMPACT_MIN_DEAD):
        book.cancel(order_id)
    assert len(book._bids) == count  # dead entries stay until there are enough of them

    smallest = len(book._bids)
    for order_id in range(book_module.COMPACT_MIN_DEAD, 2 * book_module.COMPACT_MIN_DEAD + 1):
        book.cancel(order_id)
        smallest = min(smallest, len(book._bids))

    assert smallest < count
    assert len(book._bids) < 2 * len(book)
    book.check_invariants()
    result = limit(book, count + 1, SELL, 1, count)
    assert [trade.maker_id for trade in result.trades] == list(range(count, 2 * book_module.COMPACT_MIN_DEAD, -1))


def test_canceled_orders_at_the_top_are_dropped_on_the_way(book: OrderBook) -> None:
    limit(book, 1, SELL, 100, 1)
    limit(book, 2, SELL, 101, 1)
    limit(book, 3, SELL, 102, 1)
    book.cancel(1)
    book.cancel(2)

    assert book.best_ask() == 102
    assert len(book._asks) == 1
    assert fills(limit(book, 4, BUY, 105, 1)) == [(3, 102, 1)]


# -- restore ---------------------------------------------------------------------------------------


def populated_book() -> OrderBook:
    book = OrderBook()
    for order_id, (side, price, lots) in enumerate(
        [(BUY, 99, 4), (SELL, 102, 3), (BUY, 100, 2), (SELL, 101, 5), (BUY, 100, 6), (SELL, 101, 1)], start=1
    ):
        limit(book, order_id, side, price, lots, user=order_id % 3)
    limit(book, 7, SELL, 100, 3)  # partially fills order 3
    book.cancel(1)
    return book


def test_restore_rebuilds_a_book_equal_to_the_original() -> None:
    original = populated_book()
    copy = OrderBook()

    for order in sorted(original.orders(), key=lambda order: order.seq):
        copy.restore(order.id, order.user, order.side, order.price, order.quantity, order.filled, order.seq)

    copy.check_invariants()
    assert snapshot(copy)[:-1] == snapshot(original)[:-1]
    # and it matches the same way from there on
    taker = (100, 1, SELL, 20, 99, LIMIT, GTC, 20)
    assert original.place(*taker).trades == copy.place(*taker).trades
    assert snapshot(copy) == snapshot(original)


def test_restore_rejects_a_sequence_out_of_order() -> None:
    book = OrderBook()
    book.restore(1, 1, BUY, 100, 5, 0, seq=7)

    with pytest.raises(InvalidOrder):
        book.restore(2, 1, BUY, 100, 5, 0, seq=6)

    assert [order.id for order in book.orders()] == [1]
    book.check_invariants()


@pytest.mark.parametrize(
    ("price", "lots", "filled"),
    [(0, 5, 0), (100, 5, 5), (100, 5, -1), (100, 0, 0)],
    ids=["price zero", "fully filled", "negative filled", "zero quantity"],
)
def test_restore_rejects_what_cannot_rest(price: int, lots: int, filled: int) -> None:
    book = OrderBook()

    with pytest.raises(InvalidOrder):
        book.restore(1, 1, BUY, price, lots, filled, seq=1)

    assert len(book) == 0
    book.check_invariants()


def test_restore_rejects_a_duplicate_id() -> None:
    book = OrderBook()
    book.restore(1, 1, BUY, 100, 5, 0, seq=1)

    with pytest.raises(DuplicateOrder):
        book.restore(1, 1, SELL, 200, 5, 0, seq=2)

    assert book.depth() == ([(100, 5)], [])
    book.check_invariants()


# -- check_invariants ------------------------------------------------------------------------------


def test_check_invariants_catches_a_wrong_level_aggregate() -> None:
    book = populated_book()
    book.check_invariants()
    book._ask_levels[101][0] += 1

    with pytest.raises(AssertionError, match="level aggregates"):
        book.check_invariants()


def test_check_invariants_catches_a_crossed_book() -> None:
    book = OrderBook()
    book.restore(1, 1, BUY, 101, 5, 0, seq=1)
    book.restore(2, 1, SELL, 100, 5, 0, seq=2)

    with pytest.raises(AssertionError, match="crossed"):
        book.check_invariants()


def test_check_invariants_catches_an_order_missing_from_the_index() -> None:
    book = populated_book()
    del book._orders[2]

    with pytest.raises(AssertionError, match="not in the index"):
        book.check_invariants()


def test_check_invariants_catches_a_wrong_dead_count() -> None:
    book = populated_book()
    book._dead_bids += 1

    with pytest.raises(AssertionError, match="dead heap entries"):
        book.check_invariants()


def test_check_invariants_catches_an_order_that_does_not_add_up() -> None:
    book = populated_book()
    book.get(2).filled += 1

    with pytest.raises(AssertionError, match="does not add up"):
        book.check_invariants()
