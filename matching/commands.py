"""Order commands as they travel: one JSON object per command, in replay files and stream entries.

This module is the one place that turns such an object into a typed command (STYLE rule 13): the
replay CLI reads it from standard input, the matcher from the market's Redis Stream. Standard
library only, so the replay runs without Django.

    {"op":"place","id":17,"user":3,"side":"buy","type":"limit","price":"101.25","quantity":"0.5","tif":"gtc"}
    {"op":"cancel","id":17}

Pipeline entries may also carry ``market`` (the market's code, e.g. ``btc_usdt``), ``user`` on a
cancel, ``cid`` (the correlation id, FR-OB-002), ``quote_budget`` (the most a market buy may
spend, in the quote asset) and ``held`` (what intake reserved for the order; the matcher releases
exactly what fills did not consume). The replay ignores ``held``. Amounts are decimal strings, never JSON numbers: floats would lose money.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from matching.core.model import OrderType, Side, TimeInForce

PLACE_FIELDS = frozenset(
    {"op", "id", "user", "side", "type", "price", "quantity", "tif", "quote_budget", "held", "market", "cid"}
)
CANCEL_FIELDS = frozenset({"op", "id", "user", "market", "cid"})


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


def encode(command: Command) -> str:
    """The command as one compact JSON line (no newline)."""
    return json.dumps(command.to_dict(), separators=(",", ":"))


def decode(text: str | bytes) -> Command:
    """Parse one JSON command. Raises ``MalformedCommand`` with a message naming the problem."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedCommand(f"not valid JSON ({exc})") from None
    return from_dict(data)


def from_dict(data: object) -> Command:
    """Build a command from a decoded JSON object. Raises ``MalformedCommand``."""
    if not isinstance(data, dict):
        raise MalformedCommand("a command must be a JSON object")
    op = data.get("op")
    if op == "place":
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
        )
    if op == "cancel":
        _reject_unknown(data, CANCEL_FIELDS)
        return CancelCommand(
            id=_positive_int(data, "id"),
            user=_int(data, "user", default=None),
            market=_str(data, "market"),
            cid=_str(data, "cid"),
        )
    raise MalformedCommand(f'"op" must be "place" or "cancel", not {op!r}')


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
