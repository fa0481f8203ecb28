"""The heap order book of one market (FR-DS-001, FR-PF-003).

Shape (CPython ``heapq`` "priority queue implementation notes"):

- bids: a max-heap of ``(-price, seq, order)``; asks: a min-heap of ``(price, seq, order)``. The unique
  ``seq`` breaks price ties by arrival (time priority) and keeps tuple comparison off the ``Order``.
- ``_orders``: id -> resting ``Order``. Cancel removes the order from this index and marks it dead
  (``remaining = 0``); its heap entry is dropped lazily when it reaches the top, so cancel costs
  O(1) plus an occasional O(n) compaction amortised over at least n/2 cancels.
- per side, ``price -> [lots, orders]`` level aggregates, so depth snapshots and fill-or-kill
  checks read price levels, never individual orders.
- stop orders waiting for their trigger (status ``stopping``) live outside the book: ``_stops`` (id ->
  ``StopOrder``) and one heap per condition, ``ge`` a min-heap of ``(base price, seq, stop)`` and ``le``
  a max-heap of ``(-base price, seq, stop)``, so the stops a trade triggers are the tops of the heaps.
  Cancel and trigger mark a stop dead (``waiting = False``) as for resting orders.

Stop orders (issue 10): ``last_price`` is the price of the market's latest trade. A ``ge`` stop
triggers when a trade happens at or above its base price, a ``le`` stop at or below; one that the last
trade price already satisfies when it is placed triggers at once, as part of its placement. The stops
triggered by a command's trades enter the book after the command, in placement order, each with a new
sequence number from the book's counter (time priority from its trigger), as a limit order at its
price or a market order; the stops their own trades trigger are queued after them (first in, first
out). All of it is one ``place`` call: its result lists them in ``triggered``.

Costs: place that rests O(log n); each fill O(log n); cancel O(1) amortised; best price O(1)
amortised; ``depth(k)`` O(L log k) over L price levels; a stop waits in O(log s) over s waiting stops,
and the k stops a command triggers are found in O(k log s). With no stop waiting, a place pays one
dict lookup and one truth test more than a book without stops. Prices are integer ticks and quantities
integer lots; matching is deterministic (same commands, same results).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from heapq import heapify, heappop, heappush, nlargest, nsmallest

from matching.core.errors import DuplicateOrder, InvalidOrder, UnknownOrder
from matching.core.model import (
    CancelResult,
    Order,
    OrderStatus,
    OrderType,
    PlaceResult,
    Side,
    StopCondition,
    StopOrder,
    TimeInForce,
    Trade,
)

# Compact a side's heap once it holds more dead entries than live ones (and at least this many), so
# memory stays within 2x the live orders while compaction stays rare.
COMPACT_MIN_DEAD = 1024

_BUY = Side.BUY
_SELL = Side.SELL
_LIMIT = OrderType.LIMIT
_MARKET = OrderType.MARKET
_STOP_TYPES = (OrderType.STOP_LIMIT, OrderType.STOP_MARKET)
_GE = StopCondition.GE


class OrderBook:
    """Price-time priority limit order book with lazy cancel. Not thread-safe: one writer."""

    __slots__ = (
        "_ask_levels",
        "_asks",
        "_bid_levels",
        "_bids",
        "_cascading",
        "_dead_asks",
        "_dead_bids",
        "_dead_ge",
        "_dead_le",
        "_ge",
        "_last_price",
        "_le",
        "_next_seq",
        "_orders",
        "_stop_seq",
        "_stops",
    )

    def __init__(self) -> None:
        self._bids: list[tuple[int, int, Order]] = []
        self._asks: list[tuple[int, int, Order]] = []
        self._bid_levels: dict[int, list[int]] = {}
        self._ask_levels: dict[int, list[int]] = {}
        self._orders: dict[int, Order] = {}
        self._dead_bids = 0
        self._dead_asks = 0
        self._next_seq = 1
        self._stops: dict[int, StopOrder] = {}
        self._ge: list[tuple[int, int, StopOrder]] = []
        self._le: list[tuple[int, int, StopOrder]] = []
        self._dead_ge = 0
        self._dead_le = 0
        self._stop_seq = 0  # the highest sequence number of a stop that waited (restore_stop's order)
        self._last_price: int | None = None
        self._cascading = False  # entering triggered stops: place leaves the stops its trades trigger to it

    # -- reads ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of resting orders (waiting stops not included: see ``stop_count``)."""
        return len(self._orders)

    def __contains__(self, order_id: object) -> bool:
        """Whether the id is open here: a resting order or a waiting stop (so a place with it is a
        duplicate, and a cancel of it applies)."""
        return order_id in self._orders or order_id in self._stops

    def get(self, order_id: int) -> Order | None:
        """The resting order with this id, or None (a waiting stop is ``get_stop``'s)."""
        return self._orders.get(order_id)

    def get_stop(self, order_id: int) -> StopOrder | None:
        """The waiting stop order with this id, or None."""
        return self._stops.get(order_id)

    @property
    def stop_count(self) -> int:
        """Number of stop orders waiting for their trigger."""
        return len(self._stops)

    def stops(self) -> Iterator[StopOrder]:
        """Waiting stop orders in placement order (``seq``). O(s log s)."""
        yield from sorted(self._stops.values(), key=lambda stop: stop.seq)

    @property
    def next_seq(self) -> int:
        """The sequence number the next order gets when none is given. After a place, it is above
        every sequence number the command used, the triggered stops' included."""
        return self._next_seq

    @property
    def last_price(self) -> int | None:
        """The price of the market's latest trade in ticks, or None before any trade. Settable for a
        rebuild (before ``restore_stop``); it is what stops are checked against at placement."""
        return self._last_price

    @last_price.setter
    def last_price(self, price: int | None) -> None:
        if price is not None and price <= 0:
            raise InvalidOrder(f"a last trade price must be positive, not {price}")
        self._last_price = price

    def best_bid(self) -> int | None:
        """Highest resting bid price in ticks, or None. O(1) amortised."""
        order = self._top(self._bids, _BUY)
        return None if order is None else order.price

    def best_ask(self) -> int | None:
        """Lowest resting ask price in ticks, or None. O(1) amortised."""
        order = self._top(self._asks, _SELL)
        return None if order is None else order.price

    def depth(self, levels: int | None = None) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Aggregated ``(price, lots)`` levels, best first: ``(bids, asks)``.

        With ``levels`` given, only the top ``levels`` of each side, in O(L log levels).
        """
        if levels is None:
            bid_prices = sorted(self._bid_levels, reverse=True)
            ask_prices = sorted(self._ask_levels)
        else:
            bid_prices = nlargest(levels, self._bid_levels)
            ask_prices = nsmallest(levels, self._ask_levels)
        bids = [(p, self._bid_levels[p][0]) for p in bid_prices]
        asks = [(p, self._ask_levels[p][0]) for p in ask_prices]
        return bids, asks

    def orders(self) -> Iterator[Order]:
        """Resting orders, bids then asks, each side in priority order. O(n log n)."""
        bids = sorted((o for o in self._orders.values() if o.side is _BUY), key=lambda o: (-o.price, o.seq))
        asks = sorted((o for o in self._orders.values() if o.side is _SELL), key=lambda o: (o.price, o.seq))
        yield from bids
        yield from asks

    # -- commands ------------------------------------------------------------------------------

    def place(
        self,
        order_id: int,
        user: int,
        side: Side,
        quantity: int,
        price: int | None = None,
        order_type: OrderType = OrderType.LIMIT,
        tif: TimeInForce = TimeInForce.GTC,
        seq: int | None = None,
        quote_budget: int | None = None,
        stop_price: int | None = None,
        stop_condition: StopCondition | None = None,
    ) -> PlaceResult:
        """Match an incoming order against the book, then rest what a gtc limit order has left.

        ``quote_budget`` (market buys only) caps what the order may spend, in tick-lots; the order
        stops when either its quantity or its budget is used up. Market orders behave as ioc.

        A stop order (``STOP_LIMIT`` with a price, ``STOP_MARKET`` without) needs ``stop_price`` (its
        base price, ticks) and ``stop_condition``; the other types refuse both. It waits (status
        ``STOPPING``) unless the last trade price already satisfies its condition; then it enters the
        book at once, as this command (same ``seq``, ``trigger_price`` set).

        The stops that the trades trigger enter the book before this returns (see the module's
        docstring); their results are in the returned result's ``triggered``, and ``next_seq`` is
        past the sequence numbers they took. Raises ``InvalidOrder`` (nothing changed) when the values
        break a rule.
        """
        if order_id in self._orders or order_id in self._stops:
            raise DuplicateOrder(f"order {order_id} is already in the book")
        if quantity <= 0:
            raise InvalidOrder(f"order {order_id}: quantity must be positive")
        if order_type is not _LIMIT and order_type is not _MARKET:
            return self._place_stop(
                order_id, user, side, quantity, price, order_type, tif, seq, quote_budget, stop_price, stop_condition
            )
        if stop_price is not None or stop_condition is not None:
            raise InvalidOrder(f"order {order_id}: a base price and a stop condition are for stop orders only")
        if order_type is _LIMIT:
            if price is None or price <= 0:
                raise InvalidOrder(f"order {order_id}: a limit order needs a positive price")
            if quote_budget is not None:
                raise InvalidOrder(f"order {order_id}: a quote budget is for market buys only")
        else:
            if price is not None:
                raise InvalidOrder(f"order {order_id}: a market order takes no price")
            if quote_budget is not None and (side is not _BUY or quote_budget <= 0):
                raise InvalidOrder(f"order {order_id}: a quote budget must be positive, on a buy")
            tif = TimeInForce.IOC
        if seq is None:
            seq = self._next_seq
        elif seq < self._next_seq:
            raise InvalidOrder(f"order {order_id}: sequence {seq} is behind {self._next_seq}")
        self._next_seq = seq + 1
        if side is _BUY:
            heap, levels, limit_key = self._asks, self._ask_levels, price
        else:
            heap, levels = self._bids, self._bid_levels
            limit_key = None if price is None else -price

        result = PlaceResult(order_id, OrderStatus.CANCELED, 0, 0, 0, seq, [], None, [])
        if tif is TimeInForce.FOK and not self._can_fill(levels, side, price, quantity):
            return result

        trades = result.trades
        remaining = quantity
        notional = 0
        budget = quote_budget
        orders = self._orders
        while remaining:
            if not heap:
                break
            key, _, maker = heap[0]
            if not maker.remaining:  # lazily deleted (canceled)
                heappop(heap)
                if side is _BUY:
                    self._dead_asks -= 1
                else:
                    self._dead_bids -= 1
                continue
            if limit_key is not None and key > limit_key:
                break
            maker_price = maker.price
            fill = remaining if remaining < maker.remaining else maker.remaining
            if budget is not None:
                affordable = budget // maker_price
                if affordable < fill:
                    fill = affordable
                if not fill:
                    break
                budget -= fill * maker_price
            remaining -= fill
            notional += fill * maker_price
            maker.remaining -= fill
            maker.filled += fill
            level = levels[maker_price]
            level[0] -= fill
            if not maker.remaining:
                heappop(heap)
                del orders[maker.id]
                level[1] -= 1
                if not level[1]:
                    del levels[maker_price]
            trades.append(Trade(order_id, maker.id, user, maker.user, side, maker_price, fill, maker.remaining))

        filled = quantity - remaining
        result.filled = filled
        result.notional = notional
        if not remaining:
            result.status = OrderStatus.EXECUTED
        elif order_type is _LIMIT and tif is TimeInForce.GTC:
            assert price is not None
            self._rest(Order(order_id, user, side, price, quantity, seq, filled))
            result.remaining = remaining
            result.status = OrderStatus.PARTIALLY_FILLED if filled else OrderStatus.PENDING
        if trades:
            last = self._last_price = trades[-1].price
            if self._stops and not self._cascading:
                # Only a stop at the top of its heap can be due (a dead top may give a false alarm,
                # which _cascade clears): most trades trigger nothing, and this costs two peeks.
                first = trades[0].price
                ge, le = self._ge, self._le
                if (ge and ge[0][0] <= (first if first > last else last)) or (
                    le and -le[0][0] >= (last if first > last else first)
                ):
                    self._cascade(result)
        return result

    def restore(self, order_id: int, user: int, side: Side, price: int, quantity: int, filled: int, seq: int) -> None:
        """Rest an order as it was, without matching: rebuilds a book from storage.

        Orders must come in increasing ``seq``. Raises ``InvalidOrder`` on bad values; a restored set
        that crosses is caught by ``check_invariants()``.
        """
        if order_id in self._orders:
            raise DuplicateOrder(f"order {order_id} is already in the book")
        if price <= 0 or not 0 <= filled < quantity:
            raise InvalidOrder(f"order {order_id}: cannot rest price={price} quantity={quantity} filled={filled}")
        if seq < self._next_seq:
            raise InvalidOrder(f"order {order_id}: sequence {seq} is behind {self._next_seq}")
        self._next_seq = seq + 1
        self._rest(Order(order_id, user, side, price, quantity, seq, filled))

    def restore_stop(
        self,
        order_id: int,
        user: int,
        side: Side,
        quantity: int,
        price: int | None,
        order_type: OrderType,
        tif: TimeInForce,
        quote_budget: int | None,
        stop_price: int,
        stop_condition: StopCondition,
        seq: int,
    ) -> None:
        """Put back a waiting stop order as it was: rebuilds a book from storage.

        Call it after the resting orders' ``restore`` and after setting ``last_price``, with the stops in
        increasing ``seq`` (their placement order); their seqs need not interleave with the resting
        orders': ``next_seq`` ends above both. Raises ``InvalidOrder`` on bad values, on a seq out of
        order, or for a stop whose condition the last trade price already satisfies (it would have
        triggered).
        """
        if order_id in self._orders or order_id in self._stops:
            raise DuplicateOrder(f"order {order_id} is already in the book")
        if quantity <= 0:
            raise InvalidOrder(f"order {order_id}: quantity must be positive")
        stop = self._new_stop(
            order_id, user, side, quantity, price, order_type, tif, quote_budget, stop_price, stop_condition, seq
        )
        if seq <= self._stop_seq:
            raise InvalidOrder(f"order {order_id}: stop sequence {seq} is not after {self._stop_seq}")
        if self._last_price is not None and stop.triggers_at(self._last_price):
            raise InvalidOrder(f"order {order_id}: the last trade price {self._last_price} has triggered it")
        if seq >= self._next_seq:
            self._next_seq = seq + 1
        self._wait(stop)

    def cancel(self, order_id: int) -> CancelResult:
        """Remove a resting order or a waiting stop. Raises ``UnknownOrder`` if it is neither.
        O(1) amortised."""
        order = self._orders.pop(order_id, None)
        if order is None:
            stop = self._stops.pop(order_id, None)
            if stop is None:
                raise UnknownOrder(f"order {order_id} is not resting in the book nor a waiting stop")
            stop.waiting = False
            if stop.condition is _GE:
                self._dead_ge += 1
            else:
                self._dead_le += 1
            self._maybe_compact_stops()
            return CancelResult(order_id, stop.user, stop.side, stop.price or 0, 0, stop.quantity, True)
        if order.side is _BUY:
            levels = self._bid_levels
            self._dead_bids += 1
        else:
            levels = self._ask_levels
            self._dead_asks += 1
        level = levels[order.price]
        level[0] -= order.remaining
        level[1] -= 1
        if not level[1]:
            del levels[order.price]
        canceled = order.remaining
        order.remaining = 0  # dead: the heap entry is dropped when it surfaces
        self._maybe_compact(order.side)
        return CancelResult(order_id, order.user, order.side, order.price, order.filled, canceled)

    # -- invariants ----------------------------------------------------------------------------

    def check_invariants(self) -> None:
        """Assert every structural invariant; raises ``AssertionError`` naming the broken one.

        O(n) time; memory of two sets of ints (ids and sequence numbers), so it can run on a book of
        a million orders at start-up.
        """
        orders = self._orders
        seqs: set[int] = set()
        for side, heap, levels, dead in (
            (_BUY, self._bids, self._bid_levels, self._dead_bids),
            (_SELL, self._asks, self._ask_levels, self._dead_asks),
        ):
            seen: set[int] = set()
            dead_seen = 0
            sums: dict[int, list[int]] = {}
            for key, seq, order in heap:
                assert order.side is side, f"{order} is in the {side} heap"
                assert key == (-order.price if side is _BUY else order.price), f"bad heap key for {order}"
                assert seq == order.seq, f"heap seq {seq} differs from {order}"
                if not order.remaining:
                    dead_seen += 1
                    continue
                assert order.id not in seen, f"{order} is twice in the heap"
                assert orders.get(order.id) is order, f"{order} is in the heap but not in the index"
                assert order.remaining > 0 and order.filled >= 0, f"{order} has a negative amount"
                assert order.filled + order.remaining == order.quantity, f"{order} does not add up"
                assert order.seq < self._next_seq, f"{order} has a sequence from the future"
                assert seq not in seqs, f"two resting orders share sequence number {seq}"
                seen.add(order.id)
                seqs.add(seq)
                agg = sums.setdefault(order.price, [0, 0])
                agg[0] += order.remaining
                agg[1] += 1
            assert dead_seen == dead, f"{side}: {dead_seen} dead heap entries, counter says {dead}"
            # Every live heap order is indexed under its id (checked above); equal counts make the two
            # sets equal without building a second one.
            indexed = sum(1 for o in orders.values() if o.side is side)
            assert len(seen) == indexed, f"{side}: heap and index disagree ({len(seen)} live, {indexed} indexed)"
            assert sums == levels, f"{side}: level aggregates {levels} differ from the orders' {sums}"
        bid, ask = self.best_bid(), self.best_ask()
        assert bid is None or ask is None or bid < ask, f"book is crossed: bid {bid} >= ask {ask}"
        self._check_stops(seqs)

    def _check_stops(self, seqs: set[int]) -> None:
        """The waiting stops: heaps against the index, dead counters, values, none that the last trade
        price has triggered, sequence numbers unique (also against the resting orders' ``seqs``)."""
        stops = self._stops
        last = self._last_price
        assert last is None or last > 0, f"last trade price {last} is not positive"
        live = 0
        for condition, heap, dead in ((_GE, self._ge, self._dead_ge), (StopCondition.LE, self._le, self._dead_le)):
            dead_seen = 0
            for key, seq, stop in heap:
                assert key == (stop.stop_price if condition is _GE else -stop.stop_price), f"bad heap key for {stop}"
                assert seq == stop.seq, f"heap seq {seq} differs from {stop}"
                if not stop.waiting:
                    dead_seen += 1
                    assert stops.get(stop.id) is not stop, f"{stop} is dead but indexed"
                    continue
                live += 1
                assert stop.condition is condition, f"{stop} is in the {condition} heap"
                assert stops.get(stop.id) is stop, f"{stop} is in a heap but not in the index"
                assert stop.id not in self._orders, f"{stop} is also resting"
                assert stop.quantity > 0 and stop.stop_price > 0, f"{stop} has a non-positive amount"
                if stop.order_type is OrderType.STOP_LIMIT:
                    assert stop.price is not None and stop.price > 0, f"{stop} has no price"
                    assert stop.quote_budget is None, f"{stop} is a limit with a budget"
                else:
                    assert stop.order_type is OrderType.STOP_MARKET, f"{stop} is not a stop type"
                    assert stop.price is None, f"{stop} is a market order with a price"
                    assert stop.tif is TimeInForce.IOC, f"{stop} is a market order that could rest"
                    assert stop.quote_budget is None or (stop.side is _BUY and stop.quote_budget > 0), (
                        f"bad budget {stop}"
                    )
                assert 0 < stop.seq < self._next_seq, f"{stop} has a sequence from the future"
                assert stop.seq <= self._stop_seq, f"{stop} is after the last stop sequence {self._stop_seq}"
                assert stop.seq not in seqs, f"sequence number {stop.seq} is used twice"
                seqs.add(stop.seq)
                assert last is None or not stop.triggers_at(last), f"{stop} waits, but last trade {last} triggers it"
            assert dead_seen == dead, f"{condition}: {dead_seen} dead stop entries, counter says {dead}"
        assert live == len(stops), f"stop heaps hold {live} live stops, the index {len(stops)}"

    # -- stop orders ---------------------------------------------------------------------------

    def _place_stop(
        self,
        order_id: int,
        user: int,
        side: Side,
        quantity: int,
        price: int | None,
        order_type: OrderType,
        tif: TimeInForce,
        seq: int | None,
        quote_budget: int | None,
        stop_price: int | None,
        stop_condition: StopCondition | None,
    ) -> PlaceResult:
        stop = self._new_stop(
            order_id, user, side, quantity, price, order_type, tif, quote_budget, stop_price, stop_condition, seq
        )
        if seq is None:
            seq = stop.seq = self._next_seq
        elif seq < self._next_seq:
            raise InvalidOrder(f"order {order_id}: sequence {seq} is behind {self._next_seq}")
        last = self._last_price
        if last is None or not stop.triggers_at(last):
            self._next_seq = seq + 1
            self._wait(stop)
            return PlaceResult(order_id, OrderStatus.STOPPING, 0, 0, 0, seq, [], None, [])
        # Triggered as part of its own placement: it enters the book now, as this command, with its
        # sequence number (place enters the stops its trades trigger, as for any order).
        stop.waiting = False
        result = self._enter(stop, seq)
        result.trigger_price = last
        return result

    def _new_stop(
        self,
        order_id: int,
        user: int,
        side: Side,
        quantity: int,
        price: int | None,
        order_type: OrderType,
        tif: TimeInForce,
        quote_budget: int | None,
        stop_price: int | None,
        stop_condition: StopCondition | None,
        seq: int | None,
    ) -> StopOrder:
        """A checked stop order (not yet waiting); raises ``InvalidOrder`` naming the broken rule."""
        if order_type not in _STOP_TYPES:
            raise InvalidOrder(f"order {order_id}: {order_type} is not a stop order type")
        if stop_price is None or stop_price <= 0:
            raise InvalidOrder(f"order {order_id}: a stop order needs a positive base price")
        if stop_condition is None:
            raise InvalidOrder(f"order {order_id}: a stop order needs a stop condition (ge or le)")
        if order_type is OrderType.STOP_LIMIT:
            if price is None or price <= 0:
                raise InvalidOrder(f"order {order_id}: a stop limit order needs a positive price")
            if quote_budget is not None:
                raise InvalidOrder(f"order {order_id}: a quote budget is for market buys only")
        else:
            if price is not None:
                raise InvalidOrder(f"order {order_id}: a stop market order takes no price")
            if quote_budget is not None and (side is not _BUY or quote_budget <= 0):
                raise InvalidOrder(f"order {order_id}: a quote budget must be positive, on a buy")
            tif = TimeInForce.IOC
        return StopOrder(
            order_id, user, side, quantity, price, order_type, tif, quote_budget, stop_price, stop_condition, seq or 0
        )

    def _wait(self, stop: StopOrder) -> None:
        self._stops[stop.id] = stop
        if stop.condition is _GE:
            heappush(self._ge, (stop.stop_price, stop.seq, stop))
        else:
            heappush(self._le, (-stop.stop_price, stop.seq, stop))
        if stop.seq > self._stop_seq:
            self._stop_seq = stop.seq

    def _enter(self, stop: StopOrder, seq: int) -> PlaceResult:
        """Match a triggered stop (no longer waiting) as the limit or market order it becomes."""
        return self.place(
            stop.id, stop.user, stop.side, stop.quantity, stop.price, stop.entry_type, stop.tif, seq, stop.quote_budget
        )

    def _cascade(self, root: PlaceResult) -> None:
        """Enter every stop that ``root``'s trades trigger, then those their trades trigger, and so on,
        first in first out; each result is appended to ``root.triggered``."""
        queue = deque(self._triggered_by(root.trades))
        triggered = root.triggered
        self._cascading = True
        try:
            while queue:
                stop, trigger_price = queue.popleft()
                result = self._enter(stop, self._next_seq)
                result.trigger_price = trigger_price
                triggered.append(result)
                if self._stops and result.trades:
                    queue.extend(self._triggered_by(result.trades))
        finally:
            self._cascading = False

    def _triggered_by(self, trades: list[Trade]) -> list[tuple[StopOrder, int]]:
        """Take out of waiting the stops that these trades trigger, in placement order, each with the
        last trade price. A taker's trades run from its best price to its worst, so the first and last
        trades bound their prices. O(k log s)."""
        first, last = trades[0].price, trades[-1].price
        high, low = (first, last) if first > last else (last, first)
        stops = self._stops
        found: list[StopOrder] = []
        ge = self._ge
        while ge:
            key, _, stop = ge[0]
            if stop.waiting:
                if key > high:
                    break
                found.append(stop)
                stop.waiting = False
                del stops[stop.id]
            else:
                self._dead_ge -= 1
            heappop(ge)
        le = self._le
        while le:
            key, _, stop = le[0]
            if stop.waiting:
                if -key < low:
                    break
                found.append(stop)
                stop.waiting = False
                del stops[stop.id]
            else:
                self._dead_le -= 1
            heappop(le)
        found.sort(key=lambda stop: stop.seq)
        return [(stop, last) for stop in found]

    def _maybe_compact_stops(self) -> None:
        if self._dead_ge >= COMPACT_MIN_DEAD and 2 * self._dead_ge > len(self._ge):
            self._ge = [e for e in self._ge if e[2].waiting]
            heapify(self._ge)
            self._dead_ge = 0
        if self._dead_le >= COMPACT_MIN_DEAD and 2 * self._dead_le > len(self._le):
            self._le = [e for e in self._le if e[2].waiting]
            heapify(self._le)
            self._dead_le = 0

    # -- internals -----------------------------------------------------------------------------

    def _rest(self, order: Order) -> None:
        if order.side is _BUY:
            heappush(self._bids, (-order.price, order.seq, order))
            levels = self._bid_levels
        else:
            heappush(self._asks, (order.price, order.seq, order))
            levels = self._ask_levels
        level = levels.get(order.price)
        if level is None:
            levels[order.price] = [order.remaining, 1]
        else:
            level[0] += order.remaining
            level[1] += 1
        self._orders[order.id] = order

    def _top(self, heap: list[tuple[int, int, Order]], side: Side) -> Order | None:
        while heap:
            order = heap[0][2]
            if order.remaining:
                return order
            heappop(heap)
            if side is _BUY:
                self._dead_bids -= 1
            else:
                self._dead_asks -= 1
        return None

    @staticmethod
    def _can_fill(levels: dict[int, list[int]], side: Side, price: int | None, quantity: int) -> bool:
        """Whether the opposite side holds ``quantity`` lots at ``price`` or better. O(L)."""
        available = 0
        for level_price, (lots, _) in levels.items():
            if price is None or (level_price <= price if side is _BUY else level_price >= price):
                available += lots
                if available >= quantity:
                    return True
        return False

    def _maybe_compact(self, side: Side) -> None:
        if side is _BUY:
            if self._dead_bids >= COMPACT_MIN_DEAD and 2 * self._dead_bids > len(self._bids):
                self._bids = [e for e in self._bids if e[2].remaining]
                heapify(self._bids)
                self._dead_bids = 0
        elif self._dead_asks >= COMPACT_MIN_DEAD and 2 * self._dead_asks > len(self._asks):
            self._asks = [e for e in self._asks if e[2].remaining]
            heapify(self._asks)
            self._dead_asks = 0
