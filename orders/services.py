"""Writes of the orders domain: placing and canceling orders.

``order_place_many`` is the one way an order is accepted: validate against the market; create the
balance row of the asset the order will receive if it is missing (outside any transaction); then ONE
transaction {hold funds with a conditional update that cannot go negative; insert the orders as
``new``}, run again if MariaDB picked it as a deadlock victim or timed out its lock wait; then, after
commit, push each order to its market's stream once (``orders.outbox``; balances and holds are
``orders.balances``, whose docstring gives the lock order).

Stop orders (issue 10) are accepted like the order they become: a ``stop_limit`` is validated and
holds as a limit order, a ``stop_market`` as a market order, a ``stop_market`` buy's budget priced at
its ``base_price``; the matcher keeps them waiting (``stopping``) until their trigger.

Idempotent placement (issue 10): an order may carry the client's ``client_order_id``; placing again
with an id the user has already used returns that order (``existing`` True) and places nothing. The
unique constraint ``uniq_orders_user_client_order_id`` is the authority: of two concurrent retries
both past the first look-up, the second's insert fails on it, its transaction (hold included) rolls
back, and it returns the first's order. Every order returned by ``order_place``/``order_place_many``
has the plain attribute ``existing``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

import redis
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from matching.commands import CancelCommand, encode
from matching.core import plain
from matching.queue import RedisStreamOrderQueue
from orders.balances import balance_hold, balance_rows_ensure
from orders.errors import (
    InsufficientFunds,
    MarketUnavailable,
    OrderConflict,
    OrderNotCancelable,
    OrderNotFound,
    OrderRejected,
    ServiceUnavailable,
)
from orders.ids import allocator
from orders.models import (
    CLIENT_ORDER_ID,
    OPEN_STATUSES,
    ORDER_TYPES,
    SIDES,
    STOP_CONDITIONS,
    STOP_TYPES,
    TIMES_IN_FORCE,
    Market,
    Order,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from orders.outbox import order_command, orders_push
from orders.selectors import MARKET_CODE, market_find
from spot import keys, metrics
from spot.correlation import current as current_correlation_id
from spot.correlation import new_correlation_id
from spot.redis import redis_client
from spot.resilience import RetryPolicy

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """One order to place. Amounts are ``Decimal``; strings are accepted and parsed exactly."""

    user_id: int
    side: str
    type: str
    quantity: Decimal
    price: Decimal | None = None
    time_in_force: str = TimeInForce.GTC
    base_price: Decimal | None = None  # stop orders: the trigger price
    stop_condition: str | None = None  # stop orders: ge or le
    client_order_id: str | None = None  # the client's own id, unique per user (CLIENT_ORDER_ID)


def market_by_code(code: str) -> Market:
    """The market named exactly ``code`` (``btc_usdt``: lowercase ASCII, as stored; ``BTC_USDT`` is
    another, unknown, code); raises ``MarketUnavailable``."""
    market = market_find(code)
    if market is None:
        shown = repr(code) if MARKET_CODE.fullmatch(code) else "(a market code is coin_currency in lowercase ASCII)"
        raise MarketUnavailable(f"unknown market {shown}", field="market")
    return market


def order_place(
    *,
    user: AbstractBaseUser,
    market: Market | str,
    side: str,
    order_type: str,
    quantity: Decimal | str,
    price: Decimal | str | None = None,
    time_in_force: str = TimeInForce.GTC,
    base_price: Decimal | str | None = None,
    stop_condition: str | None = None,
    client_order_id: str | None = None,
    correlation_id: str | None = None,
) -> Order:
    """Accept one order, or return the user's order already named ``client_order_id`` (its
    ``existing`` attribute says which; see ``order_place_many``)."""
    request = OrderRequest(
        user.pk,
        side,
        order_type,
        _decimal(quantity, "quantity"),
        _price(price),
        time_in_force,
        base_price=_price(base_price, "base_price"),
        stop_condition=stop_condition,
        client_order_id=client_order_id,
    )
    return order_place_many(market=market, requests=[request], correlation_id=correlation_id)[0]


def order_place_many(
    *,
    market: Market | str,
    requests: Sequence[OrderRequest],
    correlation_id: str | None = None,
    enqueue: bool = True,
) -> list[Order]:
    """Accept several orders of one market in one transaction; all or none.

    Client order ids: each must match ``CLIENT_ORDER_ID`` and appear once per user in the batch
    (else ``OrderRejected`` naming the item). When every request names an order its user already has,
    those orders are returned (``existing`` True) and nothing is placed; when only some do,
    ``OrderConflict`` (409) and nothing is placed. One indexed read (uniq_orders_user_client_order_id)
    when any request carries an id.

    Raises ``OrderRejected`` / ``MarketUnavailable`` (bad values), ``InsufficientFunds`` (naming the
    user and asset), and the database's ``OperationalError`` (answered 503) when it is unavailable or
    when the hold transaction still meets a deadlock or lock-wait timeout after
    ``INTAKE_LOCK_RETRIES`` retries. Statements: one balance-row read (plus an insert the first time a
    user receives an asset), one hold update, one multi-row order insert, plus a sequence read per
    1,000 ids. After commit, one Redis round trip pushes the orders and writes them to the order
    cache; if Redis is down then, the orders stay ``new`` and the sweeper pushes them when it is
    back. ``enqueue=False`` leaves the pushing to the caller (the loadtest accepts a whole stream
    first, then offers it to the matcher at a chosen rate).
    """
    if isinstance(market, str):
        market = market_by_code(market)
    if not requests:
        return []
    named = _client_ids(requests)
    if named and (existing := _existing(named)):
        return _retried(requests, existing)
    if not market.enabled:
        raise MarketUnavailable(f"market {market.code} is not open for trading", field="market")
    reference = _market_buy_reference(market) if any(_is_market_buy(r) for r in requests) else None
    ids = allocator.take(len(requests))
    orders = _build_all(market, requests, ids, reference)

    holds: dict[tuple[int, str], Decimal] = {}
    receives: set[tuple[int, str]] = set()
    for order in orders:
        pays, gets = (market.currency, market.coin) if order.trade_type == Side.BUY else (market.coin, market.currency)
        holds[(order.user_id, pays)] = holds.get((order.user_id, pays), Decimal(0)) + order.held
        receives.add((order.user_id, gets))

    balance_rows_ensure(receives)
    try:
        _hold_and_insert(market, holds, orders, correlation_id)
    except (IntegrityError, InsufficientFunds) as exc:
        # A concurrent request with the same client order id committed first: this one's insert hit
        # the unique constraint, or its hold found the funds already held by that order. Either way
        # the transaction rolled back, so nothing of this one stays held.
        if isinstance(exc, IntegrityError) and not _client_id_clash(exc):
            raise
        if not named or not (existing := _existing(named)):
            raise
        return _retried(requests, existing)
    for order in orders:
        order.existing = False

    if enqueue:
        orders_push(market, orders, correlation_id or _correlation_id())
    metrics.INTAKE.labels(market.code).inc(len(orders))
    return orders


def order_cancel(
    *,
    user: AbstractBaseUser,
    order_id: int | None = None,
    client_order_id: str | None = None,
    correlation_id: str | None = None,
) -> Order:
    """Ask the market's matcher to cancel an open order of ``user``, named by ``order_id`` or by
    ``client_order_id`` (exactly one); the cancel is asynchronous. A waiting stop order (``stopping``)
    is open: the matcher drops it and releases all it holds.

    Raises ``OrderNotFound`` for an unknown order or another user's, ``OrderNotCancelable`` for a
    finished one, and ``ServiceUnavailable`` when the command cannot be queued.
    """
    order = _user_order(user, order_id, client_order_id)
    if not order.is_open:
        raise OrderNotCancelable(f"order {order.id} is {order.status}; only open orders can be canceled")
    _push_cancels(order.market_code, [order], correlation_id or _correlation_id())
    return order


def order_cancel_all(
    *,
    user: AbstractBaseUser,
    currency: str | None = None,
    coin: str | None = None,
    order_type: str | None = None,
    correlation_id: str | None = None,
) -> list[Order]:
    """Ask the matchers to cancel each open order of ``user`` (waiting stops included), narrowed to
    a quote ``currency``, a base ``coin`` and an order ``type`` when given; returns those orders
    (their rows as read, before the cancels apply). What ``PUT /orders/cancel-all`` and
    ``/orders/cancel-by-type`` call.

    Cost: one read of idx_orders_user_currency_coin, then one Redis round trip per market. Raises
    ``OrderRejected`` (field ``type``) for an unknown type and ``ServiceUnavailable`` when a market's
    commands cannot be queued (the markets queued before it keep their cancels: a retry cancels the
    rest, and a cancel of an order already gone is refused by the matcher, harmlessly).
    """
    if order_type is not None and order_type not in ORDER_TYPES:
        raise OrderRejected(_TYPES_MESSAGE, field="type")
    orders = Order.objects.filter(user_id=user.pk, status__in=OPEN_STATUSES)
    if currency is not None:
        orders = orders.filter(currency=currency)
    if coin is not None:
        orders = orders.filter(coin=coin)
    if order_type is not None:
        orders = orders.filter(type=order_type)
    found = list(orders.order_by("id"))
    by_market: dict[str, list[Order]] = {}
    for order in found:
        # The collation would let ``BTC`` find ``btc``: the market codes compare exactly.
        if (currency is None or order.currency == currency) and (coin is None or order.coin == coin):
            by_market.setdefault(order.market_code, []).append(order)
    cid = correlation_id or _correlation_id()
    for code, group in by_market.items():
        _push_cancels(code, group, cid)
    return [order for group in by_market.values() for order in group]


# -- internals -------------------------------------------------------------------------------------

_TYPES_MESSAGE = "type must be limit, market, stop_limit or stop_market"
_CLIENT_ID_MESSAGE = "client_order_id must be 1 to 36 printable ASCII characters"
_CLIENT_ID_CONSTRAINT = "uniq_orders_user_client_order_id"
_DUPLICATE_KEY = 1062  # MariaDB's ER_DUP_ENTRY


def _user_order(user: AbstractBaseUser, order_id: int | None, client_order_id: str | None) -> Order:
    """The user's order by id or by client order id; ``OrderNotFound`` for none or another user's."""
    if (order_id is None) == (client_order_id is None):
        raise TypeError("name the order by order_id or by client_order_id (exactly one)")
    if order_id is not None:
        order = Order.objects.filter(id=order_id, user_id=user.pk).first()
        if order is None:
            raise OrderNotFound(f"order {order_id} not found", field="order_id")
        return order
    assert client_order_id is not None
    order = None
    if isinstance(client_order_id, str) and CLIENT_ORDER_ID.fullmatch(client_order_id):
        order = Order.objects.filter(user_id=user.pk, client_order_id=client_order_id).first()
    if order is None:
        raise OrderNotFound(f"no order with client_order_id {client_order_id!r}", field="client_order_id")
    return order


def _push_cancels(code: str, orders: list[Order], cid: str) -> None:
    """Queue a cancel of each order of market ``code`` in one round trip; ``ServiceUnavailable`` if not."""
    commands: list[tuple[str, int | None]] = []
    for order in orders:
        if order.status == OrderStatus.NEW:
            # It may not have reached the stream yet (Redis was down at intake): push it first, once,
            # so the cancel cannot overtake it and be rejected as unknown.
            commands.append((encode(order_command(order, cid)), order.id))
        commands.append((encode(CancelCommand(id=order.id, user=order.user_id, market=code, cid=cid)), None))
    try:
        RedisStreamOrderQueue(redis_client(), code).push_many(commands)
    except redis.RedisError as exc:
        raise ServiceUnavailable("the order queue is unavailable; try the cancel again shortly") from exc


def _client_ids(requests: Sequence[OrderRequest]) -> dict[tuple[int, str], int]:
    """The requests' client order ids, ``(user, id) -> position``; refuses a malformed id or one
    given twice for the same user (``OrderRejected`` naming the item)."""
    named: dict[tuple[int, str], int] = {}
    for item, request in enumerate(requests):
        client_id = request.client_order_id
        if client_id is None:
            continue
        if not isinstance(client_id, str) or not CLIENT_ORDER_ID.fullmatch(client_id):
            raise OrderRejected(_CLIENT_ID_MESSAGE, field="client_order_id", item=item)
        first = named.setdefault((request.user_id, client_id), item)
        if first != item:
            raise OrderRejected(
                f"client_order_id repeats the one of orders[{first}]; each order needs its own",
                field="client_order_id",
                item=item,
            )
    return named


def _existing(named: dict[tuple[int, str], int]) -> dict[int, Order]:
    """Of the named requests, those whose user already has an order with that client order id:
    position -> that order. One read of uniq_orders_user_client_order_id."""
    users = {user for user, _ in named}
    client_ids = {client_id for _, client_id in named}
    rows = Order.objects.filter(user_id__in=users, client_order_id__in=client_ids)
    found: dict[int, Order] = {}
    for order in rows:
        item = named.get((order.user_id, order.client_order_id or ""))
        if item is not None:
            found[item] = order
    return found


def _retried(requests: Sequence[OrderRequest], existing: dict[int, Order]) -> list[Order]:
    """A retry: every request names an existing order, which are returned (``existing`` True).
    When only some do, ``OrderConflict``: the batch is neither a retry nor new."""
    if len(existing) < len(requests):
        items = sorted(existing)
        shown = ", ".join(f"orders[{item}]" for item in items[:5]) + (", ..." if len(items) > 5 else "")
        raise OrderConflict(
            f"{shown} name existing orders by client_order_id and the others do not; nothing was placed",
            existing={item: order.id for item, order in existing.items()},
        )
    orders = [existing[item] for item in range(len(requests))]
    for order in orders:
        order.existing = True
    return orders


def _client_id_clash(exc: IntegrityError) -> bool:
    """Whether the insert failed on ``uniq_orders_user_client_order_id`` (and not another key)."""
    return len(exc.args) >= 2 and exc.args[0] == _DUPLICATE_KEY and _CLIENT_ID_CONSTRAINT in str(exc.args[1])


# MariaDB errors after which the hold transaction is worth running again: it was chosen as a deadlock
# victim and rolled back (1213), or it waited longer than innodb_lock_wait_timeout for a row (1205).
# The lock order makes both rare; they can still come from a statement outside it (an operator's).
_LOCK_ERRORS = {1213: "deadlock", 1205: "lock_wait_timeout"}


def _lock_retry_policy() -> RetryPolicy:
    """FR-RL-002's one retry policy with intake's own timing: the transaction that won a deadlock
    commits within milliseconds, and a client is waiting, so the backoff starts at
    ``INTAKE_LOCK_RETRY_BASE_S`` instead of 100 ms; the jitter of up to 100 % keeps two victims of one
    deadlock from meeting again."""
    base = settings.INTAKE_LOCK_RETRY_BASE_S
    retries = settings.INTAKE_LOCK_RETRIES
    return RetryPolicy(max_retries=retries, base=base, cap=base * 2**retries, jitter=1.0)


def _hold_and_insert(
    market: Market, holds: dict[tuple[int, str], Decimal], orders: list[Order], correlation_id: str | None
) -> None:
    """The hold transaction: hold the funds and insert the orders, all or nothing.

    Run again, whole, after a deadlock or lock-wait timeout (``_LOCK_ERRORS``), up to
    ``INTAKE_LOCK_RETRIES`` times; the last error is raised. A failed attempt left nothing behind:
    the rollback undid its hold and its rows, and the order ids it used came from the sequence
    outside the transaction, so the next attempt inserts the same ids and no order is accepted twice
    or lost. Inside a caller's transaction nothing is retried: a deadlock rolled back the caller's
    work too, and only the caller can run that again.
    """
    policy = _lock_retry_policy()
    retry = not connection.in_atomic_block
    attempt = 0
    while True:
        try:
            with transaction.atomic():
                balance_hold(holds)
                _insert_orders(orders)
            return
        except OperationalError as exc:
            reason = _LOCK_ERRORS.get(exc.args[0]) if exc.args else None
            if reason is None or not retry or attempt >= policy.max_retries:
                raise
            delay = policy.delay(attempt)
            attempt += 1
            metrics.INTAKE_LOCK_RETRIES.labels(market.code, reason).inc()
            logger.warning(
                "intake %s: %s in the hold transaction of %s orders; retry %s of %s in %.1f ms",
                market.code,
                reason,
                len(orders),
                attempt,
                policy.max_retries,
                delay * 1000,
                extra={"correlation_id": correlation_id} if correlation_id else None,
            )
            time.sleep(delay)


# The orders' INSERT is written here, not by ``bulk_create``: the ORM prepares each of an order's 22
# values through its field and compiles the statement on every call, about 0.2 ms an order and most
# of a batch's time in the web (profiled: docs/BENCHMARKS.md, "Orders over HTTP, end to end"); the
# driver escapes the same values in a tenth of that. The columns are the model's, so a new field is
# inserted too; values go through the driver's own escaping, never into the text.
_ORDER_FIELDS = tuple(Order._meta.concrete_fields)
_INSERT_ORDERS = "INSERT INTO `orders` ({}) VALUES ".format(", ".join(f"`{f.column}`" for f in _ORDER_FIELDS))
_ORDER_ROW = "({})".format(", ".join(["%s"] * len(_ORDER_FIELDS)))
_ORDER_ATTNAMES = tuple(f.attname for f in _ORDER_FIELDS)
_ORDER_STAMPS = tuple(
    f.attname for f in _ORDER_FIELDS if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
)


def _insert_orders(orders: list[Order]) -> None:
    """Insert ``orders`` in one statement, as ``bulk_create`` would: their ``auto_now``/``auto_now_add``
    times set to now, and the instances marked saved. Raises the database's errors as Django's
    (``IntegrityError`` for a client order id already used)."""
    now = timezone.now()
    stored_now = connection.ops.adapt_datetimefield_value(now)  # UTC, as the ORM writes it
    params: list[object] = []
    extend = params.extend
    for order in orders:
        for name in _ORDER_STAMPS:
            setattr(order, name, now)
        values = [getattr(order, name) for name in _ORDER_ATTNAMES]
        # Enum members (StrEnum) as plain text, and the times as the ORM stores them.
        extend(
            stored_now if name in _ORDER_STAMPS else (str(value) if isinstance(value, str) else value)
            for name, value in zip(_ORDER_ATTNAMES, values, strict=True)
        )
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_ORDERS + ", ".join([_ORDER_ROW] * len(orders)), params)
    for order in orders:
        order._state.adding = False
        order._state.db = connection.alias


def _correlation_id() -> str:
    cid = current_correlation_id()
    return cid if cid != "-" else new_correlation_id()


def _decimal(value: Decimal | str, name: str) -> Decimal:
    try:
        amount = Decimal(value)
    except (ArithmeticError, TypeError, ValueError):
        raise OrderRejected(f"{name} must be a decimal number", field=name) from None
    if not amount.is_finite():
        raise OrderRejected(f"{name} must be a finite number", field=name)
    return amount


def _price(value: Decimal | str | None, name: str = "price") -> Decimal | None:
    return None if value is None or value == "" else _decimal(value, name)


def _is_market_buy(request: OrderRequest) -> bool:
    return request.type == OrderType.MARKET and request.side == Side.BUY


def _market_buy_reference(market: Market) -> Decimal:
    """The best ask the matcher last published; a market buy's budget is derived from it."""
    try:
        raw = redis_client().get(keys.book(market.code))
    except redis.RedisError as exc:
        raise ServiceUnavailable("market data is unavailable; try again shortly") from exc
    asks = json.loads(raw)["asks"] if raw else []
    if not asks:
        raise OrderRejected(
            f"no sell orders in {market.code} to price a market buy against; place a limit order", field="type"
        )
    return Decimal(asks[0][0])


def _multiple(value: Decimal, step: Decimal) -> bool:
    return value % step == 0


def _build_all(
    market: Market, requests: Sequence[OrderRequest], ids: Sequence[int], reference: Decimal | None
) -> list[Order]:
    """``_build`` for each request; a rejection says which request (``item``: its position)."""
    orders = []
    for item, (request, order_id) in enumerate(zip(requests, ids, strict=True)):
        try:
            orders.append(_build(market, request, order_id, reference))
        except OrderRejected as exc:
            exc.item = item
            raise
    return orders


def _build(market: Market, request: OrderRequest, order_id: int, reference: Decimal | None) -> Order:
    side, kind, tif = request.side, request.type, request.time_in_force
    if side not in SIDES:
        raise OrderRejected("trade_type must be buy or sell", field="trade_type")
    if kind not in ORDER_TYPES:
        raise OrderRejected(_TYPES_MESSAGE, field="type")
    if tif not in TIMES_IN_FORCE:
        raise OrderRejected("time_in_force must be gtc, ioc or fok", field="time_in_force")
    base_price, condition = _stop_trigger(market, request)
    quantity, price = request.quantity, request.price
    if quantity <= 0:
        raise OrderRejected("quantity must be positive", field="quantity")
    if not _multiple(quantity, market.lot_size):
        raise OrderRejected(f"quantity must be a multiple of the lot size {plain(market.lot_size)}", field="quantity")
    if quantity < market.min_quantity:
        raise OrderRejected(f"quantity must be at least {plain(market.min_quantity)}", field="quantity")
    notional_step = market.tick_size * market.lot_size
    if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        if price is None:
            raise OrderRejected(f"a {kind} order needs a price", field="price")
        if price <= 0:
            raise OrderRejected("price must be positive", field="price")
        if not _multiple(price, market.tick_size):
            raise OrderRejected(f"price must be a multiple of the tick size {plain(market.tick_size)}", field="price")
        if price * quantity < market.min_notional:
            raise OrderRejected(f"price x quantity must be at least {plain(market.min_notional)}", field="quantity")
        held = price * quantity if side == Side.BUY else quantity
    else:
        if price is not None:
            raise OrderRejected(f"a {kind} order takes no price", field="price")
        tif = TimeInForce.IOC  # market orders never rest
        if side == Side.BUY:
            # A stop market buy is priced at its trigger: the book it will meet is not known yet.
            reference = base_price if kind == OrderType.STOP_MARKET else reference
            assert reference is not None
            # A budget, not a price: quantity x best ask x (1 + collar), rounded up to the notional
            # step. The order never spends more; what it does not spend is released.
            budget = quantity * reference * (1 + Decimal(settings.MARKET_BUY_COLLAR))
            held = (budget / notional_step).to_integral_value(rounding=ROUND_CEILING) * notional_step
        else:
            held = quantity
    return Order(
        id=order_id,
        user_id=request.user_id,
        trade_type=side,
        currency=market.currency,
        coin=market.coin,
        type=kind,
        time_in_force=tif,
        quantity=quantity,
        price=price,
        base_price=base_price,
        stop_condition=condition,
        client_order_id=request.client_order_id,
        held=held,
        status=OrderStatus.NEW,
    )


def _stop_trigger(market: Market, request: OrderRequest) -> tuple[Decimal | None, str]:
    """A stop order's ``base_price`` (positive, on the tick grid) and ``stop_condition`` (ge, le);
    other types take neither (``None``, ``""``)."""
    kind, base_price, condition = request.type, request.base_price, request.stop_condition or ""
    if kind not in STOP_TYPES:
        if base_price is not None:
            raise OrderRejected(f"a {kind} order takes no base_price", field="base_price")
        if condition:
            raise OrderRejected(f"a {kind} order takes no stop_condition", field="stop_condition")
        return None, ""
    if base_price is None:
        raise OrderRejected(f"a {kind} order needs a base_price", field="base_price")
    if base_price <= 0:
        raise OrderRejected("base_price must be positive", field="base_price")
    if not _multiple(base_price, market.tick_size):
        raise OrderRejected(
            f"base_price must be a multiple of the tick size {plain(market.tick_size)}", field="base_price"
        )
    if condition not in STOP_CONDITIONS:
        raise OrderRejected("stop_condition must be ge or le", field="stop_condition")
    return base_price, condition
