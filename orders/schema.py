"""The API's OpenAPI description (drf-spectacular) where the code alone does not say it: the one error
shape, the outputs of views that return a selector's dict, and the signed-request scheme.

Served at ``/api/schema/`` with Swagger UI at ``/api/docs/`` (docs/API.md). ``orders.api`` imports
this module, which also registers the authentication extension below with drf-spectacular.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers

from orders.models import OrderStatus, OrderType, Side, TimeInForce, choices

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
    """Every error under ``/api/`` (``spot.errors.exception_handler``)."""

    message = serializers.CharField(help_text="What went wrong, for a person to read.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text=(
            "The fields at fault, each with its messages; omitted when no field is. A field of a batch's "
            "order is named by its position: `orders[3].price`."
        ),
    )


@extend_schema_serializer(component_name="Order")
class OrderOutput(serializers.Serializer):
    """An order as ``orders.selectors.order_data`` and ``order_get`` shape it."""

    id = serializers.IntegerField()
    market = serializers.CharField(help_text="Market code, e.g. `btc_usdt`.")
    trade_type = serializers.ChoiceField(choices=choices(Side))
    type = serializers.ChoiceField(choices=choices(OrderType))
    time_in_force = serializers.ChoiceField(choices=choices(TimeInForce))
    status = serializers.ChoiceField(choices=choices(OrderStatus))
    reject_reason = serializers.CharField(allow_blank=True, help_text="Why the matcher rejected it; empty if not.")
    quantity = AmountSchemaField()
    price = AmountSchemaField(allow_null=True, help_text="Limit price; null for a market order.")
    executed_quantity = AmountSchemaField()
    executed_quote = AmountSchemaField()
    average_price = AmountSchemaField(allow_null=True, help_text="Null until something executed.")
    fee = AmountSchemaField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "array", "items": AMOUNT_SCHEMA, "minItems": 2, "maxItems": 2},
        "description": "Price levels, best first: `[price, quantity]`.",
    }
)
class BookSideField(serializers.ListField):
    pass


@extend_schema_serializer(component_name="Book")
class BookOutput(serializers.Serializer):
    """The depth the market's matcher last published (``orders.selectors.book_get``)."""

    market = serializers.CharField()
    bids = BookSideField()
    asks = BookSideField()


@extend_schema_serializer(component_name="CancelRequested")
class CancelOutput(serializers.Serializer):
    """A cancel the matcher has been asked to apply; the order reads ``canceled`` once it has."""

    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["cancel_requested"])


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
        value={"market": "btc_usdt", "trade_type": "buy", "type": "limit", "quantity": "0.01", "price": "30000"},
        request_only=True,
    ),
    OpenApiExample(
        "A market sell, immediate or cancel",
        value={
            "market": "btc_usdt",
            "trade_type": "sell",
            "type": "market",
            "quantity": "0.01",
            "time_in_force": "ioc",
        },
        request_only=True,
    ),
]
BATCH_EXAMPLES = [
    OpenApiExample(
        "Two limit orders",
        value={
            "market": "btc_usdt",
            "orders": [
                {"trade_type": "buy", "type": "limit", "quantity": "0.01", "price": "29000"},
                {"trade_type": "sell", "type": "limit", "quantity": "0.01", "price": "31000", "time_in_force": "gtc"},
            ],
        },
        request_only=True,
    ),
]
MARKET_CODE_PARAMETER = OpenApiParameter(
    "code",
    str,
    OpenApiParameter.PATH,
    description="Market code: coin and currency in lowercase ASCII (`btc_usdt`).",
    examples=[OpenApiExample("BTC/USDT", value="btc_usdt")],
)

SIGNING = """A bot signs every request with one of its API keys (created in the admin, by `manage.py apikey
create`, or at `POST /api/keys`). Three headers, all required:

- `X-API-Key`: the key's public id;
- `X-API-Timestamp`: the time of sending, in milliseconds since the Unix epoch, a decimal integer;
- `X-API-Signature`: lowercase hex HMAC-SHA256 of the message below, keyed with the key's secret.

The message is `f"{timestamp}\\n{METHOD}\\n{path}\\n{query}\\n".encode() + body`: the path as sent
(percent-encoded, e.g. `/api/orders`), the query string as sent without `?` (empty if none) and the
body's raw bytes (none for a GET). `spot/client.py` in the repository does this in a few lines.

A timestamp more than the receive window (5 s unless configured) from the server's clock, or a
signature already used within it, is refused with 401 saying which. A key needs the `read` scope for
GET and `trade` to place or cancel (403 otherwise). The docs page's "Try it out" cannot sign; it works
with a browser session (log in to the admin, or `POST /api/session`)."""


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
                "A person's browser session (`POST /api/session`, or the admin's login). POST and DELETE "
                "also need the session's CSRF token in `X-CSRFToken`."
            ),
        }


def postprocess(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """A ``POSTPROCESSING_HOOKS`` entry: what drf-spectacular cannot see in the serializers.

    A nested serializer with ``many=True`` checks ``allow_empty`` and ``max_length`` in code, not
    with validators, so the batch's bounds are stated here.
    """
    from orders.api import BATCH_MAX  # orders.api imports this module

    schemas = result.get("components", {}).get("schemas", {})
    batch = schemas.get("PlaceOrderBatchRequest")
    if batch is not None:
        batch["properties"]["orders"].update(minItems=1, maxItems=BATCH_MAX)
    return result
