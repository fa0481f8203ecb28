"""Start-up: the book of a market rebuilt from the DB, in time priority, and checked.

A matcher that takes a market (after a crash, a takeover or a failed write) trusts nothing it had in
memory: the DB is the source of truth. Rebuilding a million resting orders takes about 8 s and
560 MiB (docs/BENCHMARKS.md): the rows are streamed and converted to integer units by MariaDB.

Stop orders (issue 10): the waiting ones (``stopping``) are put back after the resting orders, in
their placement order, against the last trade price, which is the market's latest trade; each keeps
its place command, which says what it holds when it triggers or is canceled.
"""

from __future__ import annotations

from typing import NamedTuple

from matching.commands import PlaceCommand
from matching.core import OrderBook, OrderType, Side, StopCondition, TimeInForce, floor_units, to_units
from matching.matcher import MarketMatcher
from matching.worker.settlement import MarketSpec, OrderState
from matching.worker.store import MatchStore, WaitingStop


class Rebuilt(NamedTuple):
    matcher: MarketMatcher
    states: dict[int, OrderState]  # per resting order
    stops: dict[int, PlaceCommand]  # per waiting stop order: the command it entered the matcher with


def rebuild_book(store: MatchStore, spec: MarketSpec) -> Rebuilt:
    """The market's resting orders and waiting stops as a matcher, each resting order's state and each
    waiting stop's command; raises ``AssertionError`` when the rebuilt book breaks an invariant,
    ``ValueError`` for an amount off the market's grid and ``InvalidOrder`` for a stop the core refuses
    (one the last trade price has triggered: the DB contradicts itself)."""
    book = OrderBook()
    states: dict[int, OrderState] = {}
    restore = book.restore
    sides = {side.value: side for side in Side}
    # Unpacked by position (OpenOrder's field order): a million rows are rebuilt in this loop.
    for order_id, user_id, side, price, quantity, filled, quote, fee, seq in store.open_orders(
        spec.coin, spec.currency, spec.tick_size, spec.lot_size
    ):
        restore(order_id, user_id, sides[side], price, quantity, filled, seq)
        states[order_id] = OrderState(filled, quote, fee)
    last = store.last_trade_price(spec.coin, spec.currency)
    if last is not None:
        book.last_price = to_units(last, spec.tick_size, what="last trade price")
    stops: dict[int, PlaceCommand] = {}
    for row in store.waiting_stops(spec.coin, spec.currency):
        command = stop_command(row, spec.code)
        # The units as MarketMatcher.place converts a command's amounts (a budget rounds down).
        book.restore_stop(
            command.id,
            command.user,
            command.side,
            to_units(command.quantity, spec.lot_size, what="quantity"),
            None if command.price is None else to_units(command.price, spec.tick_size, what="price"),
            command.type,
            command.tif,
            None
            if command.quote_budget is None
            else floor_units(command.quote_budget, spec.tick_size * spec.lot_size, what="quote budget"),
            to_units(row.base_price, spec.tick_size, what="base price"),
            StopCondition(row.stop_condition),
            row.seq,
        )
        stops[command.id] = command
    book.check_invariants()
    return Rebuilt(MarketMatcher(spec.tick_size, spec.lot_size, book), states, stops)


def stop_command(row: WaitingStop, market: str) -> PlaceCommand:
    """A waiting stop's place command, as intake pushed it (``orders.outbox.order_command``): a stop
    market buy's budget is what it holds."""
    side, kind = Side(row.side), OrderType(row.type)
    return PlaceCommand(
        id=row.id,
        user=row.user_id,
        side=side,
        type=kind,
        quantity=row.quantity,
        price=row.price,
        tif=TimeInForce(row.tif),
        quote_budget=row.held if kind is OrderType.STOP_MARKET and side is Side.BUY else None,
        held=row.held,
        market=market,
        base_price=row.base_price,
        stop_condition=StopCondition(row.stop_condition),
    )
