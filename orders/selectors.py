"""Reads of the orders domain: one order (cache first), a user's orders and balances, markets, the
published book and recent trades.

``order_get`` serves FR-PF-004: a detail read is answered from the order cache (``order:{id}``,
FR-DS-002) with no DB query; only a miss or an incomplete hash reads the DB, and that read refills the
cache. Every order is shaped the same way whichever side answered (``order_data``): amounts as plain
decimal strings, timestamps ISO-8601 UTC.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from matching.core import plain
from orders.cache import cached_order, order_to_cache
from orders.errors import MarketNotFound, OrderNotFound, ServiceUnavailable
from orders.market_cache import MARKETS
from orders.models import CLIENT_ORDER_ID, Balance, Market, Order, Trade
from spot import keys
from spot.redis import redis_client

logger = logging.getLogger(__name__)

LIST_LIMIT_MAX = 500  # a page of a user's orders or a market's trades; larger reads go to exports
# A market code as stored: lowercase ASCII coin and currency (``btc_usdt``). Matched before any query:
# the columns' collation is case- and accent-insensitive, so the DB alone would let ``BTC_USDT`` or
# ``btç_üsdt`` find ``btc_usdt``.
MARKET_CODE = re.compile(r"[a-z0-9]{1,16}_[a-z0-9]{1,16}")
AMOUNT_FIELDS = ("quantity", "executed_quantity", "executed_quote", "fee")
OPTIONAL_AMOUNT_FIELDS = ("price", "average_price")


def order_get(
    *, user: AbstractBaseUser, order_id: int | None = None, client_order_id: str | None = None
) -> dict[str, Any]:
    """The public fields of the user's order ``order_id``, or of the user's order named
    ``client_order_id`` (exactly one of the two; ``TypeError`` otherwise).

    Cost by id: one Redis round trip and no DB query on a cache hit; on a miss or an incomplete hash,
    one DB query plus one pipelined Redis round trip to refill. By client order id: one read of
    uniq_orders_user_client_order_id (the DB knows the name, the cache does not) plus the refill. A
    Redis error is logged and answered from the DB. Raises ``OrderNotFound`` for an unknown order or
    another user's.
    """
    if (order_id is None) == (client_order_id is None):
        raise TypeError("name the order by order_id or by client_order_id (exactly one)")
    if client_order_id is not None:
        return _by_client_order_id(user, client_order_id)
    assert order_id is not None
    client = redis_client()
    cache_up = True
    try:
        cached = cached_order(client, order_id)
    except redis.RedisError:
        logger.warning("order cache unavailable; reading order %s from the DB", order_id, exc_info=True)
        cached, cache_up = None, False
    if cached is None:
        order = Order.objects.filter(id=order_id).first()
        if order is None:
            raise OrderNotFound(f"order {order_id} not found", field="order_id")
        if cache_up:
            _refill(client, order)
        cached = order_to_cache(order)
    if cached["user"] != str(user.pk):
        raise OrderNotFound(f"order {order_id} not found", field="order_id")
    return _public(cached)


def order_data(order: Order) -> dict[str, Any]:
    """The public fields of ``order`` (as ``order_get`` returns them) from a model instance."""
    return _public(order_to_cache(order))


def order_list(
    *, user: AbstractBaseUser, market: str | None = None, status: str | None = None, limit: int = 100
) -> QuerySet[Order]:
    """The user's orders, newest first, at most ``limit`` (capped at ``LIST_LIMIT_MAX``).

    ``market`` is a code (``btc_usdt``); with it the read is a range of idx_orders_user_currency_coin
    (user_id, currency, coin), without it a prefix of the same index.
    """
    orders = Order.objects.filter(user_id=user.pk)
    if market is not None:
        coin, _, currency = market.partition("_")
        orders = orders.filter(currency=currency, coin=coin)
    if status is not None:
        orders = orders.filter(status=status)
    return orders.order_by("-created_at", "-id")[: _capped(limit)]


def balance_list(*, user: AbstractBaseUser) -> QuerySet[Balance]:
    """The user's balances by asset (``available`` is a property: ``total - held``)."""
    return Balance.objects.filter(user_id=user.pk).order_by("asset")


def market_find(code: str) -> Market | None:
    """The market whose code is exactly ``code`` (``btc_usdt``), enabled or not; ``None`` when there is none.

    Cost: no query for a code of the wrong shape; else none while the process's cache holds the code
    (``orders.market_cache``: up to ``MARKET_CACHE_TTL_S`` old, cleared by a save in this process),
    one read of uniq_markets_coin_currency when it does not. The result is shared: read-only.
    """
    if not MARKET_CODE.fullmatch(code):
        return None
    return MARKETS.get(code, _market_row)


def _market_row(code: str) -> Market | None:
    # The row is compared again in Python because the collation would match other spellings.
    coin, _, currency = code.partition("_")
    market = Market.objects.filter(coin=coin, currency=currency).first()
    if market is None or (market.coin, market.currency) != (coin, currency):
        return None
    return market


def market_get(*, code: str) -> Market:
    """The market named exactly ``code``; raises ``MarketNotFound`` (404) when there is none."""
    market = market_find(code)
    if market is None:
        raise MarketNotFound("unknown market", field="code")
    return market


def market_list() -> QuerySet[Market]:
    """The markets open for trading, by code."""
    return Market.objects.filter(enabled=True).order_by("coin", "currency")


def book_get(*, market_code: str) -> dict[str, Any]:
    """The depth the market's matcher last published at ``book:{code}``: ``{"market", "bids", "asks"}``,
    each side ``[[price, quantity], ...]`` as plain decimal strings, best first; empty sides when nothing was
    published. One Redis read, no DB query. Raises ``ServiceUnavailable`` when Redis is down.
    """
    try:
        raw = redis_client().get(f"book:{market_code}")
    except redis.RedisError as exc:
        logger.warning("book of %s unavailable", market_code, exc_info=True)
        raise ServiceUnavailable("market data is unavailable; try again shortly") from exc
    if not raw:
        return {"market": market_code, "bids": [], "asks": []}
    book = json.loads(raw)
    return {"market": market_code, "bids": _levels(book.get("bids")), "asks": _levels(book.get("asks"))}


def trade_list(*, market_code: str, limit: int = 100) -> QuerySet[Trade]:
    """The market's most recent trades, newest first (idx_trades_market_created)."""
    coin, _, currency = market_code.partition("_")
    trades = Trade.objects.filter(coin=coin, currency=currency)
    return trades.order_by("-created_at", "-id")[: _capped(limit)]


# -- internals -------------------------------------------------------------------------------------


def _capped(limit: int) -> int:
    return max(1, min(limit, LIST_LIMIT_MAX))


def _levels(levels: list[list[str]] | None) -> list[list[str]]:
    return [[plain(Decimal(price)), plain(Decimal(quantity))] for price, quantity in levels or []]


def _by_client_order_id(user: AbstractBaseUser, client_order_id: str) -> dict[str, Any]:
    order = None
    if isinstance(client_order_id, str) and CLIENT_ORDER_ID.fullmatch(client_order_id):
        order = Order.objects.filter(user_id=user.pk, client_order_id=client_order_id).first()
    if order is None:
        raise OrderNotFound(f"no order with client_order_id {client_order_id!r}", field="client_order_id")
    _refill(redis_client(), order)  # logs a Redis error, raises none
    return _public(order_to_cache(order))


def _refill(client: redis.Redis, order: Order) -> None:
    """Write ``order`` to the cache without overwriting a field that is already there.

    Not ``cache_orders`` (a full HSET): between this DB read and this write the matcher may commit a
    newer state of the order and write its fields through; a full HSET would put the older status
    back, and for a finished order nothing would correct it before the TTL. HSETNX keeps the newer
    fields, and a later matcher write still overwrites ours. A Redis error is logged, not raised.
    """
    key = keys.order(order.id)
    try:
        pipe = client.pipeline(transaction=False)
        for field, value in order_to_cache(order).items():
            pipe.hsetnx(key, field, value)
        pipe.expire(key, settings.ORDER_CACHE_TTL)
        pipe.execute()
    except redis.RedisError:
        logger.warning("could not refill the cache of order %s", order.id, exc_info=True)


def _public(cached: dict[str, str]) -> dict[str, Any]:
    """The API's view of a cache hash (``orders.cache.FIELDS``)."""
    data: dict[str, Any] = {
        "id": int(cached["id"]),
        "market": cached["market"],
        "trade_type": cached["trade_type"],
        "type": cached["type"],
        "time_in_force": cached["time_in_force"],
        "status": cached["status"],
        "reject_reason": cached["reject_reason"],
        "created_at": _timestamp(cached["created_at"]),
        "updated_at": _timestamp(cached["updated_at"]),
    }
    for field in AMOUNT_FIELDS:
        data[field] = plain(Decimal(cached[field]))
    for field in OPTIONAL_AMOUNT_FIELDS:
        data[field] = plain(Decimal(cached[field])) if cached[field] else None
    return data


def _timestamp(epoch: str) -> str:
    """``1769162400.123456`` (the cache's form) -> ``2026-01-23T10:00:00.123456Z``; exact, no float."""
    seconds = Decimal(epoch)
    whole = int(seconds)
    moment = datetime.fromtimestamp(whole, tz=UTC) + timedelta(microseconds=int((seconds - whole) * 1_000_000))
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
