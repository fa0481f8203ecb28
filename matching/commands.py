"""Order commands as they travel: one JSON object per command, in replay files and stream entries.

This module is the one place that turns such an object into a typed command (the format is described
in ``docs/replay.md``): the replay CLI reads it from standard input, the matcher from the market's
Redis Stream. Standard library and orjson only, so the replay runs without Django.

    {"op":"place","id":17,"user":3,"side":"buy","type":"limit","price":"101.25","quantity":"0.5","tif":"gtc"}
    {"op":"cancel","id":17}

A stop order (``"type":"stop_limit"`` with a price, or ``"stop_market"``) carries ``base_price`` (a
decimal string) and ``stop_condition`` (``"ge"`` or ``"le"``); whether a command's fields fit its
type is the matcher's rule, not the codec's.

    {"op":"place","id":18,"user":3,"side":"sell","type":"stop_market","quantity":"0.5","base_price":"99","stop_condition":"le"}

Pipeline entries may also carry ``market`` (the market's code, e.g. ``btc_usdt``), ``user`` on a
cancel, ``cid`` (the correlation id, FR-OB-002), ``quote_budget`` (the most a market buy may
spend, in the quote asset) and ``held`` (what intake reserved for the order; the matcher releases
exactly what fills did not consume). The replay ignores ``held``. Amounts are decimal strings, never
JSON numbers: floats would lose money.

Decoding is on the hot path of both readers: orjson parses, and the common shape of a command is
checked in one pass; whatever is unusual goes the long way (``json``, then field-by-field checks), so
what a line decodes to, or the message that refuses it, does not depend on the path it took.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from matching.core.model import OrderType, Side, StopCondition, TimeInForce

PLACE_FIELDS = frozenset(
    {
        "op",
        "id",
        "user",
        "side",
        "type",
        "price",
        "quantity",
        "tif",
        "quote_budget",
        "held",
        "market",
        "cid",
        "base_price",
        "stop_condition",
    }
)
CANCEL_FIELDS = frozenset({"op", "id", "user", "market", "cid"})

_SIDES = {member.value: member for member in Side}
_TYPES = {member.value: member for member in OrderType}
_TIFS = {member.value: member for member in TimeInForce}
_CONDITIONS = {member.value: member for member in StopCondition}
_AMOUNTS: dict[str, Decimal] = {}  # prices and quantities already read (see ``_remembered``)
_AMOUNTS_KEPT = 1 << 14
_fast_loads = orjson.loads
_FastDecodeError = orjson.JSONDecodeError


class MalformedCommand(ValueError):
    """The object is not a command at all: bad JSON, unknown op or field, wrong type of value."""


@dataclass(frozen=True, slots=True)
class PlaceCommand:
    id: int
    user: int
    side: Side
    type: OrderType
    quantity: Decimal
    price: Decimal | None = None
    tif: TimeInForce = TimeInForce.GTC
    quote_budget: Decimal | None = None
    held: Decimal | None = None
    market: str | None = None
    cid: str | None = None
    base_price: Decimal | None = None  # stop orders: the trigger price
    stop_condition: StopCondition | None = None  # stop orders: ge or le

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "op": "place",
            "id": self.id,
            "user": self.user,
            "side": self.side.value,
            "type": self.type.value,
            "quantity": str(self.quantity),
            "tif": self.tif.value,
        }
        if self.price is not None:
            data["price"] = str(self.price)
        if self.quote_budget is not None:
            data["quote_budget"] = str(self.quote_budget)
        if self.held is not None:
            data["held"] = str(self.held)
        if self.market is not None:
            data["market"] = self.market
        if self.cid is not None:
            data["cid"] = self.cid
        if self.base_price is not None:
            data["base_price"] = str(self.base_price)
        if self.stop_condition is not None:
            data["stop_condition"] = self.stop_condition.value
        return data


@dataclass(frozen=True, slots=True)
class CancelCommand:
    id: int
    user: int | None = None
    market: str | None = None
    cid: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"op": "cancel", "id": self.id}
        if self.user is not None:
            data["user"] = self.user
        if self.market is not None:
            data["market"] = self.market
        if self.cid is not None:
            data["cid"] = self.cid
        return data


Command = PlaceCommand | CancelCommand


def _place_builder() -> Callable[..., PlaceCommand]:
    """A ``PlaceCommand(*all thirteen fields)`` for the decoder's hot path at about half the cost: the
    frozen dataclass's ``__init__`` sets each field through the generic ``object.__setattr__``, this
    sets each slot through its own descriptor. The same object (same class, fields, equality, hash);
    the class has no ``__post_init__`` to skip. Built by field name, and refused at import if the
    fields change, so that it cannot leave a new field unset or set one in another's place."""
    names = (
        "id",
        "user",
        "side",
        "type",
        "quantity",
        "price",
        "tif",
        "quote_budget",
        "held",
        "market",
        "cid",
        "base_price",
        "stop_condition",
    )
    if tuple(field.name for field in fields(PlaceCommand)) != names:  # pragma: no cover - a guard for edits
        raise RuntimeError("PlaceCommand's fields changed: update _place_builder")
    (
        s_id,
        s_user,
        s_side,
        s_type,
        s_quantity,
        s_price,
        s_tif,
        s_budget,
        s_held,
        s_market,
        s_cid,
        s_base_price,
        s_condition,
    ) = (getattr(PlaceCommand, name).__set__ for name in names)
    new = object.__new__

    def build(
        id: int,
        user: int,
        side: Side,
        type: OrderType,
        quantity: Decimal,
        price: Decimal | None,
        tif: TimeInForce,
        quote_budget: Decimal | None,
        held: Decimal | None,
        market: str | None,
        cid: str | None,
        base_price: Decimal | None,
        stop_condition: StopCondition | None,
    ) -> PlaceCommand:
        command: PlaceCommand = new(PlaceCommand)
        s_id(command, id)
        s_user(command, user)
        s_side(command, side)
        s_type(command, type)
        s_quantity(command, quantity)
        s_price(command, price)
        s_tif(command, tif)
        s_budget(command, quote_budget)
        s_held(command, held)
        s_market(command, market)
        s_cid(command, cid)
        s_base_price(command, base_price)
        s_condition(command, stop_condition)
        return command

    return build


_new_place = _place_builder()


def encode(command: Command) -> str:
    """The command as one compact JSON line (no newline)."""
    return json.dumps(command.to_dict(), separators=(",", ":"))


def decode(text: str | bytes) -> Command:
    """Parse one JSON command. Raises ``MalformedCommand`` with a message naming the problem.

    orjson reads the text first. Whenever it refuses the text, or what it read is not a valid command,
    the standard library's ``json`` reads it again and decides: the command, or the message, is then
    exactly what ``json`` alone gives. (orjson refuses the ``NaN`` and ``Infinity`` literals and lone
    surrogates that ``json`` accepts, and reads an integer beyond 64 bits as a float; no valid command
    contains any of these, and ``json``'s reading words the problem.)
    """
    try:
        data = _fast_loads(text)
        if type(data) is dict:
            op = data.get("op")
            if op == "place":
                return _place(data)
            if op == "cancel":
                return _cancel(data)
    except (_FastDecodeError, MalformedCommand):
        pass
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedCommand(f"not valid JSON ({exc})") from None
    return from_dict(data)


def from_dict(data: object) -> Command:
    """Build a command from a decoded JSON object. Raises ``MalformedCommand``."""
    if not isinstance(data, dict):
        raise MalformedCommand("a command must be a JSON object")
    op = data.get("op")
    if op == "place":
        return _place(data)
    if op == "cancel":
        return _cancel(data)
    raise MalformedCommand(f'"op" must be "place" or "cancel", not {op!r}')


class _Checked(Exception):
    """The fast path met something it does not decide on: the checked path words the problem."""


def _place(data: dict[str, Any]) -> PlaceCommand:
    # The common case in one pass, its checks in the cheapest order. Anything else (a value missing,
    # null, of another type, not a finite decimal) goes to ``_checked_place``, which checks field by
    # field in its fixed order, so the problem named is the same whichever path a command takes.
    try:
        if not PLACE_FIELDS.issuperset(data):
            raise _Checked
        get = data.get
        order_id = data["id"]
        user = get("user", 0)
        market = get("market")
        cid = get("cid")
        if (
            type(order_id) is not int
            or order_id <= 0
            or type(user) is not int
            or (market is not None and type(market) is not str)
            or (cid is not None and type(cid) is not str)
        ):
            raise _Checked
        side = _SIDES[data["side"]]
        order_type = _TYPES[data["type"]]
        tif = _TIFS[get("tif", "gtc")]
        amounts = _AMOUNTS
        quantity = data["quantity"]
        quantity = amounts.get(quantity) or _remembered(quantity)
        price = get("price")
        if price is not None:
            price = amounts.get(price) or _remembered(price)
        elif "price" in data:
            raise _Checked
        quote_budget = _exact(data["quote_budget"]) if "quote_budget" in data else None
        held = _exact(data["held"]) if "held" in data else None
        base_price = condition = None
        if "base_price" in data:
            base_price = _exact(data["base_price"])
        if "stop_condition" in data:
            condition = _CONDITIONS[data["stop_condition"]]
    except (_Checked, KeyError, TypeError, ArithmeticError):
        return _checked_place(data)
    return _new_place(
        order_id, user, side, order_type, quantity, price, tif, quote_budget, held, market, cid, base_price, condition
    )


def _cancel(data: dict[str, Any]) -> CancelCommand:
    if CANCEL_FIELDS.issuperset(data):
        get = data.get
        order_id = get("id")
        user = get("user")
        market = get("market")
        cid = get("cid")
        if (
            type(order_id) is int
            and order_id > 0
            and (type(user) is int or (user is None and "user" not in data))
            and (market is None or type(market) is str)
            and (cid is None or type(cid) is str)
        ):
            return CancelCommand(order_id, user, market, cid)
    return _checked_cancel(data)


def _exact(value: object) -> Decimal:
    """``value`` as a finite Decimal if it is a str that reads as one, else raises ``_Checked``."""
    if type(value) is not str:
        raise _Checked
    amount = Decimal(value)
    if not amount.is_finite():
        raise _Checked
    return amount


def _remembered(value: str) -> Decimal:
    """``_exact(value)``, kept in ``_AMOUNTS`` for the next command that writes the same string: prices
    and quantities repeat, and a Decimal is immutable, so one object serves them all."""
    amount = _exact(value)
    if len(_AMOUNTS) >= _AMOUNTS_KEPT:
        _AMOUNTS.clear()
    _AMOUNTS[value] = amount
    return amount


def _checked_place(data: dict[str, Any]) -> PlaceCommand:
    _reject_unknown(data, PLACE_FIELDS)
    order_type = _enum(data, "type", OrderType, None)
    return PlaceCommand(
        id=_positive_int(data, "id"),
        user=_int(data, "user", default=0),
        side=_enum(data, "side", Side, None),
        type=order_type,
        quantity=_required_decimal(data, "quantity"),
        price=_decimal(data, "price"),
        tif=_enum(data, "tif", TimeInForce, TimeInForce.GTC),
        quote_budget=_decimal(data, "quote_budget"),
        held=_decimal(data, "held"),
        market=_str(data, "market"),
        cid=_str(data, "cid"),
        base_price=_decimal(data, "base_price"),
        stop_condition=_optional_enum(data, "stop_condition", StopCondition),
    )


def _checked_cancel(data: dict[str, Any]) -> CancelCommand:
    _reject_unknown(data, CANCEL_FIELDS)
    return CancelCommand(
        id=_positive_int(data, "id"),
        user=_int(data, "user", default=None),
        market=_str(data, "market"),
        cid=_str(data, "cid"),
    )


def _reject_unknown(data: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise MalformedCommand(f"unknown field(s): {', '.join(unknown)}")


def _positive_int(data: dict[str, Any], name: str) -> int:
    value = data.get(name)
    if type(value) is not int or value <= 0:
        raise MalformedCommand(f'"{name}" must be a positive integer, not {value!r}')
    return value


def _int(data: dict[str, Any], name: str, *, default: Any) -> Any:
    if name not in data:
        return default
    value = data[name]
    if type(value) is not int:
        raise MalformedCommand(f'"{name}" must be an integer, not {value!r}')
    return value


def _str(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise MalformedCommand(f'"{name}" must be a string, not {value!r}')
    return value


def _enum(data: dict[str, Any], name: str, enum: Any, default: Any) -> Any:
    if name not in data and default is not None:
        return default
    value = data.get(name)
    try:
        return enum(value)
    except ValueError:
        choices = " | ".join(member.value for member in enum)
        raise MalformedCommand(f'"{name}" must be one of {choices}, not {value!r}') from None


def _optional_enum(data: dict[str, Any], name: str, enum: Any) -> Any:
    """The member named by ``data[name]``, None when the field is absent (null is malformed, as for
    every other field)."""
    if name not in data:
        return None
    return _enum(data, name, enum, None)


def _required_decimal(data: dict[str, Any], name: str) -> Decimal:
    amount = _decimal(data, name)
    if amount is None:
        raise MalformedCommand(f'"{name}" is required')
    return amount


def _decimal(data: dict[str, Any], name: str) -> Decimal | None:
    if name not in data:
        return None
    value = data[name]
    if not isinstance(value, str):
        raise MalformedCommand(f'"{name}" must be a decimal string such as "1.25", not {value!r}')
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise MalformedCommand(f'"{name}" is not a decimal number: {value!r}') from None
    if not amount.is_finite():
        raise MalformedCommand(f'"{name}" must be a finite number, not {value!r}')
    return amount
