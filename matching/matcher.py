"""Apply typed commands to one market's book, converting decimals to the core's integer units.

Shared by the replay CLI and the pipeline's engine, so both turn the same commands into the same
trades by construction (INV-4, docs/requirements.md). Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from matching.commands import CancelCommand, Command, PlaceCommand
from matching.core import (
    CancelResult,
    InvalidOrder,
    OrderBook,
    OrderType,
    PlaceResult,
    UnknownOrder,
    floor_units,
    to_units,
)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A command that could not apply; nothing changed in the book."""

    order_id: int
    reason: str


Outcome = PlaceResult | CancelResult | Rejected


class MarketMatcher:
    """One market's book plus its steps: ``price_step`` (tick size) and ``quantity_step`` (lot size).

    A quote budget is converted to tick-lots (``price_step * quantity_step``), the unit of
    ``price * quantity`` inside the core.
    """

    __slots__ = ("book", "notional_step", "price_step", "quantity_step")

    def __init__(self, price_step: Decimal, quantity_step: Decimal, book: OrderBook | None = None) -> None:
        self.book = book if book is not None else OrderBook()
        self.price_step = price_step
        self.quantity_step = quantity_step
        self.notional_step = price_step * quantity_step

    def apply(self, command: Command, seq: int | None = None) -> Outcome:
        """Apply one command; returns what it did. Never raises for a command's values."""
        if isinstance(command, CancelCommand):
            return self.cancel(command)
        return self.place(command, seq)

    def place(self, command: PlaceCommand, seq: int | None = None) -> PlaceResult | Rejected:
        """Place one order: ``seq`` is the command's sequence number (the book's next when None); stop
        orders it triggers take the numbers after it (``book.next_seq`` then says where to go on)."""
        try:
            quantity = to_units(command.quantity, self.quantity_step, what="quantity")
            price = None if command.price is None else to_units(command.price, self.price_step, what="price")
            budget = None
            if command.quote_budget is not None:
                # Round the budget down to whole tick-lots: the order may spend less, never more.
                budget = floor_units(command.quote_budget, self.notional_step, what="quote budget")
            order_type = command.type
            if order_type is OrderType.LIMIT and price is None:
                raise InvalidOrder(f"order {command.id}: a limit order needs a price")
            stop_price = None
            if command.base_price is not None:
                stop_price = to_units(command.base_price, self.price_step, what="base price")
            if order_type is OrderType.STOP_LIMIT or order_type is OrderType.STOP_MARKET:
                # Issue 10: the stop rules, worded for the client; the core checks them again.
                if stop_price is None:
                    raise InvalidOrder(f"order {command.id}: a stop order needs a base price")
                if command.stop_condition is None:
                    raise InvalidOrder(f"order {command.id}: a stop order needs a stop condition (ge or le)")
                if order_type is OrderType.STOP_LIMIT and price is None:
                    raise InvalidOrder(f"order {command.id}: a stop limit order needs a price")
            elif stop_price is not None or command.stop_condition is not None:
                raise InvalidOrder(f"order {command.id}: a base price and a stop condition are for stop orders only")
            return self.book.place(
                command.id,
                command.user,
                command.side,
                quantity,
                price,
                order_type,
                command.tif,
                seq,
                budget,
                stop_price,
                command.stop_condition,
            )
        except InvalidOrder as exc:
            return Rejected(command.id, str(exc))

    def cancel(self, command: CancelCommand) -> CancelResult | Rejected:
        """Cancel a resting order or a waiting stop order (``CancelResult.stop`` tells which)."""
        book = self.book
        order = book.get(command.id)
        owner = order.user if order is not None else None
        if order is None:
            stop = book.get_stop(command.id)
            if stop is None:
                return Rejected(command.id, "unknown order")
            owner = stop.user
        if command.user is not None and owner != command.user:
            # Intake checks ownership; this guards the book against a forged stream entry.
            return Rejected(command.id, "unknown order")
        try:
            return book.cancel(command.id)
        except UnknownOrder:  # pragma: no cover - get() above says it is open
            return Rejected(command.id, "unknown order")
