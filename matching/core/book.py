"""The heap order book of one market (FR-DS-001, FR-PF-003).

Shape (CPython ``heapq`` "priority queue implementation notes"):

- bids: a max-heap of ``(-price, seq, order)``; asks: a min-heap of ``(price, seq, order)``. The unique
  ``seq`` breaks price ties by arrival (time priority) and keeps tuple comparison off the ``Order``.
- ``_orders``: id -> resting ``Order``. Cancel removes the order from this index and marks it dead
  (``remaining = 0``); its heap entry is dropped lazily when it reaches the top, so cancel costs
  O(1) plus an occasional O(n) compaction amortised over at least n/2 cancels.
- per side, ``price -> [lots, orders]`` level aggregates, so depth snapshots and fill-or-kill
  checks read price levels, never individual orders.

Costs: place that rests O(log n); each fill O(log n); cancel O(1) amortised; best price O(1)
amortised; ``depth(k)`` O(L log k) over L price levels. Prices are integer ticks and quantities
integer lots; matching is deterministic (same commands, same results).
"""

from __future__ import annotations

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
    TimeInForce,
    Trade,
)

# Compact a side's heap once it holds more dead entries than live ones (and at least this many), so
# memory stays within 2x the live orders while compaction stays rare.
COMPACT_MIN_DEAD = 1024

_BUY = Side.BUY
_SELL = Side.SELL


class OrderBook:
    """Price-time priority limit order book with lazy cancel. Not thread-safe: one writer."""

    __slots__ = (
        "_ask_levels",
        "_asks",
        "_bid_levels",
        "_bids",
        "_dead_asks",
        "_dead_bids",
        "_next_seq",
        "_orders",
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

    # -- reads ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of resting orders."""
        return len(self._orders)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    def get(self, order_id: int) -> Order | None:
        """The resting order with this id, or None."""
        return self._orders.get(order_id)

    @property
    def next_seq(self) -> int:
        """The sequence number the next order gets when none is given."""
        return self._next_seq

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
    ) -> PlaceResult:
        """Match an incoming order against the book, then rest what a gtc limit order has left.

        ``quote_budget`` (market buys only) caps what the order may spend, in tick-lots; the order
        stops when either its quantity or its budget is used up. Market orders behave as ioc.
        Raises ``InvalidOrder`` (nothing changed) when the values break a rule.
        """
        if order_id in self._orders:
            raise DuplicateOrder(f"order {order_id} is already in the book")
        if quantity <= 0:
            raise InvalidOrder(f"order {order_id}: quantity must be positive")
        if order_type is OrderType.LIMIT:
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

        result = PlaceResult(order_id, OrderStatus.CANCELED, 0, 0, 0, seq)
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
        elif order_type is OrderType.LIMIT and tif is TimeInForce.GTC:
            assert price is not None
            self._rest(Order(order_id, user, side, price, quantity, seq, filled))
            result.remaining = remaining
            result.status = OrderStatus.PARTIALLY_FILLED if filled else OrderStatus.PENDING
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

    def cancel(self, order_id: int) -> CancelResult:
        """Remove a resting order. Raises ``UnknownOrder`` if it is not resting. O(1) amortised."""
        order = self._orders.pop(order_id, None)
        if order is None:
            raise UnknownOrder(f"order {order_id} is not resting in the book")
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
