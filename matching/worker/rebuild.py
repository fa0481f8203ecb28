"""Start-up: the book of a market rebuilt from the DB, in time priority, and checked.

A matcher that takes a market (after a crash, a takeover or a failed write) trusts nothing it had in
memory: the DB is the source of truth. Rebuilding a million resting orders takes about 8 s and
560 MiB (docs/BENCHMARKS.md): the rows are streamed and converted to integer units by MariaDB.
"""

from __future__ import annotations

from matching.core import OrderBook, Side
from matching.matcher import MarketMatcher
from matching.worker.settlement import MarketSpec, OrderState
from matching.worker.store import MatchStore


def rebuild_book(store: MatchStore, spec: MarketSpec) -> tuple[MarketMatcher, dict[int, OrderState]]:
    """The market's resting orders as a matcher and each one's state; raises ``AssertionError`` when the
    rebuilt book breaks an invariant and ``ValueError`` for an amount off the market's grid."""
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
    book.check_invariants()
    return MarketMatcher(spec.tick_size, spec.lot_size, book), states
