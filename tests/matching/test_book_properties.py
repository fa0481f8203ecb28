"""Properties of the matching core against a deliberately naive reference matcher.

The reference keeps resting orders in a plain list and, for every command, sorts the opposite side by
price then arrival and walks it: obviously right, and O(n log n) per command. Stop orders wait in a
second plain list in placement order; after each order's trades the whole list is scanned for the
stops one of those trades' prices satisfies, which are queued (first in, first out) to enter as
limit or market orders. Random command streams
go through both it and ``OrderBook`` (and, second property, through ``matching.replay.run``); they
must agree on every result and every book, and the book must pass ``check_invariants()`` after every
step. A seeded stress test then runs a long stream, enough for the heaps to be compacted.
"""

from __future__ import annotations

import io
import json
import random
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from unittest import mock

from hypothesis import given, note, settings
from hypothesis import strategies as st

from matching.core import (
    DuplicateOrder,
    InvalidOrder,
    OrderBook,
    OrderType,
    PlaceResult,
    Side,
    StopCondition,
    TimeInForce,
    UnknownOrder,
)
from matching.core import book as book_module
from matching.replay import run

BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET
STOP_LIMIT, STOP_MARKET = OrderType.STOP_LIMIT, OrderType.STOP_MARKET
GE, LE = StopCondition.GE, StopCondition.LE
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK


# -- the reference ---------------------------------------------------------------------------------


@dataclass
class RefOrder:
    id: int
    user: int
    side: Side
    price: int
    quantity: int
    filled: int
    arrival: int

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled


@dataclass
class RefStop:
    id: int
    user: int
    side: Side
    quantity: int
    price: int | None
    order_type: OrderType  # what it enters as: LIMIT or MARKET
    tif: TimeInForce
    budget: int | None
    base: int
    condition: StopCondition

    def triggered_by(self, price: int) -> bool:
        return price >= self.base if self.condition == GE else price <= self.base


@dataclass
class ReferenceBook:
    """A naive price-time priority matcher, independent of ``OrderBook``'s heaps, levels and lazy cancels.

    ``place`` returns ``("duplicate",)``, ``("invalid",)`` or ``("placed", trades, status, filled,
    remaining, trigger_price, triggered)`` with trades as ``(taker, maker, price, quantity)``;
    ``triggered`` lists the stops that entered the book because of the command as ``(id, trigger_price,
    trades, status, filled, remaining)``. ``cancel`` returns ``("unknown",)`` or ``("canceled", filled,
    canceled)``.
    """

    resting: list[RefOrder] = field(default_factory=list)
    stops: list[RefStop] = field(default_factory=list)  # waiting, in placement order
    arrivals: int = 0
    last_price: int | None = None

    def place(
        self,
        order_id: int,
        user: int,
        side: Side,
        quantity: int,
        price: int | None,
        order_type: OrderType,
        tif: TimeInForce,
        budget: int | None,
        base: int | None = None,
        condition: StopCondition | None = None,
    ) -> tuple[Any, ...]:
        if any(order.id == order_id for order in self.resting) or any(stop.id == order_id for stop in self.stops):
            return ("duplicate",)
        if quantity <= 0:
            return ("invalid",)
        is_stop = order_type in (STOP_LIMIT, STOP_MARKET)
        if is_stop and (base is None or base <= 0 or condition is None):
            return ("invalid",)
        if not is_stop and (base is not None or condition is not None):
            return ("invalid",)
        entry_type = {STOP_LIMIT: LIMIT, STOP_MARKET: MARKET}.get(order_type, order_type)
        if entry_type == LIMIT and (price is None or price <= 0 or budget is not None):
            return ("invalid",)
        if entry_type == MARKET and (price is not None or (budget is not None and (side != BUY or budget <= 0))):
            return ("invalid",)
        if entry_type == MARKET:
            tif = IOC
        trigger_price = None
        if is_stop:
            assert base is not None and condition is not None
            stop = RefStop(order_id, user, side, quantity, price, entry_type, tif, budget, base, condition)
            if self.last_price is None or not stop.triggered_by(self.last_price):
                self.stops.append(stop)
                return ("placed", [], "stopping", 0, 0, None, [])
            trigger_price = self.last_price
        trades, status, filled, remaining = self._match(order_id, user, side, quantity, price, entry_type, tif, budget)
        return ("placed", trades, status, filled, remaining, trigger_price, self._enter_triggered(trades))

    def _enter_triggered(self, trades: list[tuple[int, int, int, int]]) -> list[tuple[Any, ...]]:
        """Enter every stop these trades trigger, and those their trades trigger, first in first out."""
        entered: list[tuple[Any, ...]] = []
        queue: deque[tuple[RefStop, int]] = deque()

        def trigger(trades: list[tuple[int, int, int, int]]) -> None:
            if not trades:
                return
            hit = [stop for stop in self.stops if any(stop.triggered_by(trade[2]) for trade in trades)]
            self.stops = [stop for stop in self.stops if stop not in hit]
            queue.extend((stop, trades[-1][2]) for stop in hit)

        trigger(trades)
        while queue:
            stop, trigger_price = queue.popleft()
            outcome = self._match(
                stop.id, stop.user, stop.side, stop.quantity, stop.price, stop.order_type, stop.tif, stop.budget
            )
            entered.append((stop.id, trigger_price, *outcome))
            trigger(outcome[0])
        return entered

    def _match(
        self,
        order_id: int,
        user: int,
        side: Side,
        quantity: int,
        price: int | None,
        order_type: OrderType,
        tif: TimeInForce,
        budget: int | None,
    ) -> tuple[list[tuple[int, int, int, int]], str, int, int]:
        """(trades, status, filled, remaining) of a checked limit or market order."""

        def acceptable(maker: RefOrder) -> bool:
            if price is None:
                return True
            return maker.price <= price if side == BUY else maker.price >= price

        opposite = [order for order in self.resting if order.side != side]
        if side == BUY:
            opposite.sort(key=lambda order: (order.price, order.arrival))
        else:
            opposite.sort(key=lambda order: (-order.price, order.arrival))
        if tif == FOK and sum(order.remaining for order in opposite if acceptable(order)) < quantity:
            return ([], "canceled", 0, 0)

        trades = []
        left = quantity
        for maker in opposite:
            if left == 0 or not acceptable(maker):
                break
            fill = min(left, maker.remaining)
            if budget is not None:
                fill = min(fill, budget // maker.price)
                if fill == 0:
                    break
                budget -= fill * maker.price
            maker.filled += fill
            left -= fill
            trades.append((order_id, maker.id, maker.price, fill))
            self.last_price = maker.price
            if maker.remaining == 0:
                self.resting.remove(maker)

        filled = quantity - left
        if left == 0:
            return (trades, "executed", filled, 0)
        if order_type == LIMIT and tif == GTC:
            assert price is not None
            self.arrivals += 1
            self.resting.append(RefOrder(order_id, user, side, price, quantity, filled, self.arrivals))
            return (trades, "partially_filled" if filled else "pending", filled, left)
        return (trades, "canceled", filled, 0)

    def cancel(self, order_id: int) -> tuple[Any, ...]:
        for order in self.resting:
            if order.id == order_id:
                self.resting.remove(order)
                return ("canceled", order.filled, order.remaining)
        for stop in self.stops:
            if stop.id == order_id:
                self.stops.remove(stop)
                return ("canceled", 0, stop.quantity)
        return ("unknown",)

    def open_ids(self) -> list[int]:
        """Ids a cancel applies to: resting orders and waiting stops."""
        return [order.id for order in self.resting] + [stop.id for stop in self.stops]

    def depth(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        for order in self.resting:
            levels = bids if order.side == BUY else asks
            levels[order.price] = levels.get(order.price, 0) + order.remaining
        return sorted(bids.items(), reverse=True), sorted(asks.items())

    def orders(self) -> list[tuple[int, int, int]]:
        """Resting (id, price, remaining), bids then asks, each in priority order."""
        bids = sorted((o for o in self.resting if o.side == BUY), key=lambda o: (-o.price, o.arrival))
        asks = sorted((o for o in self.resting if o.side == SELL), key=lambda o: (o.price, o.arrival))
        return [(o.id, o.price, o.remaining) for o in bids + asks]


def test_the_reference_matches_a_worked_example() -> None:
    # The reference is only worth trusting if it gets a hand-checked case right.
    reference = ReferenceBook()
    reference.place(1, 1, SELL, 2, 101, LIMIT, GTC, None)
    reference.place(2, 1, SELL, 3, 100, LIMIT, GTC, None)
    reference.place(3, 1, SELL, 4, 100, LIMIT, GTC, None)

    assert reference.place(4, 2, BUY, 6, 101, LIMIT, GTC, None) == (
        "placed",
        [(4, 2, 100, 3), (4, 3, 100, 3)],
        "executed",
        6,
        0,
        None,
        [],
    )
    assert reference.place(5, 2, BUY, 9, None, MARKET, GTC, 250) == (
        "placed",
        [(5, 3, 100, 1), (5, 1, 101, 1)],
        "canceled",
        2,
        0,
        None,
        [],
    )
    assert reference.place(6, 2, BUY, 9, 101, LIMIT, FOK, None) == ("placed", [], "canceled", 0, 0, None, [])
    assert reference.cancel(1) == ("canceled", 1, 1)
    assert reference.cancel(1) == ("unknown",)
    assert reference.depth() == ([], [])


def test_the_reference_gets_a_worked_stop_example_right() -> None:
    reference = ReferenceBook()
    reference.place(1, 1, SELL, 1, 100, LIMIT, GTC, None)
    reference.place(2, 1, SELL, 1, 101, LIMIT, GTC, None)
    waiting: tuple[Any, ...] = ("placed", [], "stopping", 0, 0, None, [])
    assert reference.place(3, 2, BUY, 1, None, STOP_MARKET, GTC, None, 100, GE) == waiting
    assert reference.place(4, 3, BUY, 1, None, STOP_MARKET, GTC, None, 101, GE) == waiting
    assert reference.place(5, 3, SELL, 2, 99, STOP_LIMIT, GTC, None, 99, LE) == waiting
    assert reference.place(6, 4, BUY, 1, 100, LIMIT, GTC, None) == (
        "placed",
        [(6, 1, 100, 1)],
        "executed",
        1,
        0,
        None,
        [(3, 100, [(3, 2, 101, 1)], "executed", 1, 0), (4, 101, [], "canceled", 0, 0)],
    )
    assert reference.cancel(5) == ("canceled", 0, 2)
    # the last trade (101) already satisfies a ge stop at 101: it enters at once
    assert reference.place(7, 2, SELL, 1, 90, STOP_LIMIT, GTC, None, 101, GE) == (
        "placed",
        [],
        "pending",
        0,
        1,
        101,
        [],
    )


# -- command streams -------------------------------------------------------------------------------

# A command is a plain tuple, interpreted against the state when it is applied so that shrinking keeps
# it meaningful: ("place", reuse, user, side, lots, price, type, tif, budget, base, condition), where
# ``reuse`` is None for a fresh id or an index into the ids used so far; ("cancel", target, index),
# where target is "resting" (a resting order or a waiting stop), "used" (open or not) or "unknown".
KINDS = ["gtc"] * 6 + ["ioc", "fok", "market", "budget", "invalid"] + ["cancel"] * 3
KINDS += ["stop_limit"] * 2 + ["stop_market"] * 2 + ["invalid_stop"]
CANCEL_TARGETS = ["resting", "resting", "used", "unknown"]
INVALID = [  # (quantity, price, type, budget); a quantity of None stands for the drawn lots
    (0, 100, LIMIT, None),
    (-1, 100, LIMIT, None),
    (None, None, LIMIT, None),  # limit without a price
    (None, 0, LIMIT, None),
    (None, 100, MARKET, None),  # market with a price
    (None, 100, LIMIT, 500),  # budget on a limit order
    (None, None, MARKET, 0),
]
INVALID_STOPS = [  # (price, type, budget, base, condition)
    (100, STOP_LIMIT, None, None, GE),  # no base price
    (100, STOP_LIMIT, None, 100, None),  # no condition
    (None, STOP_LIMIT, None, 100, LE),  # stop limit without a price
    (100, STOP_MARKET, None, 100, LE),  # stop market with a price
    (None, STOP_MARKET, None, 0, GE),  # zero base price
    (100, STOP_LIMIT, 500, 100, GE),  # budget on a stop limit
    (100, LIMIT, None, 100, GE),  # limit with a base price
    (None, MARKET, None, None, LE),  # market with a condition
]


# Each command is drawn as one integer and read as mixed-radix digits: a single choice per command is
# several times cheaper to generate and to shrink than a tuple of strategies, and it still shrinks
# towards the simplest command (digits 0: a gtc buy of one lot at 95 by user 1). Least significant
# first: (name, number of values, offset).
DIGITS = [
    ("kind", len(KINDS), 0),
    ("side", 2, 0),
    ("lots", 10, 1),
    ("price", 11, 95),  # ticks
    ("user", 3, 1),
    ("extra", 1_500, 0),  # budget in tick-lots - 1, or which cancel target or invalid value
    ("reuse", 500, 0),  # one place in ten names an id used before; which id a cancel names
]
COMMAND_SPACE = 1
for _, size, _ in DIGITS:
    COMMAND_SPACE *= size


def invalid_stop(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """(price, type, tif, budget, base, condition) of one of ``INVALID_STOPS``."""
    bad_price, order_type, budget, base, condition = values
    return (bad_price, order_type, GTC, budget, base, condition)


def command_from(number: int) -> tuple[Any, ...]:
    digit: dict[str, int] = {}
    for name, size, offset in DIGITS:
        number, value = divmod(number, size)
        digit[name] = value + offset
    kind, side = KINDS[digit["kind"]], (BUY, SELL)[digit["side"]]
    lots, price, user, extra, reuse = (digit[name] for name in ("lots", "price", "user", "extra", "reuse"))
    if kind == "cancel":
        return ("cancel", CANCEL_TARGETS[extra % len(CANCEL_TARGETS)], reuse)
    reuse_id = reuse if reuse % 10 == 9 else None
    if kind in ("gtc", "ioc", "fok"):
        return ("place", reuse_id, user, side, lots, price, LIMIT, TimeInForce(kind), None, None, None)
    if kind == "market":
        return ("place", reuse_id, user, side, lots, None, MARKET, IOC, None, None, None)
    if kind == "budget":
        return ("place", reuse_id, user, BUY, lots, None, MARKET, IOC, 1 + extra, None, None)
    if kind in ("stop_limit", "stop_market"):
        # The base price near the limit prices, so that stops trigger often; both conditions.
        stop_base, stop_condition, rest = 95 + extra % 11, (GE, LE)[extra // 11 % 2], extra // 22
        if kind == "stop_limit":
            stop_tif = (GTC, GTC, IOC, FOK)[rest % 4]
            return ("place", reuse_id, user, side, lots, price, STOP_LIMIT, stop_tif, None, stop_base, stop_condition)
        stop_budget = 1 + rest * 10 if side is BUY and rest % 3 == 0 else None
        return ("place", reuse_id, user, side, lots, None, STOP_MARKET, GTC, stop_budget, stop_base, stop_condition)
    if kind == "invalid_stop":
        return ("place", reuse_id, user, side, lots, *invalid_stop(INVALID_STOPS[extra % len(INVALID_STOPS)]))
    quantity, bad_price, order_type, budget = INVALID[extra % len(INVALID)]
    return (
        "place",
        reuse_id,
        user,
        side,
        lots if quantity is None else quantity,
        bad_price,
        order_type,
        GTC,
        budget,
        None,
        None,
    )


COMMANDS = st.integers(min_value=0, max_value=COMMAND_SPACE - 1).map(command_from)

# Hypothesis keeps lists short on average (about five items); drawing the length first gives long
# streams as often as short ones, and long streams are where deep books and compaction happen.
STREAMS = st.integers(min_value=0, max_value=200).flatmap(lambda n: st.lists(COMMANDS, min_size=n, max_size=n))


@dataclass
class Ids:
    """Resolves a stream's id choices: fresh ids, reused ids, cancel targets."""

    used: list[int] = field(default_factory=list)
    next_fresh: int = 1

    def for_place(self, reuse: int | None) -> int:
        if reuse is not None and self.used:
            return self.used[reuse % len(self.used)]
        order_id = self.next_fresh
        self.next_fresh += 1
        self.used.append(order_id)
        return order_id

    def for_cancel(self, target: str, index: int, resting: list[int]) -> int:
        if target == "resting" and resting:
            return sorted(resting)[index % len(resting)]
        if target == "used" and self.used:
            return self.used[index % len(self.used)]
        return 10_000 + index  # never placed


def core_place(book: OrderBook, order_id: int, command: tuple[Any, ...]) -> tuple[Any, ...]:
    _, _, user, side, lots, price, order_type, tif, budget, base, condition = command
    try:
        result = book.place(
            order_id,
            user,
            side,
            lots,
            price,
            order_type,
            tif,
            quote_budget=budget,
            stop_price=base,
            stop_condition=condition,
        )
    except DuplicateOrder:
        return ("duplicate",)
    except InvalidOrder:
        return ("invalid",)
    seqs = [result.seq] + [entered.seq for entered in result.triggered]
    assert seqs == list(range(result.seq, result.seq + len(seqs))) and book.next_seq == seqs[-1] + 1, seqs
    triggered = [(r.order_id, r.trigger_price, *core_outcome(r)) for r in result.triggered]
    return ("placed", *core_outcome(result), result.trigger_price, triggered)


def core_outcome(result: PlaceResult) -> tuple[Any, ...]:
    """(trades, status, filled, remaining) of one order's result, as the reference gives them."""
    trades = [(trade.taker_id, trade.maker_id, trade.price, trade.quantity) for trade in result.trades]
    assert result.notional == sum(price * lots for _, _, price, lots in trades)
    return (trades, result.status.value, result.filled, result.remaining)


def core_cancel(book: OrderBook, order_id: int) -> tuple[Any, ...]:
    try:
        result = book.cancel(order_id)
    except UnknownOrder:
        return ("unknown",)
    return ("canceled", result.filled, result.canceled)


@contextmanager
def compaction_threshold(dead: int) -> Iterator[None]:
    """Lower the heaps' compaction threshold, so that short streams compact too."""
    with mock.patch.object(book_module, "COMPACT_MIN_DEAD", dead):
        yield


@settings(max_examples=300, deadline=None)
@given(stream=STREAMS, compact_at=st.sampled_from([book_module.COMPACT_MIN_DEAD, 1, 3]))
def test_the_book_agrees_with_the_reference_on_every_command(stream: list[tuple[Any, ...]], compact_at: int) -> None:
    note("\n".join(map(repr, stream)))  # the commands, readable, in a failure's report
    book = OrderBook()
    reference = ReferenceBook()
    ids = Ids()
    with compaction_threshold(compact_at):
        for command in stream:
            if command[0] == "place":
                order_id = ids.for_place(command[1])
                expected = reference.place(order_id, *command[2:])
                actual = core_place(book, order_id, command)
            else:
                order_id = ids.for_cancel(command[1], command[2], reference.open_ids())
                expected = reference.cancel(order_id)
                actual = core_cancel(book, order_id)
            assert actual == expected, f"{command} as order {order_id}"
            book.check_invariants()
            assert book.depth() == reference.depth()
    assert [(order.id, order.price, order.remaining) for order in book.orders()] == reference.orders()
    assert len(book) == len(reference.resting)
    assert [stop.id for stop in book.stops()] == [stop.id for stop in reference.stops]
    assert book.last_price == reference.last_price


# -- the same streams through the replay CLI -------------------------------------------------------

# The replay counts in 1e-10 units: a tick of 0.01 is 1e8 units, a lot of 0.001 is 1e7 units, and a
# tick-lot of the budget 1e-5 of the quote asset, i.e. 1e15 units of 1e-20. The reference runs in
# those units, so that a budget may buy fractions of our lots exactly as the replay does.
TICK, LOT, TICK_LOT = 10**8, 10**7, 10**15
UNIT = Decimal("1E-10")


def replay_line(order_id: int, command: tuple[Any, ...]) -> dict[str, Any]:
    _, _, user, side, lots, price, order_type, tif, budget, base, condition = command
    line: dict[str, Any] = {"op": "place", "id": order_id, "user": user, "side": side.value, "type": order_type.value}
    line["quantity"] = str(Decimal(lots).scaleb(-3))
    if price is not None:
        line["price"] = str(Decimal(price).scaleb(-2))
    if order_type in (LIMIT, STOP_LIMIT):
        line["tif"] = tif.value
    if budget is not None:
        line["quote_budget"] = str(Decimal(budget).scaleb(-5))
    if base is not None:
        line["base_price"] = str(Decimal(base).scaleb(-2))
    if condition is not None:
        line["stop_condition"] = condition.value
    return line


def amount(units: int) -> Decimal:
    return units * UNIT


def numeric(event: dict[str, Any]) -> dict[str, Any]:
    """The event with its decimal strings as Decimals: consumers compare them numerically."""
    event = dict(event)
    for key in ("price", "quantity", "executed_quantity"):  # a trigger's price too
        if key in event:
            event[key] = Decimal(event[key])
    for key in ("bids", "asks"):
        if key in event:
            event[key] = [[Decimal(price), Decimal(lots)] for price, lots in event[key]]
    if event["event"] == "reject" and event["reason"] not in ("unknown order", "duplicate order id"):
        event["reason"] = "invalid"
    return event


def expected_events(stream: list[tuple[Any, ...]]) -> tuple[list[str], list[dict[str, Any]]]:
    """The replay's input lines for ``stream`` and the events the reference expects of it."""
    reference = ReferenceBook()
    ids = Ids()
    seen: set[int] = set()
    lines: list[str] = []
    events: list[dict[str, Any]] = []
    for command in stream:
        if command[0] == "cancel":
            order_id = ids.for_cancel(command[1], command[2], reference.open_ids())
            lines.append(json.dumps({"op": "cancel", "id": order_id}))
            outcome = reference.cancel(order_id)
            if outcome[0] == "unknown":
                events.append({"event": "reject", "id": order_id, "reason": "unknown order"})
            else:
                events.append(
                    {"event": "order", "id": order_id, "status": "canceled", "executed_quantity": amount(outcome[1])}
                )
            continue
        order_id = ids.for_place(command[1])
        lines.append(json.dumps(replay_line(order_id, command)))
        if order_id in seen:  # ids are unique per place command, even once the order is gone
            events.append({"event": "reject", "id": order_id, "reason": "duplicate order id"})
            continue
        seen.add(order_id)
        _, _, user, side, lots, price, order_type, tif, budget, base, condition = command
        outcome = reference.place(
            order_id,
            user,
            side,
            lots * LOT,
            None if price is None else price * TICK,
            order_type,
            tif,
            None if budget is None else budget * TICK_LOT,
            None if base is None else base * TICK,
            condition,
        )
        if outcome[0] != "placed":
            events.append({"event": "reject", "id": order_id, "reason": "invalid"})
            continue
        _, trades, status, filled, _, trigger_price, triggered = outcome
        entered = [(order_id, trigger_price, trades, status, filled)]
        entered += [
            (stop_id, price_units, trades, status, filled)
            for stop_id, price_units, trades, status, filled, _ in triggered
        ]
        for entered_id, trigger_units, trades, status, filled in entered:
            if trigger_units is not None:
                events.append({"event": "trigger", "id": entered_id, "price": amount(trigger_units)})
            for taker, maker, price_units, quantity_units in trades:
                events.append(
                    {
                        "event": "trade",
                        "taker": taker,
                        "maker": maker,
                        "price": amount(price_units),
                        "quantity": amount(quantity_units),
                    }
                )
            events.append({"event": "order", "id": entered_id, "status": status, "executed_quantity": amount(filled)})
    bids, asks = reference.depth()
    events.append(
        {
            "event": "book",
            "bids": [[amount(price), amount(lots)] for price, lots in bids],
            "asks": [[amount(price), amount(lots)] for price, lots in asks],
        }
    )
    return lines, events


@settings(max_examples=300, deadline=None)
@given(stream=STREAMS)
def test_the_replay_agrees_with_the_reference(stream: list[tuple[Any, ...]]) -> None:
    lines, expected = expected_events(stream)
    note("\n".join(lines))
    stdout, stderr = io.StringIO(), io.StringIO()

    status = run(io.StringIO("".join(line + "\n" for line in lines)), stdout, stderr)

    assert (status, stderr.getvalue()) == (0, "")
    assert [numeric(json.loads(line)) for line in stdout.getvalue().splitlines()] == expected


# -- a long seeded run -----------------------------------------------------------------------------


def test_a_long_random_stream_keeps_every_invariant_and_every_lot() -> None:
    """20,000 commands on a deep book with many cancels: the heaps get compacted on both sides, the
    invariants hold throughout, and every lot of every order is accounted for (filled, canceled or
    still resting)."""
    rng = random.Random(20_240_611)
    book = OrderBook()
    quantity: dict[int, int] = {}
    filled: dict[int, int] = {}
    canceled: dict[int, int] = {}
    resting: list[int] = []
    compactions = {BUY: 0, SELL: 0}
    mid = 1_000
    for step in range(1, 20_001):
        mid = max(50, mid + rng.choice((-1, 0, 0, 1)))
        if rng.random() < 0.4 and resting:
            order_id = resting.pop(rng.randrange(len(resting)))
            if order_id in book:
                side = book.get(order_id).side
                heap_before = len(book._bids if side is BUY else book._asks)
                result = book.cancel(order_id)
                canceled[order_id] = result.canceled
                if len(book._bids if side is BUY else book._asks) < heap_before:
                    compactions[side] += 1
        else:
            order_id = step
            side = rng.choice((BUY, SELL))
            lots = rng.randint(1, 20)
            kind = rng.random()
            if kind < 0.9:
                offset = rng.randint(-2, 40)
                price, order_type, tif = (mid - offset if side is BUY else mid + offset), LIMIT, GTC
            elif kind < 0.95:
                price, order_type, tif = mid, LIMIT, rng.choice((IOC, FOK))
            else:
                price, order_type, tif = None, MARKET, IOC
            budget = rng.randint(1, 40 * mid) if order_type is MARKET and side is BUY and rng.random() < 0.5 else None
            result = book.place(order_id, rng.randint(1, 5), side, lots, price, order_type, tif, quote_budget=budget)
            quantity[order_id] = lots
            record_fills(result, filled)
            if result.remaining:
                resting.append(order_id)
            elif result.filled < lots:
                canceled[order_id] = lots - result.filled
        if step % 500 == 0:
            book.check_invariants()
    book.check_invariants()

    assert compactions[BUY] and compactions[SELL], compactions
    still_resting = {order.id: order.remaining for order in book.orders()}
    for order_id, lots in quantity.items():
        assert filled.get(order_id, 0) + canceled.get(order_id, 0) + still_resting.get(order_id, 0) == lots, order_id
    assert sum(lots for _, lots in book.depth()[0] + book.depth()[1]) == sum(still_resting.values())


def record_fills(result: PlaceResult, filled: dict[int, int]) -> None:
    """Add the result's trades to both sides' filled lots, and check it against its own totals."""
    for trade in result.trades:
        filled[trade.taker_id] = filled.get(trade.taker_id, 0) + trade.quantity
        filled[trade.maker_id] = filled.get(trade.maker_id, 0) + trade.quantity
    assert sum(trade.quantity for trade in result.trades) == result.filled
