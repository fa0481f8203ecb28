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


class StopOrder:
    """A stop order waiting outside the book for its trigger (status ``stopping``).

    ``stop_price`` is its base price in ticks; ``order_type`` is ``STOP_LIMIT`` (with ``price``) or
    ``STOP_MARKET`` (``price`` None, and on a buy maybe a ``quote_budget`` in tick-lots); ``seq`` is its
    placement sequence number. ``waiting`` turns false once it triggers or is canceled: the book drops
    its heap entry lazily, as it does for canceled resting orders.
    """

    __slots__ = (
        "condition",
        "id",
        "order_type",
        "price",
        "quantity",
        "quote_budget",
        "seq",
        "side",
        "stop_price",
        "tif",
        "user",
        "waiting",
    )

    def __init__(
        self,
        id: int,
        user: int,
        side: Side,
        quantity: int,
        price: int | None,
        order_type: OrderType,
        tif: TimeInForce,
        quote_budget: int | None,
        stop_price: int,
        condition: StopCondition,
        seq: int,
    ) -> None:
        self.id = id
        self.user = user
        self.side = side
        self.quantity = quantity
        self.price = price
        self.order_type = order_type
        self.tif = tif
        self.quote_budget = quote_budget
        self.stop_price = stop_price
        self.condition = condition
        self.seq = seq
        self.waiting = True

    @property
    def entry_type(self) -> OrderType:
        """What it enters the book as once triggered: ``LIMIT`` or ``MARKET``."""
        return OrderType.LIMIT if self.order_type is OrderType.STOP_LIMIT else OrderType.MARKET

    def triggers_at(self, last_price: int) -> bool:
        """Whether a trade at ``last_price`` (ticks) triggers it."""
        if self.condition is StopCondition.GE:
            return last_price >= self.stop_price
        return last_price <= self.stop_price

    def __repr__(self) -> str:
        return (
            f"StopOrder(id={self.id}, user={self.user}, side={self.side.value}, type={self.order_type.value}, "
            f"quantity={self.quantity}, price={self.price}, {self.condition.value} {self.stop_price}, seq={self.seq})"
        )


@dataclass(slots=True)
class PlaceResult:
    """What one place command did: its trades, then the incoming order's final state.

    A stop order that waits gives status ``STOPPING`` and its placement ``seq``, nothing else.
    ``trigger_price`` (ticks) is set on the result of a stop order that entered the book: the last
    trade price when it triggered (for a stop that triggers at its own placement, the last trade price
    it found). ``triggered`` lists, on the command's own result only, the results of the stop orders
    that entered the book because of this command, cascades included, in the order they entered, each
    with the new ``seq`` it took from the book's counter.
    """

    order_id: int
    status: OrderStatus
    filled: int  # lots executed
    remaining: int  # lots still resting (0 unless status is pending or partially_filled)
    notional: int  # sum of price x quantity of its trades, in tick-lots
    seq: int
    trades: list[Trade] = field(default_factory=list)
    trigger_price: int | None = None
    triggered: list[PlaceResult] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CancelResult:
    """What a successful cancel did: the order's filled and canceled lots.

    ``stop`` is true for a waiting stop order: then ``filled`` is 0, ``canceled`` its whole quantity,
    and ``price`` its limit price (0 for a stop_market, which has none); it released all it held.
    """

    order_id: int
    user: int
    side: Side
    price: int
    filled: int
    canceled: int
    stop: bool = False
