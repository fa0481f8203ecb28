"""The HTTP API of the orders domain (DRF). Views are thin: a serializer checks the shape of the input,
a service or selector does the work, a serializer (or the selector's dict) shapes the output.

Errors: input of the wrong shape raises DRF's ``ValidationError`` and business rules raise the
services' ``ApplicationError``s; ``spot.errors.exception_handler`` renders both as
``{"message": ..., "errors": {field: [message, ...]}}`` with the error's status, a batch's fields
named by position (``orders[3].price``). Bodies are read by ``spot.http``'s parsers (JSON and forms).

Input is strict (docs/API.md, "Errors"): an amount is an ASCII decimal string (``"0.5"``) or a JSON
number, taken exactly (never through ``float``); more than 10 decimal places or 20 integer digits is a
400 (the columns are ``DECIMAL(30, 10)``). A market code is lowercase ASCII as stored (``btc_usdt``).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from matching.core import plain
from orders.errors import OrderRejected
from orders.models import OrderStatus, OrderType, Side, TimeInForce, choices
from orders.schema import (
    AMOUNT_SCHEMA,
    BATCH_EXAMPLES,
    MARKET_CODE_PARAMETER,
    PLACE_EXAMPLES,
    BookOutput,
    CancelOutput,
    OrderOutput,
    errors,
)
from orders.selectors import (
    LIST_LIMIT_MAX,
    MARKET_CODE,
    balance_list,
    book_get,
    market_get,
    market_list,
    order_data,
    order_get,
    order_list,
    trade_list,
)
from orders.services import OrderRequest, order_cancel, order_place, order_place_many
from spot.http import ExactJSONParser, FormParser, JSONNumber

BATCH_MAX = 50  # orders per batch request; one transaction holds every order's funds


# Also the REST_FRAMEWORK defaults (settings/base.py); said here so these views' input never depends
# on a setting. No multipart: nothing in the API uploads files.
PARSERS = [ExactJSONParser, FormParser]

# Decimal() alone would accept what the API refuses: "0.000_1", other scripts' digits (Arabic-Indic
# "\u0661", full-width "\uff11"), " 1 ", "+1", "1e5" and "NaN". So strings are matched first; JSON
# numbers too, as a second guard behind the JSON grammar.
AMOUNT_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
JSON_NUMBER_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
COUNT_TEXT = re.compile(r"[0-9]{1,9}")


# -- serializers -----------------------------------------------------------------------------------


class AmountInput(serializers.DecimalField):
    """An amount as the API reads it: an ASCII decimal string (digits, an optional leading ``-`` and
    fraction: ``"0.5"``, ``"100"``; no ``+``, exponent, spaces, underscores or other scripts' digits)
    or a JSON number (``0.5``, ``1e-3``), taken exactly; at most 20 integer digits and 10 decimal
    places. A number no ``Decimal`` can hold (``1e99999999999999999999``) is refused like any other."""

    default_error_messages = {"invalid": "must be a decimal number: ASCII digits, as a string or a JSON number"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_digits=30, decimal_places=10, **kwargs)

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        # DRF's DecimalField takes any blank text ("  ") as null where null is allowed; only an empty
        # value is (a form cannot send null otherwise).
        if data == "" and self.allow_null:
            return (True, None)
        return serializers.Field.validate_empty_values(self, data)

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, JSONNumber):
            valid = JSON_NUMBER_TEXT.fullmatch(data) is not None
        elif isinstance(data, str):
            valid = AMOUNT_TEXT.fullmatch(data) is not None
        else:  # a JSON integer; never a bool (an int too), a float (the parser makes none) or a container
            valid = isinstance(data, int) and not isinstance(data, bool)
        if not valid:
            self.fail("invalid")
        return super().to_internal_value(data)


class CountInput(serializers.IntegerField):
    """A count (``limit``): ASCII digits only; ``int()`` would take other scripts' digits, ``"1_0"`` and
    ``" 10 "``."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or (isinstance(data, str) and not COUNT_TEXT.fullmatch(data)):
            self.fail("invalid")
        return super().to_internal_value(data)


class MarketCodeInput(serializers.CharField):
    """A market code exactly as stored (``btc_usdt``); whitespace is not trimmed, other shapes refused."""

    default_error_messages = {"unknown": "unknown market (a market code is coin_currency in lowercase ASCII)"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=33, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        code = super().to_internal_value(data)
        if not MARKET_CODE.fullmatch(code):
            self.fail("unknown")
        return code


def _choice(enum: Any, **kwargs: Any) -> serializers.ChoiceField:
    """A choice of ``enum``'s values; the error lists them instead of echoing the input."""
    allowed = ", ".join(member.value for member in enum)
    return serializers.ChoiceField(
        choices=choices(enum), error_messages={"invalid_choice": f"must be one of {allowed}"}, **kwargs
    )


@extend_schema_field(AMOUNT_SCHEMA)
class AmountField(serializers.Field):
    """Output: a decimal as a plain string without trailing zeros (``"0.5"``, ``"100"``)."""

    def to_representation(self, value: Decimal) -> str:
        return plain(value)


@extend_schema_serializer(component_name="BatchOrder")
class OrderInput(serializers.Serializer):
    trade_type = _choice(Side)
    type = _choice(OrderType)
    quantity = AmountInput()
    price = AmountInput(required=False, allow_null=True)
    time_in_force = _choice(TimeInForce, default=TimeInForce.GTC)


@extend_schema_serializer(component_name="PlaceOrder")
class PlaceInput(OrderInput):
    market = MarketCodeInput()


@extend_schema_serializer(component_name="PlaceOrderBatch")
class BatchInput(serializers.Serializer):
    market = MarketCodeInput()
    orders = OrderInput(many=True, allow_empty=False, max_length=BATCH_MAX)


class OrderListQuery(serializers.Serializer):
    market = MarketCodeInput(required=False)
    status = _choice(OrderStatus, required=False)
    limit = CountInput(min_value=1, max_value=LIST_LIMIT_MAX, default=100)


class TradeListQuery(serializers.Serializer):
    limit = CountInput(min_value=1, max_value=LIST_LIMIT_MAX, default=100)


@extend_schema_serializer(component_name="Balance")
class BalanceOutput(serializers.Serializer):
    asset = serializers.CharField()
    total = AmountField()
    held = AmountField()
    available = AmountField()


@extend_schema_serializer(component_name="Market")
class MarketOutput(serializers.Serializer):
    code = serializers.CharField()
    coin = serializers.CharField()
    currency = serializers.CharField()
    tick_size = AmountField()
    lot_size = AmountField()
    min_quantity = AmountField()
    min_notional = AmountField()
    maker_fee_rate = AmountField()
    taker_fee_rate = AmountField()


@extend_schema_serializer(component_name="Trade")
class TradeOutput(serializers.Serializer):
    id = serializers.IntegerField()
    price = AmountField()
    quantity = AmountField()
    taker_side = serializers.CharField()
    created_at = serializers.DateTimeField()


# -- views -----------------------------------------------------------------------------------------


class OrderListCreateApi(APIView):
    """``POST /api/orders`` places one order (201); ``GET /api/orders?market=&status=&limit=`` lists
    the user's orders, newest first."""

    parser_classes = PARSERS

    @extend_schema(
        operation_id="orders_create",
        summary="Place an order",
        request=PlaceInput,
        examples=PLACE_EXAMPLES,
        responses={201: OrderOutput, **errors(400, 401, 403, 413, 415, 429, 503)},
    )
    def post(self, request: Request) -> Response:
        data = _validated(PlaceInput, request.data)
        order = order_place(
            user=request.user,
            market=data["market"],
            side=data["trade_type"],
            order_type=data["type"],
            quantity=data["quantity"],
            price=data.get("price"),
            time_in_force=data["time_in_force"],
        )
        return Response(order_data(order), status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="orders_list",
        summary="List the user's orders, newest first",
        parameters=[OrderListQuery],
        responses={200: OrderOutput(many=True), **errors(400, 401, 403, 429, 503)},
    )
    def get(self, request: Request) -> Response:
        query = _validated(OrderListQuery, request.query_params)
        orders = order_list(
            user=request.user, market=query.get("market"), status=query.get("status"), limit=query["limit"]
        )
        return Response([order_data(order) for order in orders])


class OrderBatchApi(APIView):
    """``POST /api/orders/batch``: up to ``BATCH_MAX`` orders of one market, all accepted or none (201)."""

    parser_classes = PARSERS

    @extend_schema(
        operation_id="orders_batch_create",
        summary="Place up to 50 orders of one market, all or none",
        request=BatchInput,
        examples=BATCH_EXAMPLES,
        responses={201: OrderOutput(many=True), **errors(400, 401, 403, 413, 415, 429, 503)},
    )
    def post(self, request: Request) -> Response:
        data = _validated(BatchInput, request.data)
        requests = [
            OrderRequest(
                user_id=request.user.pk,
                side=item["trade_type"],
                type=item["type"],
                quantity=item["quantity"],
                price=item.get("price"),
                time_in_force=item["time_in_force"],
            )
            for item in data["orders"]
        ]
        try:
            orders = order_place_many(market=data["market"], requests=requests)
        except OrderRejected as exc:
            if exc.item is not None and exc.field:  # one order of the batch: name it by its position
                exc.field = f"orders[{exc.item}].{exc.field}"
                exc.message = f"orders[{exc.item}]: {exc.message}"
            raise
        return Response([order_data(order) for order in orders], status=status.HTTP_201_CREATED)


class OrderDetailApi(APIView):
    """``GET /api/orders/<id>`` (order cache first); ``DELETE /api/orders/<id>`` asks the matcher to
    cancel (202; the order shows ``canceled`` once the matcher has applied it)."""

    @extend_schema(
        operation_id="orders_retrieve",
        summary="One of the user's orders",
        parameters=[OpenApiParameter("order_id", int, OpenApiParameter.PATH)],
        responses={200: OrderOutput, **errors(401, 403, 404, 429, 503)},
    )
    def get(self, request: Request, order_id: int) -> Response:
        return Response(order_get(user=request.user, order_id=order_id))

    @extend_schema(
        operation_id="orders_cancel",
        summary="Ask the matcher to cancel an order",
        parameters=[OpenApiParameter("order_id", int, OpenApiParameter.PATH)],
        responses={202: CancelOutput, **errors(401, 403, 404, 409, 429, 503)},
    )
    def delete(self, request: Request, order_id: int) -> Response:
        order = order_cancel(user=request.user, order_id=order_id)  # 404 for another user's order
        return Response({"id": order.id, "status": "cancel_requested"}, status=status.HTTP_202_ACCEPTED)


class BalanceListApi(APIView):
    """``GET /api/balances``: the user's balances (asset, total, held, available)."""

    @extend_schema(
        operation_id="balances_list",
        summary="The user's balances",
        responses={200: BalanceOutput(many=True), **errors(401, 403, 429, 503)},
    )
    def get(self, request: Request) -> Response:
        return Response(BalanceOutput(balance_list(user=request.user), many=True).data)


class MarketListApi(APIView):
    """``GET /api/markets``: markets open for trading with their grid, minimums and fee rates (public)."""

    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="markets_list",
        summary="Markets open for trading",
        responses={200: MarketOutput(many=True), **errors(429, 503)},
    )
    def get(self, request: Request) -> Response:
        return Response(MarketOutput(market_list(), many=True).data)


class MarketBookApi(APIView):
    """``GET /api/markets/<code>/book``: the depth the matcher last published (public)."""

    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="markets_book_retrieve",
        summary="A market's order book",
        parameters=[MARKET_CODE_PARAMETER],
        responses={200: BookOutput, **errors(404, 429, 503)},
    )
    def get(self, request: Request, code: str) -> Response:
        market = market_get(code=code)  # 404 for a code no market has
        return Response(book_get(market_code=market.code))


class MarketTradeListApi(APIView):
    """``GET /api/markets/<code>/trades?limit=``: the market's latest trades, newest first (public)."""

    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="markets_trades_list",
        summary="A market's latest trades, newest first",
        parameters=[
            MARKET_CODE_PARAMETER,
            TradeListQuery,
        ],
        responses={200: TradeOutput(many=True), **errors(400, 404, 429, 503)},
    )
    def get(self, request: Request, code: str) -> Response:
        market = market_get(code=code)  # 404 for a code no market has
        limit = _validated(TradeListQuery, request.query_params)["limit"]
        return Response(TradeOutput(trade_list(market_code=market.code, limit=limit), many=True).data)


# -- internals -------------------------------------------------------------------------------------


def _validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """The serializer's validated data; raises ``ValidationError`` naming every offending field."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
