"""The outbox: an accepted order's row is its own outbox entry.

After intake commits, each order is pushed once to its market's stream (``orders_push``); an order
still ``new`` after ``ORDER_SWEEP_AFTER_S`` may not have reached it (Redis was down, the process died)
and is pushed again by the sweeper. The stream's push-once marker makes that duplicate-free. An order
whose place entry was dead-lettered is left to the dead letter queue (``orders.deadletters``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

import redis
from django.conf import settings
from django.utils import timezone

from matching.commands import PlaceCommand, encode
from matching.queue import RedisStreamOrderQueue
from orders.cache import cache_orders
from orders.models import (
    DeadLetter,
    DeadLetterStatus,
    Market,
    Order,
    OrderStatus,
    OrderType,
    Side,
    StopCondition,
    TimeInForce,
)
from spot.redis import redis_client

logger = logging.getLogger(__name__)


def order_command(order: Order, correlation_id: str) -> PlaceCommand:
    """The stream command for an accepted order (the one place an order row becomes a command; the
    rebuild's ``matching.worker.rebuild.stop_command`` makes the same one for a waiting stop). A
    market buy's, or a stop market buy's, ``quote_budget`` is what it holds."""
    market_buy = order.type in (OrderType.MARKET, OrderType.STOP_MARKET) and order.trade_type == Side.BUY
    return PlaceCommand(
        id=order.id,
        user=order.user_id,
        side=Side(order.trade_type),
        type=OrderType(order.type),
        quantity=order.quantity,
        price=order.price,
        tif=TimeInForce(order.time_in_force),
        quote_budget=order.held if market_buy else None,
        held=order.held,
        market=order.market_code,
        cid=correlation_id or None,
        base_price=order.base_price,
        stop_condition=StopCondition(order.stop_condition) if order.stop_condition else None,
    )


def orders_push(market: Market, orders: list[Order], cid: str) -> None:
    """Push to the stream and fill the cache in one round trip; a Redis failure is logged, not raised:
    the orders are accepted and the sweeper pushes them later."""
    try:
        queue = RedisStreamOrderQueue(redis_client(), market.code)
        pipe = redis_client().pipeline(transaction=False)
        cache_orders(pipe, orders)
        queue.push_many([(encode(order_command(order, cid)), order.id) for order in orders], pipe=pipe)
    except redis.RedisError:
        logger.exception("could not push %s orders of %s; the sweeper will", len(orders), market.code)


def order_sweep_unqueued(*, older_than_s: float | None = None, limit: int = 1000) -> int:
    """Push again ``new`` orders older than ``older_than_s`` that may not have reached their stream.

    The push-once marker makes this safe while their first push is still waiting in the stream.
    Returns how many were pushed now.
    """
    age = settings.ORDER_SWEEP_AFTER_S if older_than_s is None else older_than_s
    cutoff = timezone.now() - timedelta(seconds=age)
    stale = list(
        Order.objects.filter(status=OrderStatus.NEW, updated_at__lt=cutoff).order_by("updated_at")[
            :limit
        ]  # idx_orders_status_updated
    )
    # An order whose place entry is a dead letter waits for an operator's requeue or discard:
    # pushing it again would only feed the matcher the same failure (or apply it twice, if requeued).
    waiting = _dead_lettered([order.id for order in stale])
    by_market: dict[str, list[Order]] = {}
    for order in stale:
        if order.id in waiting:
            continue
        by_market.setdefault(order.market_code, []).append(order)
    pushed = 0
    for code, orders in by_market.items():
        queue = RedisStreamOrderQueue(redis_client(), code)
        queue.ensure_group()
        results = queue.push_many([(encode(order_command(o, "")), o.id) for o in orders])
        pushed += sum(1 for r in results if r is not None)
    if pushed:
        logger.warning("sweeper pushed %s orders that had not reached their stream", pushed)
    return pushed


def _dead_lettered(order_ids: list[int]) -> set[int]:
    """Of ``order_ids``, the orders whose place command is a ``dead`` letter (idx_dead_letters_order)."""
    if not order_ids:
        return set()
    letters = DeadLetter.objects.filter(status=DeadLetterStatus.DEAD, order_id__in=order_ids)
    return {order_id for letter in letters if (order_id := letter.placed_order_id) is not None}
