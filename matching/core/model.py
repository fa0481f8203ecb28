"""Values of the matching core: the order enums, the resting order, and the results of commands.

The enums are the project's one set: the schema (``orders.models``), the API, the codec and the
engine all use these. Prices are integer ticks and quantities integer lots (see ``matching.core.units``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    """The old system's four order types (its API's ``type``). A stop order waits outside the book
    until the market's last trade price reaches its ``base_price`` in the direction of its
    ``stop_condition``; then it enters the book as a limit (``stop_limit``) or market
    (``stop_market``) order."""

    LIMIT = "limit"
    MARKET = "market"
    STOP_LIMIT = "stop_limit"
    STOP_MARKET = "stop_market"


class StopCondition(StrEnum):
    """When a stop order triggers, against the market's last trade price."""

    GE = "ge"  # at or above the base price
    LE = "le"  # at or below the base price


class TimeInForce(StrEnum):
    GTC = "gtc"  # good till canceled: the remainder rests
    IOC = "ioc"  # immediate or cancel: the remainder is canceled
    FOK = "fok"  # fill or kill: fills completely at once, or not at all


class OrderStatus(StrEnum):
    """An order's status. The core reports the four after ``NEW``; ``NEW`` is intake's (accepted,
    holding funds, not yet matched) and ``REJECTED`` the engine's (the core refused its values)."""

    NEW = "new"  # accepted and holding funds; the matcher has not seen it yet
    STOPPING = "stopping"  # a stop order waiting outside the book for its trigger (holds funds)
    PENDING = "pending"  # resting, nothing filled
    PARTIALLY_FILLED = "partially_filled"  # resting, some filled
    EXECUTED = "executed"  # fully filled
    CANCELED = "canceled"  # the unfilled remainder was canceled (by the user, ioc, fok or market)
    REJECTED = "rejected"  # the matcher refused it (see the order's reject reason); nothing filled


# They still hold funds.
OPEN_STATUSES = (OrderStatus.NEW, OrderStatus.STOPPING, OrderStatus.PENDING, OrderStatus.PARTIALLY_FILLED)
RESTING_STATUSES = (OrderStatus.PENDING, OrderStatus.PARTIALLY_FILLED)  # in the book


class Order:
    """A resting (or incoming) order. Mutable: ``remaining`` and ``filled`` change as it trades.

    ``remaining == 0`` marks an order as dead; the book uses that for lazy deletion from its heaps.
    """

    __slots__ = ("filled", "id", "price", "quantity", "remaining", "seq", "side", "user")

    def __init__(self, id: int, user: int, side: Side, price: int, quantity: int, seq: int, filled: int = 0) -> None:
        self.id = id
        self.user = user
        self.side = side
        self.price = price
        self.quantity = quantity
        self.filled = filled
        self.remaining = quantity - filled
        self.seq = seq

    @property
    def status(self) -> OrderStatus:
        if self.remaining == 0:
            return OrderStatus.EXECUTED if self.filled == self.quantity else OrderStatus.CANCELED
        return OrderStatus.PARTIALLY_FILLED if self.filled else OrderStatus.PENDING

    def __repr__(self) -> str:
        return (
            f"Order(id={self.id}, user={self.user}, side={self.side.value}, price={self.price}, "
            f"quantity={self.quantity}, remaining={self.remaining}, seq={self.seq})"
        )


class Trade(NamedTuple):
    """One fill. The price is the maker's; ``maker_remaining`` is what the maker has left after it.

    A NamedTuple rather than a frozen dataclass: immutable too, and about twice as cheap to build,
    which shows in the fill loop.
    """

    taker_id: int
    maker_id: int
    taker_user: int
    maker_user: int
    taker_side: Side
    price: int
    quantity: int
    maker_remaining: int


@dataclass(slots=True)
class PlaceResult:
    """What one place command did: its trades, then the incoming order's final state."""

    order_id: int
    status: OrderStatus
    filled: int  # lots executed
    remaining: int  # lots still resting (0 unless status is pending or partially_filled)
    notional: int  # sum of price x quantity of its trades, in tick-lots
    seq: int
    trades: list[Trade] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CancelResult:
    """What a successful cancel did: the order's filled and canceled lots."""

    order_id: int
    user: int
    side: Side
    price: int
    filled: int
    canceled: int
