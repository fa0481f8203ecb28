"""The HTTP API of the orders domain under ``/api/v1/``: the old system's routes, names and shapes
(docs/API.md), in the envelope ``spot.envelope`` writes. Views are thin: a serializer checks the shape of
the input, a service or selector does the work and shapes the output.

Errors: input of the wrong shape raises DRF's ``ValidationError`` and business rules raise the
services' ``ApplicationError``\\ s; ``spot.errors.exception_handler`` names the fields at fault (a
batch's by position: ``orders[3].price``) and the renderer wraps them in the error envelope. Bodies
are read by ``spot.http``'s parsers (JSON and forms); PUT bodies too.

Input is strict (docs/API.md, "Errors"), stricter than the old system's: an amount is an ASCII decimal
string (``"0.5"``) or a JSON number, taken exactly (never through ``float``), at most 10 decimal places
and 20 integer digits (the columns are ``DECIMAL(30, 10)``); ``ioc`` is 0 or 1 and nothing else;
``currency`` and ``coin`` are lowercase ASCII as stored and must name a market; paging and dates are
ASCII digits in range. Nothing a client sends answers 5xx.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from matching.core import plain
from orders.errors import MarketNotFound, MarketUnavailable, OrderConflict, OrderNotFound, OrderRejected
from orders.models import OPEN_STATUSES, Market, OrderStatus, OrderType, Side, StopCondition, TimeInForce, choices
from orders.schema import (
    AMOUNT_SCHEMA,
    BALANCES,
    BATCH_EXAMPLES,
    ORDER_PAGE,
    OWN_TRADE_PAGE,
    PLACE_EXAMPLES,
    BookOutput,
    CancelAllOutput,
    CancelOutput,
    OrderOutput,
    RecentTradeOutput,
    errors,
)
from orders.selectors import (
    LIST_LIMIT_MAX,
    PAGE_SIZE_DEFAULT,
    RECENT_TRADES_DEFAULT,
    Page,
    balance_list,
    book_get,
    market_find,
    market_list,
    markets_exist,
    order_data,
    order_get,
    order_page,
    trade_page,
    trade_recent,
)
from orders.services import OrderRequest, order_cancel, order_cancel_all, order_place, order_place_many
from spot.envelope import envelope_message
from spot.errors import ApplicationError
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
MILLIS_TEXT = re.compile(r"[0-9]{1,15}")
ORDER_ID_TEXT = re.compile(r"[0-9]{1,30}")
# A coin or currency as stored (the halves of a market code, ``orders.selectors.MARKET_CODE``).
ASSET_TEXT = re.compile(r"[a-z0-9]{1,16}")
MILLIS_MAX = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last moment a datetime holds
PAGE_MAX = 1_000_000  # deeper pages are exports, not API reads (an OFFSET this large is already slow)

# The history route's status: an order status, or one of these groups.
STATUS_GROUPS: dict[str, frozenset[str] | None] = {"open": frozenset(OPEN_STATUSES), "all": None}
HISTORY_STATUSES = [*(member.value for member in OrderStatus), *STATUS_GROUPS]


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


class MillisInput(serializers.IntegerField):
    """A moment in milliseconds since the Unix epoch: ASCII digits (a string or a JSON integer), at most
    ``MILLIS_MAX``."""

    default_error_messages = {"invalid": "must be milliseconds since the Unix epoch: ASCII digits"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=0, max_value=MILLIS_MAX, **kwargs)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or (isinstance(data, str) and not MILLIS_TEXT.fullmatch(data)):
            self.fail("invalid")
        return super().to_internal_value(data)


class AssetInput(serializers.CharField):
    """A coin or a currency exactly as stored (``btc``, ``usdt``); whitespace is not trimmed."""

    default_error_messages = {"invalid": "must be an asset code in lowercase ASCII letters and digits (btc, usdt)"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=16, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        code = super().to_internal_value(data)
        if not ASSET_TEXT.fullmatch(code):
            self.fail("invalid")
        return code


@extend_schema_field({"oneOf": [{"type": "integer", "enum": [0, 1]}, {"type": "string", "enum": ["0", "1"]}]})
class IocInput(serializers.Field):
    """The old system's ``ioc`` flag: 0 or 1, as a JSON integer or a string; nothing else (the old
    system passed any value through; ``true``, ``"yes"`` or 2 are refused here)."""

    default_error_messages = {"invalid": 'must be 0 or 1 (a JSON integer or the string "0" or "1")'}

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool) or data not in (0, 1, "0", "1"):
            self.fail("invalid")
        return data in (1, "1")

    def to_representation(self, value: bool) -> int:
        return int(value)


@extend_schema_field({"type": "string", "minLength": 1, "maxLength": 36, "pattern": r"^[\x20-\x7e]{1,36}$"})
class ClientOrderIdInput(serializers.Field):
    """A client's own id for its order: a string, checked by the service (``orders.models.CLIENT_ORDER_ID``:
    printable ASCII, 1 to 36 characters). A number is refused rather than turned into text."""

    default_error_messages = {"invalid": "must be a string of 1 to 36 printable ASCII characters"}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return data

    def to_representation(self, value: str) -> str:
        return value


@extend_schema_serializer(component_name="BatchOrder")
class OrderInput(serializers.Serializer):
    """One order. ``ioc`` and ``time_in_force`` say the same thing two ways: ``ioc`` 1 is an order that
    never rests (``time_in_force`` ``ioc``, or ``fok``), 0 one that rests (``gtc``); without either it
    is ``gtc``; both given must agree."""

    trade_type = _choice(Side)
    type = _choice(OrderType)
    quantity = AmountInput()
    price = AmountInput(required=False, allow_null=True, help_text="Limit price: `limit` and `stop_limit` only.")
    base_price = AmountInput(
        required=False, allow_null=True, help_text="Stop orders: the last trade price that triggers it."
    )
    stop_condition = _choice(
        StopCondition,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="Stop orders: `ge` triggers at or above `base_price`, `le` at or below.",
    )
    ioc = IocInput(required=False, help_text="1: immediate or cancel (never rests), 0: good till canceled.")
    time_in_force = _choice(TimeInForce, required=False)
    client_order_id = ClientOrderIdInput(
        required=False,
        allow_null=True,
        help_text="Your id for the order, unique among your orders: a retry with it places nothing.",
    )

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        data["time_in_force"] = _time_in_force(data.get("ioc"), data.get("time_in_force"))
        data["stop_condition"] = data.get("stop_condition") or None
        return data


@extend_schema_serializer(component_name="PlaceOrder")
class PlaceInput(OrderInput):
    currency = AssetInput(help_text="The quote asset, e.g. `usdt`.")
    coin = AssetInput(help_text="The base asset, e.g. `btc`.")


@extend_schema_serializer(component_name="PlaceOrderBatch")
class BatchInput(serializers.Serializer):
    currency = AssetInput()
    coin = AssetInput()
    orders = OrderInput(many=True, allow_empty=False, max_length=BATCH_MAX)


class PagingQuery(serializers.Serializer):
    page = CountInput(min_value=1, max_value=PAGE_MAX, default=1)
    limit = CountInput(min_value=1, max_value=LIST_LIMIT_MAX, default=PAGE_SIZE_DEFAULT, help_text="Per page.")


class PeriodQuery(PagingQuery):
    start_date = MillisInput(required=False, help_text="From this moment (ms since the epoch), inclusive.")
    end_date = MillisInput(required=False, help_text="Up to this moment (ms since the epoch), inclusive.")

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        start, end = data.get("start_date"), data.get("end_date")
        if start is not None and end is not None and end < start:
            raise serializers.ValidationError({"end_date": ["must not be before start_date"]})
        return data


class PendingQuery(PagingQuery):
    currency = AssetInput(required=False)
    coin = AssetInput(required=False)
    trade_type = _choice(Side, required=False)


class HistoryQuery(PeriodQuery):
    coin = AssetInput(required=False)
    type = _choice(OrderType, required=False)
    trade_type = _choice(Side, required=False)


class TransactionsQuery(PeriodQuery):
    currency = AssetInput(required=False)
    coin = AssetInput(required=False)


class MarketQuery(serializers.Serializer):
    currency = AssetInput()
    coin = AssetInput()


class RecentTradesQuery(MarketQuery):
    count = CountInput(min_value=1, max_value=LIST_LIMIT_MAX, default=RECENT_TRADES_DEFAULT)


class ClientOrderIdQuery(serializers.Serializer):
    client_order_id = ClientOrderIdInput()


@extend_schema_serializer(component_name="CancelAll")
class CancelAllInput(serializers.Serializer):
    currency = AssetInput(required=False)
    coin = AssetInput(required=False)


@extend_schema_serializer(component_name="CancelByType")
class CancelByTypeInput(CancelAllInput):
    type = _choice(OrderType)


@extend_schema_serializer(component_name="CancelByClientOrderId")
class CancelByClientOrderIdInput(serializers.Serializer):
    client_order_id = ClientOrderIdInput()


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


class UnknownStatus(ApplicationError):
    """The history route's ``{status}`` is no status and no group of them: no such list."""

    status = 404


# -- views: orders ---------------------------------------------------------------------------------


class OrderPlaceApi(APIView):
    """``POST /api/v1/orders`` places one order (201), or returns the order its ``client_order_id``
    already names (200, nothing placed)."""

    parser_classes = PARSERS

    @extend_schema(
        operation_id="orders_create",
        summary="Place an order",
        request=PlaceInput,
        examples=PLACE_EXAMPLES,
        responses={
            201: OrderOutput(),
            200: OrderOutput(),
            **errors(400, 401, 403, 413, 415, 429, 503),
        },
    )
    def post(self, request: Request) -> Response:
        data = _validated(PlaceInput, request.data)
        # Whether the market is open is the service's to say (a client_order_id retry is answered first).
        market = _market(data["currency"], data["coin"])
        with _market_fields():
            order = order_place(
                user=request.user,
                market=market,
                side=data["trade_type"],
                order_type=data["type"],
                quantity=data["quantity"],
                price=data.get("price"),
                time_in_force=data["time_in_force"],
                base_price=data.get("base_price"),
                stop_condition=data["stop_condition"],
                client_order_id=data.get("client_order_id"),
            )
        if getattr(order, "existing", False):
            message = f"an order with this client_order_id already exists (order {order.id}); nothing was placed"
            return envelope_message(Response(order_data(order), status=status.HTTP_200_OK), message)
        return Response(order_data(order), status=status.HTTP_201_CREATED)


class OrderBatchApi(APIView):
    """``POST /api/v1/orders/batch``: up to ``BATCH_MAX`` orders of one market, all accepted or none
    (201). When every order names an existing order by ``client_order_id``, those are returned (200);
    when only some do, 409 naming them."""

    parser_classes = PARSERS

    @extend_schema(
        operation_id="orders_batch_create",
        summary="Place up to 50 orders of one market, all or none",
        request=BatchInput,
        examples=BATCH_EXAMPLES,
        responses={
            201: OrderOutput(many=True),
            200: OrderOutput(many=True),
            **errors(400, 401, 403, 409, 413, 415, 429, 503),
        },
    )
    def post(self, request: Request) -> Response:
        data = _validated(BatchInput, request.data)
        # Whether the market is open is the service's to say (a client_order_id retry is answered first).
        market = _market(data["currency"], data["coin"])
        requests = [
            OrderRequest(
                user_id=request.user.pk,
                side=item["trade_type"],
                type=item["type"],
                quantity=item["quantity"],
                price=item.get("price"),
                time_in_force=item["time_in_force"],
                base_price=item.get("base_price"),
                stop_condition=item["stop_condition"],
                client_order_id=item.get("client_order_id"),
            )
            for item in data["orders"]
        ]
        try:
            with _market_fields():
                orders = order_place_many(market=market, requests=requests)
        except OrderConflict as exc:  # some name existing orders, some do not: name each that does
            exc.extra = {
                "errors": {
                    f"orders[{item}].client_order_id": [f"names the existing order {order_id}"]
                    for item, order_id in sorted(exc.existing.items())
                }
            }
            exc.field = None
            raise
        except OrderRejected as exc:
            if exc.item is not None and exc.field:  # one order of the batch: name it by its position
                exc.field = f"orders[{exc.item}].{exc.field}"
                exc.message = f"orders[{exc.item}]: {exc.message}"
            raise
        body = [order_data(order) for order in orders]
        if orders and all(getattr(order, "existing", False) for order in orders):
            message = "every order's client_order_id names an existing order: they are returned, nothing was placed"
            return envelope_message(Response(body, status=status.HTTP_200_OK), message)
        return Response(body, status=status.HTTP_201_CREATED)


class OrderPendingApi(APIView):
    """``GET /api/v1/orders/pending``: the user's open orders (waiting stops included), newest first,
    one page."""

    @extend_schema(
        operation_id="orders_pending_list",
        summary="The user's open orders, newest first, paginated",
        parameters=[PendingQuery],
        responses={
            200: ORDER_PAGE,
            **errors(400, 401, 403, 429, 503),
        },
    )
    def get(self, request: Request) -> Response:
        query = _validated(PendingQuery, request.query_params)
        _check_assets(query.get("currency"), query.get("coin"))
        page = order_page(
            user=request.user,
            statuses=OPEN_STATUSES,
            currency=query.get("currency"),
            coin=query.get("coin"),
            side=query.get("trade_type"),
            page=query["page"],
            per_page=query["limit"],
        )
        return Response(_paginated(request, page))


class OrderHistoryApi(APIView):
    """``GET /api/v1/orders/{currency}/{status}``: the user's orders in markets quoted in ``currency``
    with ``status`` (an order status, ``open`` or ``all``), newest first, one page."""

    @extend_schema(
        operation_id="orders_history_list",
        summary="The user's orders by quote currency and status, newest first, paginated",
        parameters=[
            OpenApiParameter("currency", str, OpenApiParameter.PATH, description="The quote asset, e.g. `usdt`."),
            OpenApiParameter(
                "status",
                str,
                OpenApiParameter.PATH,
                enum=HISTORY_STATUSES,
                description="An order status, `open` (new, pending, partially_filled, stopping) or `all`.",
            ),
            HistoryQuery,
        ],
        responses={
            200: ORDER_PAGE,
            **errors(400, 401, 403, 404, 429, 503),
        },
    )
    def get(self, request: Request, currency: str, status: str) -> Response:
        if not ASSET_TEXT.fullmatch(currency) or not markets_exist(currency=currency):
            raise MarketNotFound(f"no market is quoted in {_shown(currency)}", field="currency")
        if status not in HISTORY_STATUSES:
            raise UnknownStatus(
                f"unknown status {_shown(status)}: one of {', '.join(HISTORY_STATUSES)}", field="status"
            ) from None
        statuses = STATUS_GROUPS[status] if status in STATUS_GROUPS else frozenset({status})
        query = _validated(HistoryQuery, request.query_params)
        _check_assets(currency, query.get("coin"))
        page = order_page(
            user=request.user,
            statuses=statuses,
            currency=currency,
            coin=query.get("coin"),
            order_type=query.get("type"),
            side=query.get("trade_type"),
            start_ms=query.get("start_date"),
            end_ms=query.get("end_date"),
            page=query["page"],
            per_page=query["limit"],
        )
        return Response(_paginated(request, page))


class OrderDetailApi(APIView):
    """``GET /api/v1/orders/detail/{id}``: one of the user's orders (order cache first)."""

    @extend_schema(
        operation_id="orders_detail_retrieve",
        summary="One of the user's orders",
        parameters=[OpenApiParameter("order_id", int, OpenApiParameter.PATH)],
        responses={200: OrderOutput(), **errors(401, 403, 404, 429, 503)},
    )
    def get(self, request: Request, order_id: str) -> Response:
        return Response(order_get(user=request.user, order_id=_order_id(order_id)))


class OrderClientDetailApi(APIView):
    """``GET /api/v1/orders/detail?client_order_id=...``: the user's order named by its client order id."""

    @extend_schema(
        operation_id="orders_detail_by_client_order_id_retrieve",
        summary="One of the user's orders, by its client_order_id",
        parameters=[ClientOrderIdQuery],
        responses={200: OrderOutput(), **errors(400, 401, 403, 404, 429, 503)},
    )
    def get(self, request: Request) -> Response:
        query = _validated(ClientOrderIdQuery, request.query_params)
        return Response(order_get(user=request.user, client_order_id=query["client_order_id"]))


class OrderCancelApi(APIView):
    """``PUT /api/v1/orders/{id}/cancel`` asks the matcher to cancel an open order (a waiting stop
    too); it shows ``canceled`` once the matcher has applied it."""

    @extend_schema(
        operation_id="orders_cancel",
        summary="Ask the matcher to cancel an order",
        request=None,
        parameters=[OpenApiParameter("order_id", int, OpenApiParameter.PATH)],
        responses={200: CancelOutput(), **errors(401, 403, 404, 409, 429, 503)},
    )
    def put(self, request: Request, order_id: str) -> Response:
        order = order_cancel(user=request.user, order_id=_order_id(order_id))  # 404 for another user's order
        return _cancel_requested(order.id)


class OrderClientCancelApi(APIView):
    """``PUT /api/v1/orders/cancel`` with ``{"client_order_id": ...}``: cancel by the client's id."""

    parser_classes = PARSERS

    @extend_schema(
        operation_id="orders_cancel_by_client_order_id",
        summary="Ask the matcher to cancel an order named by its client_order_id",
        request=CancelByClientOrderIdInput,
        responses={200: CancelOutput(), **errors(400, 401, 403, 404, 409, 413, 415, 429, 503)},
    )
    def put(self, request: Request) -> Response:
        data = _validated(CancelByClientOrderIdInput, request.data)
        order = order_cancel(user=request.user, client_order_id=data["client_order_id"])
        return _cancel_requested(order.id)


class OrderCancelAllApi(APIView):
    """``PUT /api/v1/orders/cancel-all``: cancel every open order of the user (of a market, or of the
    markets of a currency or a coin)."""

    parser_classes = PARSERS

    @extend_schema(
        operation_id="orders_cancel_all",
        summary="Ask the matcher to cancel all the user's open orders",
        request=CancelAllInput,
        responses={200: CancelAllOutput(), **errors(400, 401, 403, 413, 415, 429, 503)},
    )
    def put(self, request: Request) -> Response:
        data = _validated(CancelAllInput, request.data)
        return _cancels(request, data, None)


class OrderCancelByTypeApi(APIView):
    """``PUT /api/v1/orders/cancel-by-type``: cancel every open order of the user of one type."""

    parser_classes = PARSERS

    @extend_schema(
        operation_id="orders_cancel_by_type",
        summary="Ask the matcher to cancel the user's open orders of one type",
        request=CancelByTypeInput,
        responses={200: CancelAllOutput(), **errors(400, 401, 403, 413, 415, 429, 503)},
    )
    def put(self, request: Request) -> Response:
        data = _validated(CancelByTypeInput, request.data)
        return _cancels(request, data, data["type"])


class TransactionListApi(APIView):
    """``GET /api/v1/orders/transactions``: the user's trades from the user's side, newest first."""

    @extend_schema(
        operation_id="orders_transactions_list",
        summary="The user's trades, newest first, paginated",
        parameters=[TransactionsQuery],
        responses={
            200: OWN_TRADE_PAGE,
            **errors(400, 401, 403, 429, 503),
        },
    )
    def get(self, request: Request) -> Response:
        query = _validated(TransactionsQuery, request.query_params)
        _check_assets(query.get("currency"), query.get("coin"))
        page = trade_page(
            user=request.user,
            currency=query.get("currency"),
            coin=query.get("coin"),
            start_ms=query.get("start_date"),
            end_ms=query.get("end_date"),
            page=query["page"],
            per_page=query["limit"],
        )
        return Response(_paginated(request, page))


# -- views: market data (public) and balances ------------------------------------------------------


class RecentTransactionListApi(APIView):
    """``GET /api/v1/orders/transactions/recent?currency=&coin=&count=``: a market's latest trades (public)."""

    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="orders_transactions_recent_list",
        summary="A market's latest trades, newest first",
        parameters=[RecentTradesQuery],
        responses={200: RecentTradeOutput(many=True), **errors(400, 429, 503)},
    )
    def get(self, request: Request) -> Response:
        query = _validated(RecentTradesQuery, request.query_params)
        market = _market(query["currency"], query["coin"])
        return Response(trade_recent(market=market, count=query["count"]))


class OrderBookApi(APIView):
    """``GET /api/v1/orders/order-book?currency=&coin=``: the depth the matcher last published (public)."""

    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="orders_order_book_retrieve",
        summary="A market's order book",
        parameters=[MarketQuery],
        responses={200: BookOutput(), **errors(400, 429, 503)},
    )
    def get(self, request: Request) -> Response:
        query = _validated(MarketQuery, request.query_params)
        return Response(book_get(market=_market(query["currency"], query["coin"])))


class BalanceListApi(APIView):
    """``GET /api/v1/balances``: the user's balances by asset: total, held (by open orders), available."""

    @extend_schema(
        operation_id="balances_list",
        summary="The user's balances, by asset",
        responses={200: BALANCES, **errors(401, 403, 429, 503)},
    )
    def get(self, request: Request) -> Response:
        return Response(
            {
                balance.asset: {
                    "total": plain(balance.total),
                    "held": plain(balance.held),
                    "available": plain(balance.available),
                }
                for balance in balance_list(user=request.user)
            }
        )


class MarketListApi(APIView):
    """``GET /api/v1/markets``: markets open for trading with their grid, minimums and fee rates (public)."""

    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="markets_list",
        summary="Markets open for trading",
        responses={200: MarketOutput(many=True), **errors(429, 503)},
    )
    def get(self, request: Request) -> Response:
        return Response(MarketOutput(market_list(), many=True).data)


# -- internals -------------------------------------------------------------------------------------


def _validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """The serializer's validated data; raises ``ValidationError`` naming every offending field."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _order_id(text: str) -> int:
    """An order id from the path. Any segment is routed here (not only digits), so that
    ``/orders/x/cancel`` is this route's 404 rather than a 405 of the history route it would match."""
    if not ORDER_ID_TEXT.fullmatch(text):
        raise OrderNotFound(f"order {_shown(text)} not found", field="order_id")
    return int(text)


def _time_in_force(ioc: bool | None, time_in_force: str | None) -> str:
    """One time in force from the old ``ioc`` flag and/or ``time_in_force``; 400 when they disagree."""
    if ioc is None:
        return time_in_force or TimeInForce.GTC
    if time_in_force is None:
        return TimeInForce.IOC if ioc else TimeInForce.GTC
    if ioc == (time_in_force != TimeInForce.GTC):
        return time_in_force
    message = f"ioc {int(ioc)} contradicts time_in_force {time_in_force}: send one of them, or both agreeing"
    raise serializers.ValidationError({"ioc": [message], "time_in_force": [message]})


def _shown(text: str) -> str:
    return repr(text if len(text) <= 20 else f"{text[:20]}...")


def _unknown_market(currency: str, coin: str) -> ApplicationError:
    message = f"unknown market: no market trades {coin} against {currency}"
    return MarketUnavailable(message, extra={"errors": {"currency": [message], "coin": [message]}})


def _market(currency: str, coin: str) -> Market:
    """The market trading ``coin`` against ``currency`` (enabled or not); 400 naming both when none does."""
    market = market_find(f"{coin}_{currency}")
    if market is None:
        raise _unknown_market(currency, coin)
    return market


@contextmanager
def _market_fields() -> Iterator[None]:
    """A service's error about its ``market`` argument, named by this API's fields (currency, coin)."""
    try:
        yield
    except ApplicationError as exc:
        if exc.field == "market":
            exc.extra = {**exc.extra, "errors": {"currency": [exc.message], "coin": [exc.message]}}
            exc.field = None
        raise


def _check_assets(currency: str | None, coin: str | None) -> None:
    """400 naming the filter when no market has this currency, this coin, or this pair."""
    if currency is None and coin is None:
        return
    if markets_exist(currency=currency, coin=coin):
        return
    if currency is not None and coin is not None:
        raise _unknown_market(currency, coin)
    if currency is not None:
        raise MarketUnavailable(f"no market is quoted in {_shown(currency)}", field="currency")
    assert coin is not None
    raise MarketUnavailable(f"no market trades {_shown(coin)}", field="coin")


def _cancel_requested(order_id: int) -> Response:
    message = "cancel requested: the order shows canceled once the matcher has applied it"
    return envelope_message(Response({"id": order_id, "status": "cancel_requested"}), message)


def _cancels(request: Request, data: dict[str, Any], order_type: str | None) -> Response:
    _check_assets(data.get("currency"), data.get("coin"))
    orders = order_cancel_all(
        user=request.user, currency=data.get("currency"), coin=data.get("coin"), order_type=order_type
    )
    ids = [order.id for order in orders]
    message = f"cancel requested for {len(ids)} orders: each shows canceled once the matcher has applied it"
    return envelope_message(Response({"count": len(ids), "ids": ids}), message)


def _paginated(request: Request, page: Page) -> dict[str, Any]:
    """``page`` as Laravel's length-aware paginator writes it (the old system's lists): the items in
    ``data``, 1-based ``from``/``to`` positions (null when the page is empty), absolute page URLs."""
    last_page = max(1, math.ceil(page.total / page.per_page))
    offset = (page.page - 1) * page.per_page
    path = request.build_absolute_uri(request.path)

    def url(number: int) -> str:
        params = [(key, value) for key, value in request.query_params.items() if key != "page"]
        return f"{path}?{urlencode([*params, ('page', number)])}"

    return {
        "current_page": page.page,
        "data": page.items,
        "first_page_url": url(1),
        "from": offset + 1 if page.items else None,
        "last_page": last_page,
        "last_page_url": url(last_page),
        "next_page_url": url(page.page + 1) if page.page < last_page else None,
        "path": path,
        "per_page": page.per_page,
        "prev_page_url": url(page.page - 1) if page.page > 1 else None,
        "to": offset + len(page.items) if page.items else None,
        "total": page.total,
    }
