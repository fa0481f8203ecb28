"""The naive per-order pipeline, for the benchmark only: the architecture the product documents call
"current" (the PHP system this backend replaces), in its best configuration.

- One Celery message per command, on the market's own queue ``naive_<market>``, consumed by a solo
  worker (``worker_argv`` gives the command line).
- One DB transaction per command through Django's connection, one statement per row: lock and read
  the order row (``SELECT ... FOR UPDATE``), then per fill one ``UPDATE`` of the maker's row and one
  ``INSERT`` of the trade, one ``UPDATE`` of the order's own row, one ``UPDATE`` per balance row the
  command changes (relative, ``total = total + x``: no read needed), then ``COMMIT``.
- An array book: per side a Python list kept in price-time order, found by linear scans and grown by
  ``list.insert`` (O(n)); deliberately not a heap. The best order sits at the end of its list, so a
  fill that exhausts it is a ``pop()``.

Matching rules are the core's (price-time priority, integer ticks and lots), re-done on the array
book. Stop orders (issue 10), the simplest way: the waiting ones in a dict in placement order and the
last trade price; after each order that traded, every waiting stop is checked against every price it
traded at, and the ones triggered enter the book one by one, first in first out, each with the next
sequence number, all in the command's transaction. Settlement is the engine's own module (``matching.worker.settlement``), called here per command
as the engine calls it per batch. So the end state passes the same checks (``orders.invariants``) as
the real pipeline's for the same command stream.

Best configuration, and why:
- Django's connection runs with autocommit off for the worker's life (``transaction.set_autocommit``),
  so a transaction costs its statements plus one ``COMMIT``; ``atomic()`` would add two ``SET
  autocommit`` statements per order.
- The book changes as the command matches (a triggered stop must see what the orders before it did);
  when the transaction fails, the book is rebuilt from the DB before the next command.
- No monitoring events for this task (``send_events=False``): three Redis publishes per message
  that the per-order design does not need. The producer's ``task-sent`` event follows the project
  setting ``CELERY_TASK_SEND_SENT_EVENT`` like any other task.
- Worker: ``-P solo``, prefetch multiplier ``NAIVE_PREFETCH`` (see there), no gossip, mingle or
  heartbeat (``worker_argv``).

Measured per command into Redis (``spot.redis.redis_client``): ``naive:latency:<market>`` gets
``"<sent ms>:<latency ms>"`` (the engine's format), from the producer's ``apply_async`` to the
commit; ``naive:stats:<market>`` counts ``commands``, ``trades``, ``failed`` and ``statements``:
every statement Django's connection sent. An ``execute_wrapper`` sees each cursor statement; each
``COMMIT``, ``ROLLBACK`` and autocommit switch, which Django sends through the driver's own calls,
is counted where this module makes it (a test checks the sum against the server's own count).

Registration: this module is not an app's ``tasks`` module; the worker imports it with
``--include bench.naive`` (``WORKER_ARGS``), producers import it directly, and nothing in the
product imports it. The naive worker must be the only writer of its market (the loadtest gives it a
market of its own).
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise
from typing import Any

from celery import signals
from django.db import DatabaseError, connection
from django.db.models import F, Max
from django.utils import timezone

from matching.commands import CancelCommand, MalformedCommand, PlaceCommand, decode
from matching.core import (
    CancelResult,
    InvalidOrder,
    OrderType,
    PlaceResult,
    Side,
    StopCondition,
    TimeInForce,
    Trade,
    floor_units,
    to_units,
)
from matching.core import OrderStatus as CoreStatus
from matching.worker.errors import MissingBalance
from matching.worker.settlement import BASE, MarketSpec, OrderState, Settlement
from orders.balances import fee_account_id
from orders.models import Balance, Market, Order, OrderStatus
from orders.models import Trade as TradeRecord
from orders.outbox import order_command
from spot import keys
from spot.celery import app
from spot.redis import redis_client
from spot.resilience import RetryPolicy, is_transient

logger = logging.getLogger(__name__)

TASK_NAME = "bench.naive_match"
# Prefetch multiplier of the naive worker. 1, the project's setting, measured as fast as 16 and 64
# (3,000-5,000 commands, queue pre-filled or sent at rate 0): a solo worker runs each task inside its
# consumer loop and the database round trips, not the broker's, bound it. 1 also leaves no message
# reserved by a worker that could die holding it.
NAIVE_PREFETCH = 1
# Extra worker options (after ``celery -A spot worker -Q <queue_name> -P solo``): load this module,
# which is not an app's ``tasks`` module, and the prefetch chosen above. Celery multiplies the prefetch
# by the concurrency, which defaults to the CPU count even for a solo pool: hence ``-c 1``.
WORKER_ARGS = ["--include", "bench.naive", "--concurrency", "1", "--prefetch-multiplier", str(NAIVE_PREFETCH)]

_BUY = Side.BUY
_STOP_TYPES = (OrderType.STOP_LIMIT, OrderType.STOP_MARKET)


def queue_name(market_code: str) -> str:
    """The Celery queue of the market's naive worker: ``naive_btc_usdt``."""
    return f"naive_{market_code}"


def worker_argv(market_code: str, *, celery: str = "celery", loglevel: str = "warning") -> list[str]:
    """The naive worker's whole command line for one market (``celery``: path to the executable)."""
    return [
        celery, "-A", "spot", "worker", "-Q", queue_name(market_code), "-P", "solo",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-n", f"{queue_name(market_code)}@%h", "-l", loglevel, *WORKER_ARGS,
    ]  # fmt: skip


# -- the array book --------------------------------------------------------------------------------


class Resting:
    """A resting order and what its row needs beyond price and quantity (as the engine's order states):
    lots filled, quote executed in tick-lots, fee charged in base units."""

    __slots__ = ("fee", "filled", "id", "price", "quantity", "quote", "seq", "side", "user")

    def __init__(
        self,
        id: int,
        user: int,
        side: Side,
        price: int,
        quantity: int,
        seq: int,
        filled: int = 0,
        quote: int = 0,
        fee: int = 0,
    ) -> None:
        self.id = id
        self.user = user
        self.side = side
        self.price = price
        self.quantity = quantity
        self.seq = seq
        self.filled = filled
        self.quote = quote
        self.fee = fee

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled

    def __repr__(self) -> str:
        return (
            f"Resting(id={self.id}, {self.side.value} {self.remaining}/{self.quantity} @ {self.price}, seq={self.seq})"
        )


def _ahead(a: Resting, b: Resting) -> bool:
    """Whether ``a`` has priority over ``b`` on their (common) side: better price, then earlier seq."""
    if a.price != b.price:
        return a.price > b.price if a.side is _BUY else a.price < b.price
    return a.seq < b.seq


class ArrayBook:
    """Both sides of one market as Python lists sorted by price-time priority, best LAST.

    Costs: rest O(n) (a linear scan from the best end, then ``list.insert``); remove O(n) (a linear
    scan, then ``del``); a fill that exhausts the best order O(1) (``pop``). ``index`` (id -> order)
    answers "is it resting" in O(1).
    """

    __slots__ = ("asks", "bids", "index")

    def __init__(self) -> None:
        self.bids: list[Resting] = []
        self.asks: list[Resting] = []
        self.index: dict[int, Resting] = {}

    def __len__(self) -> int:
        return len(self.index)

    def side(self, side: Side) -> list[Resting]:
        return self.bids if side is _BUY else self.asks

    def opposite(self, side: Side) -> list[Resting]:
        return self.asks if side is _BUY else self.bids

    def rest(self, order: Resting) -> None:
        orders = self.side(order.side)
        i = len(orders)
        while i and _ahead(orders[i - 1], order):
            i -= 1
        orders.insert(i, order)
        self.index[order.id] = order

    def remove(self, order: Resting) -> None:
        orders = self.side(order.side)
        for i in range(len(orders) - 1, -1, -1):
            if orders[i] is order:
                del orders[i]
                break
        else:
            raise AssertionError(f"{order} is indexed but not in its list")
        del self.index[order.id]

    def orders(self) -> list[Resting]:
        """Resting orders, bids then asks, each side best first."""
        return self.bids[::-1] + self.asks[::-1]

    def check_invariants(self) -> None:
        """Assert sorted sides, a matching index, sane amounts and an uncrossed book. O(n)."""
        for side, orders in ((Side.BUY, self.bids), (Side.SELL, self.asks)):
            for a, b in pairwise(orders):
                assert _ahead(b, a), f"{side}: {b} should be ahead of {a}"
            for order in orders:
                assert order.side is side, f"{order} is on the {side} side"
                assert 0 <= order.filled < order.quantity, f"{order} is not resting"
                assert self.index.get(order.id) is order, f"{order} is not indexed"
        assert len(self.index) == len(self.bids) + len(self.asks), "index and lists disagree"
        if self.bids and self.asks:
            assert self.bids[-1].price < self.asks[-1].price, "book is crossed"


# -- the matcher -----------------------------------------------------------------------------------


class StatementCounter:
    """``connection.execute_wrapper`` that counts every statement sent through a cursor."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        self.count += 1
        return execute(sql, params, many, context)


@dataclass(frozen=True, slots=True)
class Handled:
    """What one command did: ``applied`` is false for a command that changed nothing (a cancel of an
    order not resting, an order already processed)."""

    applied: bool
    trades: int = 0


class NaiveMatcher:
    """One market's array book, and the per-command transaction. Not thread-safe: one per worker."""

    def __init__(self, spec: MarketSpec, fee_account: int, counter: StatementCounter) -> None:
        self.spec = spec
        self.fee_account = fee_account
        self.counter = counter
        self.book = ArrayBook()
        self.last_seq = 0
        self.stops: dict[int, PlaceCommand] = {}  # waiting stop orders, in placement order
        self.last_price: int | None = None  # of the market's latest trade, in ticks
        self._stale = False  # the book changed in a transaction that failed: rebuild it first

    @classmethod
    def load(cls, market_id: int, counter: StatementCounter) -> NaiveMatcher:
        """Build the market's book from the DB: its open orders by ``seq``. Its statements are counted
        when ``counter`` is installed (``connection.execute_wrapper(counter)``)."""
        market = Market.objects.get(id=market_id)
        matcher = cls(MarketSpec.from_market(market), fee_account_id(market), counter)
        matcher.rebuild()
        return matcher

    def rebuild(self) -> None:
        spec = self.spec
        book = ArrayBook()
        market_orders = Order.objects.filter(coin=spec.coin, currency=spec.currency)
        resting = market_orders.filter(status__in=(OrderStatus.PENDING, OrderStatus.PARTIALLY_FILLED)).order_by("seq")
        fields = (
            "id",
            "user_id",
            "trade_type",
            "price",
            "quantity",
            "executed_quantity",
            "executed_quote",
            "fee",
            "seq",
        )
        rows = list(resting.values_list(*fields))
        # Sequence numbers continue after the highest ever given, not only the highest resting.
        self.last_seq = market_orders.aggregate(last=Max("seq"))["last"] or 0
        for oid, user, side, price, quantity, executed, quote, fee, seq in rows:
            book.rest(
                Resting(
                    oid,
                    user,
                    Side(side),
                    to_units(price, spec.tick_size, what="price"),
                    to_units(quantity, spec.lot_size, what="quantity"),
                    seq or 0,
                    to_units(executed, spec.lot_size, what="executed quantity"),
                    to_units(quote, spec.tick_size * spec.lot_size, what="executed quote"),
                    to_units(fee, BASE, what="fee"),
                )
            )
        book.check_invariants()
        waiting = market_orders.filter(status=OrderStatus.STOPPING).order_by("seq")
        self.stops = {order.id: order_command(order, "") for order in waiting}
        last = TradeRecord.objects.filter(coin=spec.coin, currency=spec.currency).order_by("-created_at", "-id")
        last_trade = last.values_list("price", flat=True).first()
        self.last_price = None if last_trade is None else to_units(last_trade, spec.tick_size, what="price")
        self._end_transaction()
        self.book = book
        self._stale = False

    # -- one command, one transaction ----------------------------------------------------------

    def handle(self, command_json: str | bytes) -> Handled:
        """Apply one JSON command in one transaction. Raises ``MalformedCommand``, ``MissingBalance`` or
        a DB error, with everything rolled back and the book unchanged."""
        command = decode(command_json)
        if command.market is not None and command.market != self.spec.code:
            raise MalformedCommand(f"market {command.market!r} is not {self.spec.code!r}")
        if self._stale:
            self.rebuild()
        self._manual_transactions()
        try:
            if isinstance(command, PlaceCommand):
                return self._place(command)
            return self._cancel(command)
        except BaseException:
            self._rollback()
            self._stale = True
            raise

    def _place(self, command: PlaceCommand) -> Handled:
        spec = self.spec
        if command.id in self.book.index or command.id in self.stops:
            logger.warning("naive %s: order %s is already in the book; duplicate ignored", spec.code, command.id)
            return Handled(False)
        if command.held is None:
            raise MalformedCommand(f"order {command.id}: the command does not say what the order holds")
        row = Order.objects.select_for_update().get(id=command.id)  # lock and read the order row
        if row.status != OrderStatus.NEW:
            self._commit()  # processed before (a redelivered message): release the lock, change nothing
            return Handled(False)
        seq = self.last_seq + 1
        effects = Settlement(spec, self.fee_account)
        try:
            quantity, price, budget, base = self._units(command)
        except InvalidOrder as exc:
            logger.warning("naive %s: order %s rejected: %s", spec.code, command.id, exc)
            effects.reject(command, seq, str(exc))
            self._write(effects)
            self.last_seq = seq
            return Handled(True)
        if base is not None and (self.last_price is None or not _triggers(command, base, self.last_price)):
            effects.wait(command, seq)  # a stop order waits for its trigger
            self._write(effects)
            self.last_seq = seq
            self.stops[command.id] = command
            return Handled(True)

        # The order enters the book (a stop too, when the last trade price already triggers it), then
        # each stop its trades trigger, and each stop theirs trigger, first in first out.
        trades = self._enter(command, quantity, price, budget, seq, effects)
        count = len(trades)
        queue = deque(self._triggered_by(trades))
        while queue:
            stop = queue.popleft()
            seq += 1
            quantity, price, budget, _ = self._units(stop)
            trades = self._enter(stop, quantity, price, budget, seq, effects)
            count += len(trades)
            queue.extend(self._triggered_by(trades))
        self._write(effects)
        self.last_seq = seq
        return Handled(True, count)

    def _enter(
        self,
        command: PlaceCommand,
        quantity: int,
        price: int | None,
        budget: int | None,
        seq: int,
        effects: Settlement,
    ) -> list[Trade]:
        """Match one order (a placed one, or a stop that triggered, as the limit or market order it
        becomes) against the array book, settle it into ``effects`` and change the book; returns its
        trades."""
        side, tif = command.side, command.tif
        market_order = command.type in (OrderType.MARKET, OrderType.STOP_MARKET)
        if market_order:
            tif = TimeInForce.IOC  # market orders never rest
        opposite = self.book.opposite(side)
        fills: list[Trade] = []
        makers: dict[int, OrderState] = {}  # each filled maker's state before this order
        remaining, notional = quantity, 0
        if tif is not TimeInForce.FOK or self._can_fill(opposite, side, price, quantity):
            for maker in reversed(opposite):  # best first
                if not remaining:
                    break
                if price is not None and (maker.price > price if side is _BUY else maker.price < price):
                    break
                fill = min(remaining, maker.remaining)
                if budget is not None:
                    fill = min(fill, budget // maker.price)
                    if not fill:
                        break
                    budget -= fill * maker.price
                remaining -= fill
                notional += fill * maker.price
                fills.append(
                    Trade(
                        command.id, maker.id, command.user, maker.user, side, maker.price, fill, maker.remaining - fill
                    )
                )
                makers[maker.id] = OrderState(maker.filled, maker.quote, maker.fee)
        filled = quantity - remaining
        rests = bool(remaining) and not market_order and tif is TimeInForce.GTC
        if not remaining:
            status = CoreStatus.EXECUTED
        elif rests:
            status = CoreStatus.PARTIALLY_FILLED if filled else CoreStatus.PENDING
        else:
            status = CoreStatus.CANCELED
        result = PlaceResult(command.id, status, filled, remaining if rests else 0, notional, seq, fills)
        index = self.book.index
        changed = effects.place(command, result, makers)  # the engine's settlement, the same rules
        for order_id, state in changed:
            if order_id == command.id:
                if state is not None:
                    assert price is not None
                    self.book.rest(
                        Resting(
                            command.id, command.user, side, price, quantity, seq, state.filled, state.quote, state.fee
                        )
                    )
            elif state is None:
                assert opposite[-1].id == order_id, "an exhausted maker is always the best of its side"
                del index[opposite.pop().id]
            else:
                maker = index[order_id]
                maker.filled, maker.quote, maker.fee = state.filled, state.quote, state.fee
        if fills:
            self.last_price = fills[-1].price
        return fills

    def _triggered_by(self, trades: list[Trade]) -> list[PlaceCommand]:
        """Take out of waiting every stop that one of these trades' prices triggers, in placement order."""
        if not trades or not self.stops:
            return []
        hit = [stop for stop in self.stops.values() if any(_triggers(stop, self._base(stop), t.price) for t in trades)]
        for stop in hit:
            del self.stops[stop.id]
        return hit

    def _base(self, stop: PlaceCommand) -> int:
        """A waiting stop's base price in ticks (it was checked when it was placed)."""
        assert stop.base_price is not None, "a waiting stop has a base price"
        return to_units(stop.base_price, self.spec.tick_size, what="base price")

    def _cancel(self, command: CancelCommand) -> Handled:
        stop = self.stops.get(command.id)
        if stop is not None and (command.user is None or stop.user == command.user):
            Order.objects.select_for_update().get(id=command.id)  # lock and read the order row
            effects = Settlement(self.spec, self.fee_account)
            lots = to_units(stop.quantity, self.spec.lot_size, what="quantity")
            price = 0 if stop.price is None else to_units(stop.price, self.spec.tick_size, what="price")
            effects.cancel_stop(CancelResult(stop.id, stop.user, stop.side, price, 0, lots, True), stop)
            self._write(effects)
            del self.stops[command.id]
            return Handled(True)
        order = self.book.index.get(command.id)
        if order is None or (command.user is not None and order.user != command.user):
            return Handled(False)  # not resting (or a forged user): nothing to write, as in the engine
        Order.objects.select_for_update().get(id=command.id)  # lock and read the order row
        effects = Settlement(self.spec, self.fee_account)
        canceled = CancelResult(order.id, order.user, order.side, order.price, order.filled, order.remaining)
        effects.cancel(canceled, OrderState(order.filled, order.quote, order.fee))
        self._write(effects)
        self.book.remove(order)
        return Handled(True)

    # -- rules, as matching.matcher.MarketMatcher and matching.core.OrderBook apply them -------

    def _units(self, command: PlaceCommand) -> tuple[int, int | None, int | None, int | None]:
        """(quantity lots, price ticks, budget tick-lots, base price ticks); raises ``InvalidOrder`` as
        the matcher and the core would."""
        spec = self.spec
        quantity = to_units(command.quantity, spec.lot_size, what="quantity")
        price = None if command.price is None else to_units(command.price, spec.tick_size, what="price")
        budget = None
        if command.quote_budget is not None:
            budget = floor_units(command.quote_budget, spec.tick_size * spec.lot_size, what="quote budget")
        base = None if command.base_price is None else to_units(command.base_price, spec.tick_size, what="base price")
        oid = command.id
        if command.type in _STOP_TYPES:
            if base is None or base <= 0:
                raise InvalidOrder(f"order {oid}: a stop order needs a positive base price")
            if command.stop_condition is None:
                raise InvalidOrder(f"order {oid}: a stop order needs a stop condition (ge or le)")
        elif base is not None or command.stop_condition is not None:
            raise InvalidOrder(f"order {oid}: a base price and a stop condition are for stop orders only")
        if quantity <= 0:
            raise InvalidOrder(f"order {oid}: quantity must be positive")
        if command.type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            if price is None or price <= 0:
                raise InvalidOrder(f"order {oid}: a limit order needs a positive price")
            if budget is not None:
                raise InvalidOrder(f"order {oid}: a quote budget is for market buys only")
        else:
            if price is not None:
                raise InvalidOrder(f"order {oid}: a market order takes no price")
            if budget is not None and (command.side is not _BUY or budget <= 0):
                raise InvalidOrder(f"order {oid}: a quote budget must be positive, on a buy")
        return quantity, price, budget, base

    @staticmethod
    def _can_fill(opposite: list[Resting], side: Side, price: int | None, quantity: int) -> bool:
        """Whether the opposite side holds ``quantity`` lots at ``price`` or better (fill or kill). O(n)."""
        available = 0
        for maker in reversed(opposite):
            if price is not None and (maker.price > price if side is _BUY else maker.price < price):
                return False
            available += maker.remaining
            if available >= quantity:
                return True
        return False

    # -- rows ----------------------------------------------------------------------------------

    # -- rows: one statement per row, then COMMIT -----------------------------------------------

    def _write(self, effects: Settlement) -> None:
        """Write one command's settled effects row by row, then commit: per trade an ``UPDATE`` of the
        maker and an ``INSERT`` of the trade, the order's own ``UPDATE``, one ``UPDATE`` per balance
        row in (user, asset) order (the schema's CHECK constraints refuse a negative balance)."""
        now = timezone.now()
        spec = self.spec
        for row in effects.orders.values():
            values: dict[str, Any] = {
                "status": row.status,
                "executed_quantity": row.executed_quantity,
                "executed_quote": row.executed_quote,
                "average_price": row.average_price,
                "fee": row.fee,
                "updated_at": now,  # update() does not apply auto_now
            }
            if row.seq is not None:
                values["seq"] = row.seq
            if row.reason is not None:
                values["reject_reason"] = row.reason
            if Order.objects.filter(id=row.id).update(**values) != 1:
                raise RuntimeError(f"order {row.id} does not exist")
        for trade in effects.trades:
            TradeRecord.objects.create(
                coin=spec.coin,
                currency=spec.currency,
                buy_order_id=trade.buy_order,
                sell_order_id=trade.sell_order,
                taker_side=trade.taker_side,
                price=trade.price,
                quantity=trade.quantity,
                buyer_fee=trade.buyer_fee,
                seller_fee=trade.seller_fee,
                created_at=now,
            )
        for balance in effects.balance_rows():
            changes: dict[str, Any] = {"updated_at": now}
            total, held = Decimal(balance.total), Decimal(balance.held)
            if total:
                changes["total"] = F("total") + total
            if held:
                changes["held"] = F("held") + held
            if Balance.objects.filter(user_id=balance.user, asset=balance.asset).update(**changes) != 1:
                raise MissingBalance(f"user {balance.user} has no {balance.asset} balance row")
        self._commit()

    # -- transaction control (sent through the driver, so counted here) ------------------------

    def _manual_transactions(self) -> None:
        if connection.get_autocommit():
            self.counter.count += 1  # SET autocommit=0
            connection.set_autocommit(False)

    def _commit(self) -> None:
        self.counter.count += 1
        connection.commit()

    def _rollback(self) -> None:
        if connection.connection is None:
            return
        self.counter.count += 1
        try:
            connection.rollback()
        except DatabaseError:
            logger.warning("naive %s: rollback failed; closing the connection", self.spec.code, exc_info=True)
            _close_connection()

    def _end_transaction(self) -> None:
        if not connection.get_autocommit():
            self._commit()


def _triggers(stop: PlaceCommand, base: int, price: int) -> bool:
    """Whether a trade at ``price`` (ticks) triggers the stop order whose base price is ``base``."""
    return price >= base if stop.stop_condition is StopCondition.GE else price <= base


# -- the worker's side -----------------------------------------------------------------------------

_counter = StatementCounter()  # this process's statements through Django's connection
_matchers: dict[int, NaiveMatcher] = {}  # market id -> matcher (a re-created market gets a fresh book)


def matcher_for(market_id: int) -> NaiveMatcher:
    """This process's matcher for the market, built from the DB on first use."""
    matcher = _matchers.get(market_id)
    if matcher is None:
        matcher = _matchers[market_id] = NaiveMatcher.load(market_id, _counter)
        logger.info("naive %s: %s resting orders loaded", matcher.spec.code, len(matcher.book))
    return matcher


def forget_matchers() -> None:
    """Drop this process's books (they are rebuilt from the DB on the next command)."""
    _matchers.clear()


@app.task(bind=True, name=TASK_NAME, acks_late=True, ignore_result=True, send_events=False)
def naive_match(self: Any, market_id: int, command_json: str, sent_at: float) -> int:
    """Apply one command of the market in one transaction; returns its trades.

    ``sent_at`` is the producer's ``time.time()`` when it sent the message; the latency recorded is
    from then to the commit. A transient DB fault is retried with FR-RL-002 backoff (the command then
    runs after the ones sent behind it, as in any per-order job queue); the book is rebuilt from the
    DB after any failure. A command that fails for good is logged and counted as ``failed``.
    """
    before = _counter.count
    try:
        with connection.execute_wrapper(_counter):
            matcher = matcher_for(market_id)
            try:
                handled = matcher.handle(command_json)
            except Exception:
                _matchers.pop(market_id, None)
                raise
        committed_ms = int(time.time() * 1000)
    except Exception as exc:
        policy = RetryPolicy.from_settings()
        code = _market_code(market_id)
        if is_transient(exc) and self.request.retries < policy.max_retries:
            _close_connection()
            _record(code, statements=_counter.count - before)
            raise self.retry(exc=exc, countdown=policy.delay(self.request.retries)) from exc
        logger.exception("naive %s: command failed: %.200s", code, command_json)
        _record(code, statements=_counter.count - before, commands=1, failed=1)
        return 0
    sent_ms = int(sent_at * 1000)
    _record(
        matcher.spec.code,
        statements=_counter.count - before,
        commands=1,
        trades=handled.trades,
        sample=f"{sent_ms}:{committed_ms - sent_ms}",
    )
    return handled.trades


@signals.worker_ready.connect
def _announce(sender: object = None, **_: object) -> None:
    """A worker consuming naive queues says so (``ready``)."""
    for code in _served_markets():
        redis_client().set(keys.naive_ready(code), os.getpid())


@signals.worker_shutdown.connect
def _retire(**_: object) -> None:
    for code in _served_markets():
        redis_client().delete(keys.naive_ready(code))
    forget_matchers()


def _served_markets() -> list[str]:
    try:
        queues = set(app.amqp.queues.consume_from or {})
    except AttributeError:
        return []
    return sorted(q.removeprefix("naive_") for q in queues if q.startswith("naive_"))


def _close_connection() -> None:
    """After a transient fault: the next command reconnects (and switches autocommit off again)."""
    try:
        connection.close()
    except DatabaseError:
        logger.debug("closing a broken connection", exc_info=True)


def _market_code(market_id: int) -> str:
    matcher = _matchers.get(market_id)
    if matcher is not None:
        return matcher.spec.code
    try:
        market = Market.objects.filter(id=market_id).first()
    except DatabaseError:
        market = None
    return market.code if market is not None else f"market{market_id}"


def _record(
    code: str, *, statements: int, commands: int = 0, trades: int = 0, failed: int = 0, sample: str | None = None
) -> None:
    """One Redis round trip per command: its latency sample and the counters."""
    pipe = redis_client().pipeline(transaction=False)
    if sample is not None:
        pipe.rpush(keys.naive_latency(code), sample)
    key = keys.naive_stats(code)
    for name, amount in (("commands", commands), ("trades", trades), ("failed", failed), ("statements", statements)):
        if amount:
            pipe.hincrby(key, name, amount)
    pipe.execute()


# -- the producer's side (the loadtest) ------------------------------------------------------------


def send_naive(market: Market | str, stream_items: Sequence[tuple[str, int | None]], rate: float = 0) -> float:
    """Send one Celery message per command of ``stream_items`` (``bench.feed.accept``'s output) to the
    market's naive queue, at ``rate`` commands/s on an open-loop schedule (``0``: as fast as
    possible), like ``bench.feed.push``. Returns the seconds it took."""
    if isinstance(market, str):
        from orders.services import market_by_code

        market = market_by_code(market)
    queue = queue_name(market.code)
    market_id = market.id
    send = naive_match.apply_async
    started = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for index, (command_json, _order_id) in enumerate(stream_items):
            if rate:
                pause = started + index / rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
            send((market_id, command_json, time.time()), queue=queue, producer=producer)
    return time.perf_counter() - started


def ready(market_code: str) -> bool:
    """Whether a naive worker consumes the market's queue."""
    return bool(redis_client().exists(keys.naive_ready(market_code)))


def reset(market_code: str) -> None:
    """Forget the market's samples and counters (before a run on a market used before)."""
    redis_client().delete(keys.naive_latency(market_code), keys.naive_stats(market_code))


def stats(market_code: str) -> dict[str, int]:
    """The market's counters: commands, trades, failed, statements (missing ones are 0)."""
    raw = redis_client().hgetall(keys.naive_stats(market_code))
    counters = {"commands": 0, "trades": 0, "failed": 0, "statements": 0}
    counters.update({k.decode(): int(v) for k, v in raw.items()})
    return counters


def processed(market_code: str) -> int:
    """Commands the naive worker finished (applied, ignored or failed)."""
    return stats(market_code)["commands"]


def statements(market_code: str) -> int:
    """Statements the naive worker's connection sent for the market (start-up included)."""
    return stats(market_code)["statements"]


def samples(market_code: str) -> list[tuple[int, int]]:
    """``(sent ms, latency ms)`` per committed command, in commit order."""
    raws = redis_client().lrange(keys.naive_latency(market_code), 0, -1)
    return [(int(sent), int(latency)) for sent, latency in (raw.split(b":") for raw in raws)]
