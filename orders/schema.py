"""The API's OpenAPI description (drf-spectacular) where the code alone does not say it: the one error
shape, the outputs of views that return a selector's dict, and the signed-request scheme.

Served at ``/api/schema/`` with Swagger UI at ``/api/docs/`` (docs/API.md). ``orders.api`` imports
this module, which also registers the authentication extension below with drf-spectacular.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema_field, extend_schema_serializer
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
