"""Reads of the orders domain: one order (cache first), pages of a user's orders and trades, balances,
markets, the published book and recent trades.

``order_get`` serves FR-PF-004: a detail read is answered from the order cache (``order:{id}``,
FR-DS-002) with no DB query; only a miss or an incomplete hash reads the DB, and that read refills the
cache. Every order is shaped the same way whichever side answered (``order_data``), in the old
system's fields (docs/API.md): amounts as plain decimal strings, timestamps in milliseconds since the
Unix epoch.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import F, QuerySet, Value

from matching.core import plain
from orders.cache import cached_order, order_to_cache
from orders.errors import MarketNotFound, OrderNotFound, ServiceUnavailable
from orders.market_cache import MARKETS
from orders.models import CLIENT_ORDER_ID, Balance, Market, Order, Side, TimeInForce, Trade
from spot import keys
from spot.redis import redis_client

logger = logging.getLogger(__name__)

LIST_LIMIT_MAX = 500  # a page of a user's orders or a market's trades; larger reads go to exports
PAGE_SIZE_DEFAULT = 20  # a page of a list when the client names no `limit`
RECENT_TRADES_DEFAULT = 50  # the public's recent trades when the client names no `count`
# A market code as stored: lowercase ASCII coin and currency (``btc_usdt``). Matched before any query:
# the columns' collation is case- and accent-insensitive, so the DB alone would let ``BTC_USDT`` or
# ``btç_üsdt`` find ``btc_usdt``.
MARKET_CODE = re.compile(r"[a-z0-9]{1,16}_[a-z0-9]{1,16}")


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


def book_get(*, market: Market) -> dict[str, Any]:
    """The depth the market's matcher last published at ``book:{code}``, as the old system's order
    book: ``{"buy": [{"price", "quantity"}, ...], "sell": [...], "updatedAt", "tickerSize"}``, each side
    best first, amounts as plain decimal strings; empty sides when nothing was published.
    ``updatedAt`` (ms) is when the matcher published it if the snapshot says so, else when it was read.
    One Redis read, no DB query. Raises ``ServiceUnavailable`` when Redis is down.
    """
    try:
        raw = redis_client().get(keys.book(market.code))
    except redis.RedisError as exc:
        logger.warning("book of %s unavailable", market.code, exc_info=True)
        raise ServiceUnavailable("market data is unavailable; try again shortly") from exc
    book = json.loads(raw) if raw else {}
    published = book.get("at")
    return {
        "buy": _levels(book.get("bids")),
        "sell": _levels(book.get("asks")),
        "updatedAt": published if isinstance(published, int) else time.time_ns() // 1_000_000,
        "tickerSize": plain(market.tick_size),
    }


def trade_list(*, market_code: str, limit: int = 100) -> QuerySet[Trade]:
    """The market's most recent trades, newest first (idx_trades_market_created)."""
    coin, _, currency = market_code.partition("_")
    trades = Trade.objects.filter(coin=coin, currency=currency)
    return trades.order_by("-created_at", "-id")[: _capped(limit)]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list as the API pages it: ``items`` on page ``page`` (from 1) of ``per_page``
    each, out of ``total`` in all."""

    items: list[dict[str, Any]]
    total: int
    page: int
    per_page: int


def order_page(
    *,
    user: AbstractBaseUser,
    statuses: Collection[str] | None = None,
    currency: str | None = None,
    coin: str | None = None,
    order_type: str | None = None,
    side: str | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    page: int = 1,
    per_page: int = PAGE_SIZE_DEFAULT,
) -> Page:
    """The user's orders, newest first (``created_at``, then id), filtered, one page of them, shaped as
    ``order_data``; ``start_ms``/``end_ms`` bound ``created_at`` (ms since the epoch, both inclusive).

    Cost: two queries (a count and the page), both on idx_orders_user_currency_coin (user_id,
    currency, coin): a range of it with the market, its user_id prefix without; the other filters
    and the sort run on those rows. A page past the last is empty (no error).
    """
    orders = Order.objects.filter(user_id=user.pk)
    if currency is not None:
        orders = orders.filter(currency=currency)
    if coin is not None:
        orders = orders.filter(coin=coin)
    if statuses is not None:
        orders = orders.filter(status__in=list(statuses))
    if order_type is not None:
        orders = orders.filter(type=order_type)
    if side is not None:
        orders = orders.filter(trade_type=side)
    if start_ms is not None:
        orders = orders.filter(created_at__gte=_moment(start_ms))
    if end_ms is not None:
        orders = orders.filter(created_at__lt=_moment(end_ms + 1))
    total = orders.count()
    offset = (page - 1) * per_page
    rows = list(orders.order_by("-created_at", "-id")[offset : offset + per_page]) if offset < total else []
    return Page([order_data(order) for order in rows], total, page, per_page)


def trade_page(
    *,
    user: AbstractBaseUser,
    currency: str | None = None,
    coin: str | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    page: int = 1,
    per_page: int = PAGE_SIZE_DEFAULT,
) -> Page:
    """The user's trades from the user's side, newest first, one page: each has the user's order, side
    (``trade_type``), fee (in the asset received: the coin for a buy, the currency for a sell) and
    whether the user's order was the maker. A trade between two orders of the user is listed twice,
    once per side.

    Cost: two counts and one UNION ALL page query. Each half starts from the user's orders on
    idx_orders_user_currency_coin and joins trades by uniq_trades_buy_sell (buy side) or the
    sell_order_id index (sell side).
    """
    halves = []
    for side, order_field, fee_field in ((Side.BUY, "buy_order", "buyer_fee"), (Side.SELL, "sell_order", "seller_fee")):
        trades = Trade.objects.filter(**{f"{order_field}__user_id": user.pk})
        if currency is not None:
            trades = trades.filter(**{f"{order_field}__currency": currency})
        if coin is not None:
            trades = trades.filter(**{f"{order_field}__coin": coin})
        if start_ms is not None:
            trades = trades.filter(created_at__gte=_moment(start_ms))
        if end_ms is not None:
            trades = trades.filter(created_at__lt=_moment(end_ms + 1))
        halves.append(
            trades.annotate(side=Value(side.value), own_order_id=F(f"{order_field}_id"), own_fee=F(fee_field)).values(
                "id",
                "coin",
                "currency",
                "buy_order_id",
                "sell_order_id",
                "taker_side",
                "price",
                "quantity",
                "created_at",
                "side",
                "own_order_id",
                "own_fee",
            )
        )
    buys, sells = halves
    total = buys.count() + sells.count()
    offset = (page - 1) * per_page
    rows = []
    if offset < total:
        rows = list(buys.union(sells, all=True).order_by("-created_at", "-id", "side")[offset : offset + per_page])
    return Page([_own_trade(row) for row in rows], total, page, per_page)


def trade_recent(*, market: Market, count: int = RECENT_TRADES_DEFAULT) -> list[dict[str, Any]]:
    """The market's latest ``count`` trades, newest first (``trade_list``), as the public sees them:
    id, currency, coin, price, quantity, amount (price x quantity), taker_side, created_at (ms)."""
    return [
        {
            "id": trade.id,
            "currency": trade.currency,
            "coin": trade.coin,
            "price": plain(trade.price),
            "quantity": plain(trade.quantity),
            "amount": plain(trade.price * trade.quantity),
            "taker_side": trade.taker_side,
            "created_at": _datetime_ms(trade.created_at),
        }
        for trade in trade_list(market_code=market.code, limit=count)
    ]


def markets_exist(*, currency: str | None = None, coin: str | None = None) -> bool:
    """Whether some market (enabled or not) trades ``coin`` against ``currency`` (either may be left
    out). One query on uniq_markets_coin_currency (or a scan of the few markets for a currency alone).
    The caller checks the codes' shape first (lowercase ASCII): the collation would match ``USDT``."""
    markets = Market.objects.all()
    if currency is not None:
        markets = markets.filter(currency=currency)
    if coin is not None:
        markets = markets.filter(coin=coin)
    return bool(markets.exists())


# -- internals -------------------------------------------------------------------------------------


def _capped(limit: int) -> int:
    return max(1, min(limit, LIST_LIMIT_MAX))


def _own_trade(row: dict[str, Any]) -> dict[str, Any]:
    side = row["side"]
    return {
        "id": row["id"],
        "order_id": row["own_order_id"],
        "buy_order_id": row["buy_order_id"],
        "sell_order_id": row["sell_order_id"],
        "trade_type": side,
        "currency": row["currency"],
        "coin": row["coin"],
        "price": plain(row["price"]),
        "quantity": plain(row["quantity"]),
        "amount": plain(row["price"] * row["quantity"]),
        "fee": plain(row["own_fee"]),
        "fee_asset": row["coin"] if side == Side.BUY else row["currency"],
        "is_maker": side != row["taker_side"],
        "created_at": _datetime_ms(row["created_at"]),
    }


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms // 1000, tz=UTC) + timedelta(milliseconds=ms % 1000)


def _datetime_ms(moment: datetime) -> int:
    return int(moment.timestamp()) * 1000 + moment.microsecond // 1000


def _levels(levels: list[list[str]] | None) -> list[dict[str, str]]:
    return [{"price": plain(Decimal(price)), "quantity": plain(Decimal(quantity))} for price, quantity in levels or []]


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
    """The API's view of a cache hash (``orders.cache.FIELDS``): the old system's order fields
    (docs/API.md, "Orders"). ``ioc`` is 1 for an order that never rests (``ioc`` or ``fok``);
    ``executed_price`` is the average price of its trades (null before the first)."""
    coin, _, currency = cached["market"].partition("_")
    return {
        "id": int(cached["id"]),
        "user_id": int(cached["user"]),
        "trade_type": cached["trade_type"],
        "currency": currency,
        "coin": coin,
        "type": cached["type"],
        "ioc": 0 if cached["time_in_force"] == TimeInForce.GTC else 1,
        "time_in_force": cached["time_in_force"],
        "quantity": plain(Decimal(cached["quantity"])),
        "price": _optional_amount(cached["price"]),
        "executed_quantity": plain(Decimal(cached["executed_quantity"])),
        "executed_price": _optional_amount(cached["average_price"]),
        "base_price": _optional_amount(cached.get("base_price", "")),
        "stop_condition": cached.get("stop_condition") or None,
        "fee": plain(Decimal(cached["fee"])),
        "status": cached["status"],
        "reject_reason": cached["reject_reason"],
        "client_order_id": cached.get("client_order_id") or None,
        "created_at": _epoch_ms(cached["created_at"]),
        "updated_at": _epoch_ms(cached["updated_at"]),
    }


def _optional_amount(text: str) -> str | None:
    return plain(Decimal(text)) if text else None


def _epoch_ms(epoch: str) -> int:
    """``1769162400.123456`` (the cache's form) -> ``1769162400123``: milliseconds, exact (no float)."""
    return int(Decimal(epoch) * 1000)
