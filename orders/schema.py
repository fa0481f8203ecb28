"""The API's OpenAPI description (drf-spectacular) where the code alone does not say it: the envelope
of every answer, the error envelope, the outputs of views that return a selector's dict, the Laravel
paginator's pages and the signed-request scheme.

Served at ``/api/schema/`` with Swagger UI at ``/api/docs/`` (docs/API.md). ``orders.api`` imports
this module, which also registers the authentication extension below with drf-spectacular.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema_field,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers

from orders.models import OrderStatus, OrderType, Side, StopCondition, TimeInForce, choices

# An amount as the API writes it: a plain decimal string (``matching.core.plain``), no exponent, no
# trailing zeros.
AMOUNT_SCHEMA: dict[str, Any] = {
    "type": "string",
    "format": "decimal",
    "pattern": r"^-?[0-9]+(\.[0-9]+)?$",
    "example": "0.5",
}

# An amount as the API reads it (orders.api's module docstring): an ASCII decimal string or a JSON
# number, at most 20 integer digits and 10 decimal places.
AMOUNT_INPUT_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"type": "string", "pattern": r"^[0-9]{1,20}(\.[0-9]{1,10})?$", "example": "0.5"},
        {"type": "number", "example": 0.5},
    ],
    "description": 'A decimal as an ASCII string (`"0.5"`) or a JSON number; parsed exactly, never as a float.',
}


class AmountInputScheme(OpenApiSerializerFieldExtension):
    """Every ``DecimalField`` of the API is an amount input (outputs use ``orders.api.AmountField``).

    drf-spectacular's own mapping says "string" with a pattern using ``\\d``, which a generator may
    fill with other scripts' digits the API refuses, and omits the JSON numbers it accepts.
    """

    target_class = "rest_framework.fields.DecimalField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        return dict(AMOUNT_INPUT_SCHEMA)


@extend_schema_field(AMOUNT_SCHEMA)
class AmountSchemaField(serializers.CharField):
    """An amount in a schema-only serializer below (they describe outputs; nothing parses with them)."""


@extend_schema_serializer(component_name="Error")
class ErrorOutput(serializers.Serializer):
    """Every error under ``/api/`` (``spot.errors.exception_handler``, ``spot.envelope``)."""

    success = serializers.BooleanField(help_text="Always false.")
    message = serializers.CharField(help_text="What went wrong, for a person to read.")
    dataVersion = serializers.CharField(help_text="The version of the data's shapes (`spot.envelope.DATA_VERSION`).")
    data = serializers.JSONField(allow_null=True, help_text="Always null.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text=(
            "The fields at fault, each with its messages; `{}` when no field is. A field of a batch's order "
            "is named by its position: `orders[3].price`."
        ),
    )


@extend_schema_serializer(component_name="Order")
class OrderOutput(serializers.Serializer):
    """An order as ``orders.selectors.order_data`` and ``order_get`` shape it (the old system's fields)."""

    id = serializers.IntegerField()
    user_id = serializers.IntegerField()
    trade_type = serializers.ChoiceField(choices=choices(Side))
    currency = serializers.CharField(help_text="The quote asset, e.g. `usdt`.")
    coin = serializers.CharField(help_text="The base asset, e.g. `btc`.")
    type = serializers.ChoiceField(choices=choices(OrderType))
    ioc = serializers.ChoiceField(
        choices=[0, 1], help_text="1 when the order never rests (`time_in_force` ioc or fok)."
    )
    time_in_force = serializers.ChoiceField(choices=choices(TimeInForce))
    quantity = AmountSchemaField()
    price = AmountSchemaField(allow_null=True, help_text="Limit price; null for market and stop_market orders.")
    executed_quantity = AmountSchemaField()
    executed_price = AmountSchemaField(allow_null=True, help_text="Average price of its trades; null before the first.")
    base_price = AmountSchemaField(allow_null=True, help_text="A stop order's trigger price; null for other types.")
    stop_condition = serializers.ChoiceField(
        choices=choices(StopCondition), allow_null=True, help_text="A stop order's direction; null for other types."
    )
    fee = AmountSchemaField(help_text="Charged in the asset the order receives.")
    status = serializers.ChoiceField(
        choices=choices(OrderStatus), help_text="`stopping`: a stop order waiting for its trigger (it holds funds)."
    )
    reject_reason = serializers.CharField(allow_blank=True, help_text="Why the matcher rejected it; empty if not.")
    client_order_id = serializers.CharField(allow_null=True, help_text="The client's own id for it, if it gave one.")
    created_at = serializers.IntegerField(help_text="Milliseconds since the Unix epoch.")
    updated_at = serializers.IntegerField(help_text="Milliseconds since the Unix epoch.")


@extend_schema_serializer(component_name="BookLevel")
class BookLevelOutput(serializers.Serializer):
    price = AmountSchemaField()
    quantity = AmountSchemaField(help_text="The quantity resting at this price.")


@extend_schema_serializer(component_name="Book")
class BookOutput(serializers.Serializer):
    """The depth the market's matcher last published (``orders.selectors.book_get``)."""

    buy = BookLevelOutput(many=True, help_text="Bids, best (highest) first.")
    sell = BookLevelOutput(many=True, help_text="Asks, best (lowest) first.")
    updatedAt = serializers.IntegerField(help_text="Milliseconds since the Unix epoch.")
    tickerSize = AmountSchemaField(help_text="The market's tick size: prices are multiples of it.")


@extend_schema_serializer(component_name="CancelRequested")
class CancelOutput(serializers.Serializer):
    """A cancel the matcher has been asked to apply; the order reads ``canceled`` once it has."""

    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["cancel_requested"])


@extend_schema_serializer(component_name="CancelsRequested")
class CancelAllOutput(serializers.Serializer):
    """The open orders the matcher has been asked to cancel."""

    count = serializers.IntegerField()
    ids = serializers.ListField(child=serializers.IntegerField())


# ``GET /balances``' data: an object keyed by asset; drf-spectacular takes a schema as a response.
BALANCES = OpenApiResponse(
    {
        "type": "object",
        "description": "The user's balances keyed by asset (`btc`, `usdt`).",
        "additionalProperties": {
            "type": "object",
            "required": ["total", "held", "available"],
            "properties": {
                "total": AMOUNT_SCHEMA,
                "held": {**AMOUNT_SCHEMA, "description": "Held by open orders (waiting stop orders included)."},
                "available": {**AMOUNT_SCHEMA, "description": "total - held."},
            },
        },
    },
    description="The user's balances.",
)


@extend_schema_serializer(component_name="OwnTrade")
class OwnTradeOutput(serializers.Serializer):
    """One of the user's trades, from the user's side (``orders.selectors.trade_page``)."""

    id = serializers.IntegerField()
    order_id = serializers.IntegerField(help_text="The user's order in this trade.")
    buy_order_id = serializers.IntegerField()
    sell_order_id = serializers.IntegerField()
    trade_type = serializers.ChoiceField(choices=choices(Side), help_text="The user's side.")
    currency = serializers.CharField()
    coin = serializers.CharField()
    price = AmountSchemaField()
    quantity = AmountSchemaField()
    amount = AmountSchemaField(help_text="price x quantity, in the currency.")
    fee = AmountSchemaField(help_text="The user's fee.")
    fee_asset = serializers.CharField(help_text="The coin for a buy, the currency for a sell.")
    is_maker = serializers.BooleanField(help_text="Whether the user's order was resting in the book.")
    created_at = serializers.IntegerField(help_text="Milliseconds since the Unix epoch.")


@extend_schema_field({"type": "string", "enum": [member.value for member in Side]})
class SideText(serializers.CharField):
    """A side in an output that is not the order's own ``trade_type`` (one enum component is enough)."""


@extend_schema_serializer(component_name="RecentTrade")
class RecentTradeOutput(serializers.Serializer):
    """A market's trade as the public sees it (``orders.selectors.trade_recent``)."""

    id = serializers.IntegerField()
    currency = serializers.CharField()
    coin = serializers.CharField()
    price = AmountSchemaField()
    quantity = AmountSchemaField()
    amount = AmountSchemaField(help_text="price x quantity, in the currency.")
    taker_side = SideText(help_text="The side of the order that took: `buy` or `sell`.")
    created_at = serializers.IntegerField(help_text="Milliseconds since the Unix epoch.")


def paginated(name: str, items: serializers.BaseSerializer) -> Any:
    """A page of ``items`` as Laravel's length-aware paginator writes it (``orders.api._paginated``)."""
    return inline_serializer(
        name,
        {
            "current_page": serializers.IntegerField(),
            "data": items,
            "first_page_url": serializers.URLField(),
            "from": serializers.IntegerField(allow_null=True, help_text="1-based position of the first item."),
            "last_page": serializers.IntegerField(),
            "last_page_url": serializers.URLField(),
            "next_page_url": serializers.URLField(allow_null=True),
            "path": serializers.URLField(),
            "per_page": serializers.IntegerField(),
            "prev_page_url": serializers.URLField(allow_null=True),
            "to": serializers.IntegerField(allow_null=True, help_text="1-based position of the last item."),
            "total": serializers.IntegerField(),
        },
    )


ORDER_PAGE = paginated("OrderPage", OrderOutput(many=True))
OWN_TRADE_PAGE = paginated("OwnTradePage", OwnTradeOutput(many=True))


ERROR_MEANINGS = {
    400: "The input is wrong: a field's shape or a business rule (`errors` names the fields).",
    401: "Not authenticated: credentials missing or wrong, timestamp outside the window, or a replayed signature.",
    403: "Authenticated, but not allowed: the key lacks the scope, or a browser session's CSRF check failed.",
    404: "No such resource (an order of another user is reported the same way).",
    409: "The resource's state forbids it (e.g. the order is already finished).",
    413: "The body is too large or nested too deeply.",
    415: "The body's content type is not one the route parses.",
    429: "Rate limited: wait as long as `Retry-After` says.",
    503: "A dependency (database, Redis) is unavailable; nothing was accepted, retry shortly.",
}


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """``@extend_schema(responses=...)`` entries for these error statuses, each the ``Error`` component."""
    return {status: OpenApiResponse(ErrorOutput, description=ERROR_MEANINGS[status]) for status in statuses}


# Examples show a reader a request that works, and give the fuzz test (tests/orders/test_fuzz.py) a
# valid starting point: a random market code or an amount off the grid never gets past validation.
PLACE_EXAMPLES = [
    OpenApiExample(
        "A limit buy",
        value={
            "currency": "usdt",
            "coin": "btc",
            "trade_type": "buy",
            "type": "limit",
            "quantity": "0.01",
            "price": "30000",
            "client_order_id": "my-order-1",
        },
        request_only=True,
    ),
    OpenApiExample(
        "A market sell, immediate or cancel",
        value={
            "currency": "usdt",
            "coin": "btc",
            "trade_type": "sell",
            "type": "market",
            "quantity": "0.01",
            "ioc": 1,
        },
        request_only=True,
    ),
    OpenApiExample(
        "A stop-limit sell: when a trade happens at or below 29000, sell at 28900",
        value={
            "currency": "usdt",
            "coin": "btc",
            "trade_type": "sell",
            "type": "stop_limit",
            "quantity": "0.01",
            "price": "28900",
            "base_price": "29000",
            "stop_condition": "le",
        },
        request_only=True,
    ),
]
BATCH_EXAMPLES = [
    OpenApiExample(
        "Two limit orders",
        value={
            "currency": "usdt",
            "coin": "btc",
            "orders": [
                {"trade_type": "buy", "type": "limit", "quantity": "0.01", "price": "29000"},
                {"trade_type": "sell", "type": "limit", "quantity": "0.01", "price": "31000", "ioc": 0},
            ],
        },
        request_only=True,
    ),
]
SIGNING = """A bot signs every request with one of its API keys (created in the admin, by `manage.py apikey
create`, or at `POST /api/v1/keys`). Three headers, all required:

- `X-API-Key`: the key's public id;
- `X-API-Timestamp`: the time of sending, in milliseconds since the Unix epoch, a decimal integer;
- `X-API-Signature`: lowercase hex HMAC-SHA256 of the message below, keyed with the key's secret.

The message is `f"{timestamp}\\n{METHOD}\\n{path}\\n{query}\\n".encode() + body`: the path as sent
(percent-encoded, e.g. `/api/v1/orders`), the query string as sent without `?` (empty if none) and the
body's raw bytes (none for a GET). `spot/client.py` in the repository does this in a few lines.

A timestamp more than the receive window (5 s unless configured) from the server's clock, or a
signature already used within it, is refused with 401 saying which. A key needs the `read` scope for
GET and `trade` to place or cancel (403 otherwise). The docs page's "Try it out" cannot sign; it works
with a browser session (log in to the admin, or `POST /api/v1/session`)."""


class SignedRequestScheme(OpenApiAuthenticationExtension):
    """The API key headers, one security scheme each: OpenAPI has no scheme for an HMAC over the
    request, so the three are required together and the signature is described in words."""

    target_class = "orders.authentication.ApiKeyAuthentication"
    name = ["apiKey", "apiTimestamp", "apiSignature"]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        return [
            {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": SIGNING},
            {
                "type": "apiKey",
                "in": "header",
                "name": "X-API-Timestamp",
                "description": "Milliseconds since the Unix epoch, a decimal integer; part of the signed message.",
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": "X-API-Signature",
                "description": "Lowercase hex HMAC-SHA256 of the signed message (see `apiKey`), keyed with the secret.",
            },
        ]


class SessionScheme(OpenApiAuthenticationExtension):
    """A browser session: DRF's class (``cookieAuth``) or a subclass of it, e.g.
    ``orders.api_keys_api.SessionLogin`` (``sessionLogin``). drf-spectacular keys a scheme by its
    class, so the subclass needs a name of its own though it reads the same cookie."""

    target_class = "rest_framework.authentication.SessionAuthentication"
    match_subclasses = True
    priority = 1  # over drf-spectacular's own, which matches DRF's class only and says nothing of CSRF

    @property
    def name(self) -> str:  # type: ignore[override]
        cls = type(self.target)
        if cls.__module__.startswith("rest_framework."):
            return "cookieAuth"
        return cls.__name__[0].lower() + cls.__name__[1:]

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": settings.SESSION_COOKIE_NAME,
            "description": (
                "A person's browser session (`POST /api/v1/session`, or the admin's login). POST and DELETE "
                "also need the session's CSRF token in `X-CSRFToken`."
            ),
        }


def postprocess(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """A ``POSTPROCESSING_HOOKS`` entry: what drf-spectacular cannot see in the serializers.

    Every success under ``/api/v1/`` is wrapped by the renderer (``spot.envelope``), so each JSON
    response schema of a 2xx becomes the envelope with the view's schema as ``data``; the ``Error``
    component is already the error envelope, whose ``success`` and ``data`` get their one value here
    (a field's enum would become a component of its own, and a null in one is dropped). A nested serializer with ``many=True`` checks
    ``allow_empty`` and ``max_length`` in code, not with validators, so the batch's bounds are stated
    here.
    """
    from orders.api import BATCH_MAX  # orders.api imports this module

    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for operation in operations.values():
            for code, response in operation.get("responses", {}).items():
                content = response.get("content", {}).get("application/json")
                if content is not None and str(code).startswith("2"):
                    content["schema"] = _envelope(content["schema"])
    schemas = result.get("components", {}).get("schemas", {})
    error = schemas.get("Error")
    if error is not None:
        error["properties"]["success"].update(enum=[False])
        error["properties"]["data"].update(enum=[None])
    batch = schemas.get("PlaceOrderBatchRequest")
    if batch is not None:
        batch["properties"]["orders"].update(minItems=1, maxItems=BATCH_MAX)
    return result


def _envelope(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["success", "message", "dataVersion", "data"],
        "properties": {
            "success": {"type": "boolean", "enum": [True]},
            "message": {
                "type": "string",
                "nullable": True,
                "description": "Null, or a note (e.g. that a client_order_id named an existing order).",
            },
            "dataVersion": {
                "type": "string",
                "description": "The version of the data's shapes; changes when a release changes a field.",
            },
            "data": data,
        },
    }
