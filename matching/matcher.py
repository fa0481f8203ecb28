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
        try:
            quantity = to_units(command.quantity, self.quantity_step, what="quantity")
            price = None if command.price is None else to_units(command.price, self.price_step, what="price")
            budget = None
            if command.quote_budget is not None:
                # Round the budget down to whole tick-lots: the order may spend less, never more.
                budget = floor_units(command.quote_budget, self.notional_step, what="quote budget")
            if command.type is OrderType.LIMIT and price is None:
                raise InvalidOrder(f"order {command.id}: a limit order needs a price")
            return self.book.place(
                command.id,
                command.user,
                command.side,
                quantity,
                price,
                command.type,
                command.tif,
                seq,
                budget,
            )
        except InvalidOrder as exc:
            return Rejected(command.id, str(exc))

    def cancel(self, command: CancelCommand) -> CancelResult | Rejected:
        order = self.book.get(command.id)
        if order is None:
            return Rejected(command.id, "unknown order")
        if command.user is not None and order.user != command.user:
            # Intake checks ownership; this guards the book against a forged stream entry.
            return Rejected(command.id, "unknown order")
        try:
            return self.book.cancel(command.id)
        except UnknownOrder:  # pragma: no cover - get() above says it is resting
            return Rejected(command.id, "unknown order")
