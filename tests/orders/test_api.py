"""The old system's order API under /api/v1 (docs/API.md): every route's answer in the envelope, field
by field, with real MariaDB and Redis (and a real matcher engine where orders must trade)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.db import connection
from rest_framework.test import APIClient

from bench.feed import publish_reference
from orders.balances import balance_deposit
from orders.models import Balance, Order
from orders.outbox import order_sweep_unqueued
from spot.envelope import DATA_VERSION
from tests.factories import MarketFactory, OrderFactory, UserFactory

pytestmark = pytest.mark.django_db

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connections are refused

ORDER_KEYS = {
    "id",
    "user_id",
    "trade_type",
    "currency",
    "coin",
    "type",
    "ioc",
    "time_in_force",
    "quantity",
    "price",
    "executed_quantity",
    "executed_price",
    "base_price",
    "stop_condition",
    "fee",
    "status",
    "reject_reason",
    "client_order_id",
    "created_at",
    "updated_at",
}
PAGE_KEYS = {
    "current_page",
    "data",
    "first_page_url",
    "from",
    "last_page",
    "last_page_url",
    "next_page_url",
    "path",
    "per_page",
    "prev_page_url",
    "to",
    "total",
}


@pytest.fixture
def market(redis_client):
    # min_quantity above the lot size and a min notional, so each grid rule can fail on its own.
    return MarketFactory(coin="btc", currency="usdt", min_quantity=Decimal("0.001"), min_notional=Decimal("10"))


def _drain(engine) -> int:
    total = 0
    while n := engine.drain_batch():
        total += n
    return total


def _order(**fields):
    return {
        "currency": "usdt",
        "coin": "btc",
        "trade_type": "buy",
        "type": "limit",
        "quantity": "0.5",
        "price": "100.00",
        **fields,
    }


def _held(user, asset: str) -> Decimal:
    return Balance.objects.get(user=user, asset=asset).held


def ok(response, status: int = 200, message: str | None = None):
    """The envelope of a success, checked key by key; returns its ``data``."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"success", "message", "dataVersion", "data"}
    assert (body["success"], body["message"], body["dataVersion"]) == (True, message, DATA_VERSION)
    return body["data"]


def error(response, status: int):
    """The envelope of an error, checked key by key; returns ``(message, errors)``."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"success", "message", "dataVersion", "data", "errors"}
    assert (body["success"], body["dataVersion"], body["data"]) == (False, DATA_VERSION, None)
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["errors"], dict)
    return body["message"], body["errors"]


def _is_ms(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1_700_000_000_000 < value < 4_000_000_000_000


# -- place -------------------------------------------------------------------------------------------


def test_placing_a_limit_order_answers_201_with_the_order_in_the_old_fields(api, trader):
    data = ok(api.post("/api/v1/orders", _order(), format="json"), 201)

    order = Order.objects.get()
    assert set(data) == ORDER_KEYS
    assert data == {
        "id": order.id,
        "user_id": trader.pk,
        "trade_type": "buy",
        "currency": "usdt",
        "coin": "btc",
        "type": "limit",
        "ioc": 0,
        "time_in_force": "gtc",
        "quantity": "0.5",
        "price": "100",
        "executed_quantity": "0",
        "executed_price": None,
        "base_price": None,
        "stop_condition": None,
        "fee": "0",
        "status": "new",
        "reject_reason": "",
        "client_order_id": None,
        "created_at": data["created_at"],
        "updated_at": data["updated_at"],
    }
    assert _is_ms(data["created_at"]) and _is_ms(data["updated_at"])
    assert data["created_at"] == int(order.created_at.timestamp() * 1000)
    assert _held(trader, "usdt") == Decimal("50")


@pytest.mark.parametrize(
    ("fields", "ioc", "time_in_force"),
    [
        pytest.param({"ioc": 1}, 1, "ioc", id="ioc 1"),
        pytest.param({"ioc": "1"}, 1, "ioc", id="ioc string 1"),
        pytest.param({"ioc": 0}, 0, "gtc", id="ioc 0"),
        pytest.param({"ioc": "0"}, 0, "gtc", id="ioc string 0"),
        pytest.param({"time_in_force": "fok"}, 1, "fok", id="fok alone"),
        pytest.param({"ioc": 1, "time_in_force": "fok"}, 1, "fok", id="ioc 1 and fok agree"),
        pytest.param({"ioc": 0, "time_in_force": "gtc"}, 0, "gtc", id="ioc 0 and gtc agree"),
    ],
)
def test_ioc_and_time_in_force_say_the_same_thing(api, fields, ioc, time_in_force):
    data = ok(api.post("/api/v1/orders", _order(**fields), format="json"), 201)

    assert (data["ioc"], data["time_in_force"]) == (ioc, time_in_force)
    assert Order.objects.get().time_in_force == time_in_force


@pytest.mark.parametrize("value", [True, False, 2, -1, "true", "yes", "", " 1", "01", 1.0, [1], {"v": 1}])
def test_ioc_is_0_or_1_and_nothing_else(api, value, redis_client):
    message, errors = error(api.post("/api/v1/orders", _order(ioc=value), format="json"), 400)

    assert set(errors) == {"ioc"}
    assert errors["ioc"] == ['must be 0 or 1 (a JSON integer or the string "0" or "1")']
    assert message == "invalid input: ioc"
    assert Order.objects.count() == 0


@pytest.mark.parametrize(("ioc", "time_in_force"), [(1, "gtc"), (0, "ioc"), (0, "fok")])
def test_ioc_contradicting_time_in_force_is_a_400_naming_both(api, ioc, time_in_force):
    message, errors = error(
        api.post("/api/v1/orders", _order(ioc=ioc, time_in_force=time_in_force), format="json"), 400
    )

    text = f"ioc {ioc} contradicts time_in_force {time_in_force}: send one of them, or both agreeing"
    assert errors == {"ioc": [text], "time_in_force": [text]}
    assert message == "invalid input: ioc, time_in_force"
    assert Order.objects.count() == 0


def test_json_numbers_are_parsed_exactly(api, trader):
    ok(api.post("/api/v1/orders", _order(quantity=0.1, price=123.45), format="json"), 201)

    order = Order.objects.get()
    assert (order.quantity, order.price, order.held) == (Decimal("0.1"), Decimal("123.45"), Decimal("12.345"))


def test_a_number_with_more_digits_than_a_float_holds_is_taken_as_sent(api, trader):
    payload = (
        b'{"currency": "usdt", "coin": "btc", "trade_type": "sell", "type": "limit", '
        b'"quantity": 1.0001, "price": 12345678.12}'
    )

    ok(api.post("/api/v1/orders", payload, content_type="application/json"), 201)

    assert Order.objects.get().price == Decimal("12345678.12")


def test_a_form_encoded_order_is_accepted(api):
    data = ok(
        api.post("/api/v1/orders", urlencode(_order(ioc="1")), content_type="application/x-www-form-urlencoded"), 201
    )

    assert (data["ioc"], data["time_in_force"]) == (1, "ioc")


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        pytest.param({"price": None}, {"price"}, id="limit without a price"),
        pytest.param({"price": "100.005"}, {"price"}, id="price off the tick grid"),
        pytest.param({"price": "-1.00"}, {"price"}, id="negative price"),
        pytest.param({"quantity": "0.00015"}, {"quantity"}, id="quantity off the lot grid"),
        pytest.param({"quantity": "0.0005"}, {"quantity"}, id="below the minimum quantity"),
        pytest.param({"quantity": "0.001", "price": "100"}, {"quantity"}, id="below the minimum notional"),
        pytest.param({"quantity": "0"}, {"quantity"}, id="zero quantity"),
        pytest.param({"quantity": "lots"}, {"quantity"}, id="non-numeric quantity"),
        pytest.param({"quantity": 0.12345678901}, {"quantity"}, id="float with 11 decimals"),
        pytest.param({"quantity": "1e400"}, {"quantity"}, id="quantity too large"),
        pytest.param({"quantity": None}, {"quantity"}, id="null quantity"),
        pytest.param({"coin": "eth"}, {"currency", "coin"}, id="unknown market"),
        pytest.param({"coin": "doge"}, {"currency", "coin"}, id="disabled market"),
        pytest.param({"coin": "BTC"}, {"coin"}, id="coin in capitals"),
        pytest.param({"currency": "usdt "}, {"currency"}, id="currency with a space"),
        pytest.param({"currency": 5}, {"currency"}, id="currency not a string"),
        pytest.param({"trade_type": "hold"}, {"trade_type"}, id="bad side"),
        pytest.param({"type": "stop"}, {"type"}, id="bad type"),
        pytest.param({"time_in_force": "gtd"}, {"time_in_force"}, id="bad time in force"),
        pytest.param(
            {"type": "market", "trade_type": "sell", "price": "100"}, {"price"}, id="market order with a price"
        ),
        pytest.param({"quantity": "10", "price": "100000.00"}, {"quantity"}, id="insufficient funds"),
        pytest.param({"base_price": "90"}, {"base_price"}, id="limit order with a base price"),
        pytest.param({"stop_condition": "le"}, {"stop_condition"}, id="limit order with a stop condition"),
        pytest.param({"stop_condition": "lt"}, {"stop_condition"}, id="bad stop condition"),
        pytest.param({"type": "stop_limit", "stop_condition": "le"}, {"base_price"}, id="stop without a base price"),
        pytest.param({"type": "stop_limit", "base_price": "90"}, {"stop_condition"}, id="stop without a condition"),
        pytest.param(
            {"type": "stop_limit", "base_price": "90.001", "stop_condition": "le"}, {"base_price"}, id="base off grid"
        ),
        pytest.param({"client_order_id": ""}, {"client_order_id"}, id="empty client order id"),
        pytest.param({"client_order_id": "x" * 37}, {"client_order_id"}, id="client order id too long"),
        pytest.param({"client_order_id": "caf\u00e9"}, {"client_order_id"}, id="client order id not ascii"),
        pytest.param({"client_order_id": "a\tb"}, {"client_order_id"}, id="client order id with a tab"),
        pytest.param({"client_order_id": 12}, {"client_order_id"}, id="client order id a number"),
    ],
)
def test_bad_input_answers_400_naming_the_field_and_writes_nothing(api, trader, market, fields, named, redis_client):
    MarketFactory(coin="doge", currency="usdt", enabled=False)

    response = api.post("/api/v1/orders", {k: v for k, v in _order(**fields).items() if v is not None}, format="json")

    _message, errors = error(response, 400)
    assert set(errors) == named, errors
    assert all(errors[name] for name in named)
    assert Order.objects.count() == 0
    assert (_held(trader, "usdt"), _held(trader, "btc")) == (0, 0)
    assert redis_client.xlen("orders:btc_usdt") == 0


def test_an_unknown_market_is_named_by_both_of_its_fields(api):
    message, errors = error(api.post("/api/v1/orders", _order(coin="eth"), format="json"), 400)

    assert message == "unknown market: no market trades eth against usdt"
    assert errors == {"currency": [message], "coin": [message]}


def test_a_missing_field_is_named(api):
    _message, errors = error(api.post("/api/v1/orders", {"currency": "usdt", "quantity": "1"}, format="json"), 400)

    assert set(errors) == {"coin", "trade_type", "type"}
    assert errors["coin"] == ["This field is required."]


def test_a_market_buy_without_any_published_book_answers_400_naming_the_type(api, trader):
    _message, errors = error(api.post("/api/v1/orders", _order(type="market", price=None), format="json"), 400)

    assert set(errors) == {"type"}
    assert Order.objects.count() == 0
    assert _held(trader, "usdt") == 0


def test_a_market_buy_against_a_published_book_holds_its_budget(api, trader, market, redis_client):
    publish_reference(redis_client, market, Decimal("100"))

    data = ok(api.post("/api/v1/orders", {**_order(type="market"), "price": None}, format="json"), 201)

    assert (data["type"], data["ioc"], data["time_in_force"], data["price"]) == ("market", 1, "ioc", None)
    assert _held(trader, "usdt") == Decimal("52.5")  # 0.5 x 100 x 1.05


def test_a_market_buy_while_redis_is_unreachable_answers_503(api, trader, settings):
    settings.MATCHING_REDIS_URL = UNREACHABLE_REDIS

    message, errors = error(api.post("/api/v1/orders", _order(type="market", price=None), format="json"), 503)

    assert "unavailable" in message and errors == {}
    assert Order.objects.count() == 0


def test_a_limit_order_while_redis_is_unreachable_is_accepted_for_the_sweeper(api, trader, settings):
    settings.MATCHING_REDIS_URL = UNREACHABLE_REDIS

    ok(api.post("/api/v1/orders", _order(), format="json"), 201)

    assert Order.objects.get().status == "new"  # order_sweep_unqueued pushes it once Redis is back


@pytest.mark.django_db(transaction=True)
def test_a_database_error_during_place_answers_503(api, trader):
    # A real transient DB error: another connection locks the balance row and the hold gives up
    # after a 1 s lock wait (MariaDB error 1205, an OperationalError like a lost connection).
    blocker = connection.get_new_connection(connection.get_connection_params())
    try:
        with blocker.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("SELECT id FROM balances WHERE user_id = %s FOR UPDATE", [trader.pk])
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")

        message, _ = error(api.post("/api/v1/orders", _order(), format="json"), 503)

        assert message == "the database is unavailable; try again shortly"
    finally:
        blocker.rollback()
        blocker.close()
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION innodb_lock_wait_timeout = DEFAULT")
    assert Order.objects.count() == 0


def test_placing_needs_an_authenticated_user(market):
    response = APIClient().post("/api/v1/orders", _order(), format="json")

    message, errors = error(response, 401)
    assert response["WWW-Authenticate"]
    assert (message, errors) == ("Authentication credentials were not provided.", {})
    assert Order.objects.count() == 0


# -- stop orders -------------------------------------------------------------------------------------


def test_a_stop_limit_order_answers_with_its_trigger_and_holds_like_a_limit(api, trader):
    fields = {"trade_type": "sell", "type": "stop_limit", "price": "90", "base_price": "95", "stop_condition": "le"}

    data = ok(api.post("/api/v1/orders", _order(**fields), format="json"), 201)

    assert {k: data[k] for k in ("type", "trade_type", "price", "base_price", "stop_condition", "ioc", "status")} == {
        "type": "stop_limit",
        "trade_type": "sell",
        "price": "90",
        "base_price": "95",
        "stop_condition": "le",
        "ioc": 0,
        "status": "new",
    }
    assert _held(trader, "btc") == Decimal("0.5")


def test_a_stop_market_buy_holds_its_budget_priced_at_its_base_price(api, trader):
    fields = {"type": "stop_market", "price": None, "base_price": "200", "stop_condition": "ge"}

    data = ok(api.post("/api/v1/orders", _order(**fields), format="json"), 201)

    assert (data["type"], data["price"], data["base_price"], data["stop_condition"], data["ioc"]) == (
        "stop_market",
        None,
        "200",
        "ge",
        1,
    )
    assert _held(trader, "usdt") == Decimal("105")  # 0.5 x 200 x 1.05


@pytest.mark.django_db(transaction=True)
def test_a_waiting_stop_is_listed_as_stopping_and_cancel_releases_its_funds(api, trader, engine):
    fields = {"trade_type": "sell", "type": "stop_limit", "price": "90", "base_price": "95", "stop_condition": "le"}
    order_id = ok(api.post("/api/v1/orders", _order(**fields), format="json"), 201)["id"]
    _drain(engine)

    assert ok(api.get(f"/api/v1/orders/detail/{order_id}"))["status"] == "stopping"
    pending = ok(api.get("/api/v1/orders/pending"))
    assert [(o["id"], o["status"]) for o in pending["data"]] == [(order_id, "stopping")]
    stopping = ok(api.get("/api/v1/orders/usdt/stopping"))
    assert [o["id"] for o in stopping["data"]] == [order_id]
    assert _held(trader, "btc") == Decimal("0.5")

    ok(api.put(f"/api/v1/orders/{order_id}/cancel"), message=CANCEL_MESSAGE)
    _drain(engine)

    assert ok(api.get(f"/api/v1/orders/detail/{order_id}"))["status"] == "canceled"
    assert _held(trader, "btc") == 0


@pytest.mark.django_db(transaction=True)
def test_a_stop_triggers_when_a_trade_reaches_its_base_price(api, trader, engine):
    other = UserFactory()
    balance_deposit(user=other, asset="btc", amount=Decimal("1"))
    seller = APIClient()
    seller.force_authenticate(other)
    stop = {"trade_type": "buy", "type": "stop_limit", "price": "110", "base_price": "105", "stop_condition": "ge"}
    stop_id = ok(api.post("/api/v1/orders", _order(**stop), format="json"), 201)["id"]
    ok(seller.post("/api/v1/orders", _order(trade_type="sell", quantity="0.6", price="105"), format="json"), 201)
    _drain(engine)
    assert ok(api.get(f"/api/v1/orders/detail/{stop_id}"))["status"] == "stopping"

    ok(api.post("/api/v1/orders", _order(quantity="0.1", price="105"), format="json"), 201)  # trades at 105
    _drain(engine)

    detail = ok(api.get(f"/api/v1/orders/detail/{stop_id}"))
    assert (detail["status"], detail["executed_quantity"], detail["executed_price"]) == ("executed", "0.5", "105")


# -- client_order_id ---------------------------------------------------------------------------------


def test_a_retried_client_order_id_returns_the_existing_order_with_200_and_says_so(api, trader, redis_client):
    first = ok(api.post("/api/v1/orders", _order(client_order_id="bot-7:1"), format="json"), 201)

    retry = api.post("/api/v1/orders", _order(client_order_id="bot-7:1"), format="json")

    message = f"an order with this client_order_id already exists (order {first['id']}); nothing was placed"
    assert ok(retry, 200, message) == first
    assert first["client_order_id"] == "bot-7:1"
    assert Order.objects.count() == 1
    assert _held(trader, "usdt") == Decimal("50")  # held once
    assert redis_client.xlen("orders:btc_usdt") == 1


def test_a_retry_after_its_market_closed_still_returns_the_order_it_placed(api, trader, market, redis_client):
    # A bot that timed out retries; meanwhile an operator closed the market. The order exists: the
    # retry learns so (200), where a new order would be refused.
    first = ok(api.post("/api/v1/orders", _order(client_order_id="bot-7:2"), format="json"), 201)
    market.enabled = False
    market.save()  # through Django: the process's market cache hears of it at once

    retry = api.post("/api/v1/orders", _order(client_order_id="bot-7:2"), format="json")
    message = f"an order with this client_order_id already exists (order {first['id']}); nothing was placed"
    assert ok(retry, 200, message) == first
    message, errors = error(api.post("/api/v1/orders", _order(client_order_id="bot-7:3"), format="json"), 400)
    assert message == "market btc_usdt is not open for trading"
    assert errors == {"currency": [message], "coin": [message]}
    assert Order.objects.count() == 1


def test_a_client_order_id_names_an_order_of_its_user_only(api, trader, market):
    other = UserFactory()
    balance_deposit(user=other, asset="usdt", amount=Decimal("1000"))
    client = APIClient()
    client.force_authenticate(other)
    mine = ok(api.post("/api/v1/orders", _order(client_order_id="same"), format="json"), 201)

    theirs = ok(client.post("/api/v1/orders", _order(client_order_id="same"), format="json"), 201)

    assert theirs["id"] != mine["id"]
    assert ok(client.get("/api/v1/orders/detail", {"client_order_id": "same"}))["id"] == theirs["id"]
    assert ok(api.get("/api/v1/orders/detail", {"client_order_id": "same"}))["id"] == mine["id"]


def test_an_order_reads_and_cancels_by_its_client_order_id(api, redis_client):
    placed = ok(api.post("/api/v1/orders", _order(client_order_id="a b/c?d#e%f"), format="json"), 201)

    assert ok(api.get("/api/v1/orders/detail", {"client_order_id": "a b/c?d#e%f"})) == placed
    cancel = api.put("/api/v1/orders/cancel", {"client_order_id": "a b/c?d#e%f"}, format="json")

    assert ok(cancel, message=CANCEL_MESSAGE) == {"id": placed["id"], "status": "cancel_requested"}
    assert redis_client.xlen("orders:btc_usdt") == 2  # the place, then the cancel


def test_an_unknown_client_order_id_is_a_404(api, market):
    _message, errors = error(api.get("/api/v1/orders/detail", {"client_order_id": "never"}), 404)
    assert list(errors) == ["client_order_id"]

    _message, errors = error(api.put("/api/v1/orders/cancel", {"client_order_id": "never"}, format="json"), 404)
    assert list(errors) == ["client_order_id"]


def test_reading_by_client_order_id_needs_one(api, market):
    assert error(api.get("/api/v1/orders/detail"), 400)[1] == {"client_order_id": ["This field is required."]}
    assert set(error(api.put("/api/v1/orders/cancel", {}, format="json"), 400)[1]) == {"client_order_id"}


# -- batch -------------------------------------------------------------------------------------------


def _batch(*orders, **fields):
    return {"currency": "usdt", "coin": "btc", "orders": list(orders), **fields}


def test_a_batch_places_every_order_and_answers_201_with_the_list(api, trader):
    orders = [
        {"trade_type": "buy", "type": "limit", "quantity": "0.5", "price": "100"},
        {"trade_type": "sell", "type": "limit", "quantity": "0.2", "price": "120", "ioc": 1},
        {
            "trade_type": "sell",
            "type": "stop_limit",
            "quantity": "0.2",
            "price": "90",
            "base_price": "95",
            "stop_condition": "le",
        },
    ]

    data = ok(api.post("/api/v1/orders/batch", _batch(*orders), format="json"), 201)

    assert all(set(order) == ORDER_KEYS for order in data)
    assert [
        (o["trade_type"], o["type"], o["quantity"], o["ioc"], o["time_in_force"], o["base_price"]) for o in data
    ] == [
        ("buy", "limit", "0.5", 0, "gtc", None),
        ("sell", "limit", "0.2", 1, "ioc", None),
        ("sell", "stop_limit", "0.2", 0, "gtc", "95"),
    ]
    assert (_held(trader, "usdt"), _held(trader, "btc")) == (Decimal("50"), Decimal("0.4"))


def test_a_batch_retried_whole_returns_its_orders_with_200(api, trader):
    orders = [
        {"trade_type": "buy", "type": "limit", "quantity": "0.5", "price": "100", "client_order_id": "b1"},
        {"trade_type": "buy", "type": "limit", "quantity": "0.5", "price": "99", "client_order_id": "b2"},
    ]
    first = ok(api.post("/api/v1/orders/batch", _batch(*orders), format="json"), 201)

    again = api.post("/api/v1/orders/batch", _batch(*orders), format="json")

    message = "every order's client_order_id names an existing order: they are returned, nothing was placed"
    assert ok(again, 200, message) == first
    assert Order.objects.count() == 2
    assert _held(trader, "usdt") == Decimal("99.5")


def test_a_batch_retried_in_part_is_a_409_naming_the_orders_that_exist(api, trader):
    existing = ok(api.post("/api/v1/orders", _order(client_order_id="c1"), format="json"), 201)
    orders = [
        {"trade_type": "buy", "type": "limit", "quantity": "0.5", "price": "99"},
        {"trade_type": "buy", "type": "limit", "quantity": "0.5", "price": "100", "client_order_id": "c1"},
    ]

    _message, errors = error(api.post("/api/v1/orders/batch", _batch(*orders), format="json"), 409)

    assert errors == {"orders[1].client_order_id": [f"names the existing order {existing['id']}"]}
    assert Order.objects.count() == 1


def test_a_batch_naming_one_client_order_id_twice_is_a_400_naming_the_second(api, trader):
    orders = [
        {"trade_type": "buy", "type": "limit", "quantity": "0.5", "price": "99", "client_order_id": "d"},
        {"trade_type": "buy", "type": "limit", "quantity": "0.5", "price": "100", "client_order_id": "d"},
    ]

    message, errors = error(api.post("/api/v1/orders/batch", _batch(*orders), format="json"), 400)

    assert list(errors) == ["orders[1].client_order_id"]
    assert message.startswith("orders[1]: ")
    assert Order.objects.count() == 0


def test_a_batch_with_one_order_off_the_grid_names_it_and_writes_nothing(api, trader):
    orders = [
        {"trade_type": "buy", "type": "limit", "quantity": "0.5", "price": "100"},
        {"trade_type": "buy", "type": "limit", "quantity": "0.5", "price": "100.001"},
    ]

    message, errors = error(api.post("/api/v1/orders/batch", _batch(*orders), format="json"), 400)

    assert list(errors) == ["orders[1].price"]
    assert message.startswith("orders[1]: price must be a multiple of the tick size")
    assert Order.objects.count() == 0
    assert _held(trader, "usdt") == 0


def test_a_batch_with_malformed_orders_names_each_field_by_its_position(api):
    orders = [
        {"trade_type": "buy", "type": "limit", "quantity": "1", "price": "100"},
        {"trade_type": "buy", "type": "limit", "quantity": "x", "price": "100"},
        {"trade_type": "buy", "type": "limit", "quantity": "1", "price": "100", "ioc": "yes"},
        {"trade_type": "hold", "type": "limit", "quantity": "1", "price": "1_00"},
    ]

    message, errors = error(api.post("/api/v1/orders/batch", _batch(*orders), format="json"), 400)

    assert set(errors) == {"orders[1].quantity", "orders[2].ioc", "orders[3].trade_type", "orders[3].price"}
    assert message.startswith("invalid input: orders[1].quantity")
    assert Order.objects.count() == 0


def test_a_batch_of_an_unknown_market_names_currency_and_coin(api):
    order = {"trade_type": "buy", "type": "limit", "quantity": "1", "price": "100"}

    _message, errors = error(api.post("/api/v1/orders/batch", _batch(order, coin="eth"), format="json"), 400)

    assert set(errors) == {"currency", "coin"}
    assert Order.objects.count() == 0


@pytest.mark.parametrize("count", [0, 51])
def test_a_batch_takes_one_to_fifty_orders(api, count):
    orders = [{"trade_type": "buy", "type": "limit", "quantity": "0.1", "price": "100"}] * count

    _message, errors = error(api.post("/api/v1/orders/batch", _batch(*orders), format="json"), 400)

    assert list(errors) == ["orders"]
    assert Order.objects.count() == 0


# -- cancel ------------------------------------------------------------------------------------------

CANCEL_MESSAGE = "cancel requested: the order shows canceled once the matcher has applied it"


@pytest.mark.django_db(transaction=True)
def test_a_cancel_answers_200_and_the_matcher_then_cancels_the_order(api, trader, engine):
    order_id = ok(api.post("/api/v1/orders", _order(), format="json"), 201)["id"]
    _drain(engine)
    assert ok(api.get(f"/api/v1/orders/detail/{order_id}"))["status"] == "pending"

    response = api.put(f"/api/v1/orders/{order_id}/cancel")
    _drain(engine)

    assert ok(response, message=CANCEL_MESSAGE) == {"id": order_id, "status": "cancel_requested"}
    assert ok(api.get(f"/api/v1/orders/detail/{order_id}"))["status"] == "canceled"
    assert Order.objects.get(id=order_id).status == "canceled"
    assert _held(trader, "usdt") == 0


@pytest.mark.django_db(transaction=True)
def test_a_cancel_of_an_order_still_waiting_for_the_sweeper_cancels_it(api, trader, engine, settings):
    reachable = settings.MATCHING_REDIS_URL
    settings.MATCHING_REDIS_URL = UNREACHABLE_REDIS
    order_id = ok(api.post("/api/v1/orders", _order(), format="json"), 201)["id"]  # accepted, not in the stream
    settings.MATCHING_REDIS_URL = reachable

    ok(api.put(f"/api/v1/orders/{order_id}/cancel"), message=CANCEL_MESSAGE)
    _drain(engine)
    order_sweep_unqueued(older_than_s=-60)
    _drain(engine)

    assert Order.objects.get(id=order_id).status == "canceled"
    assert _held(trader, "usdt") == 0


def test_canceling_a_finished_order_answers_409(api, trader, redis_client):
    order = OrderFactory(user=trader, status="executed", executed_quantity=Decimal("1"))

    message, _errors = error(api.put(f"/api/v1/orders/{order.id}/cancel"), 409)

    assert "executed" in message
    assert redis_client.xlen("orders:btc_usdt") == 0


def test_another_users_order_is_not_found(api, market, redis_client):
    order = OrderFactory(user=UserFactory())

    assert error(api.put(f"/api/v1/orders/{order.id}/cancel"), 404)[1] == {"order_id": [f"order {order.id} not found"]}
    assert error(api.get(f"/api/v1/orders/detail/{order.id}"), 404)[1] == {"order_id": [f"order {order.id} not found"]}
    assert redis_client.xlen("orders:btc_usdt") == 0


def test_an_unknown_order_is_not_found(api):
    message, errors = error(api.get("/api/v1/orders/detail/123456789"), 404)

    assert (message, errors) == ("order 123456789 not found", {"order_id": ["order 123456789 not found"]})


def test_the_old_delete_and_unversioned_routes_are_gone(api, trader):
    order = OrderFactory(user=trader)

    assert error(api.delete(f"/api/v1/orders/{order.id}/cancel"), 405)[0] == 'Method "DELETE" not allowed.'
    assert error(api.get("/api/orders"), 404) == ("not found", {})
    assert error(api.get("/api/balances"), 404) == ("not found", {})


@pytest.mark.django_db(transaction=True)
def test_cancel_all_asks_the_matcher_to_cancel_every_open_order_of_the_user(api, trader, engine):
    eth = MarketFactory(coin="eth", currency="usdt")
    ids = [ok(api.post("/api/v1/orders", _order(price=price), format="json"), 201)["id"] for price in ("99", "98")]
    stop = {"trade_type": "sell", "type": "stop_limit", "price": "90", "base_price": "95", "stop_condition": "le"}
    ids.append(ok(api.post("/api/v1/orders", _order(**stop), format="json"), 201)["id"])
    other_market = OrderFactory(user=trader, coin=eth.coin, status="pending")
    OrderFactory(user=trader, status="executed", executed_quantity=Decimal("1"))
    OrderFactory(user=UserFactory(), status="pending")  # another user's
    _drain(engine)

    data = ok(
        api.put("/api/v1/orders/cancel-all", {"currency": "usdt", "coin": "btc"}, format="json"),
        message="cancel requested for 3 orders: each shows canceled once the matcher has applied it",
    )
    _drain(engine)

    assert set(data) == {"count", "ids"}
    assert data["count"] == 3 and sorted(data["ids"]) == sorted(ids)
    assert set(Order.objects.filter(id__in=ids).values_list("status", flat=True)) == {"canceled"}
    assert Order.objects.get(id=other_market.id).status == "pending"
    assert (_held(trader, "usdt"), _held(trader, "btc")) == (0, 0)


def test_cancel_all_without_a_market_covers_every_market(api, trader, redis_client):
    MarketFactory(coin="eth", currency="usdt")
    orders = [OrderFactory(user=trader, status="pending"), OrderFactory(user=trader, coin="eth", status="pending")]

    data = ok(
        api.put("/api/v1/orders/cancel-all", {}, format="json"),
        message="cancel requested for 2 orders: each shows canceled once the matcher has applied it",
    )

    assert data["count"] == 2 and sorted(data["ids"]) == sorted(order.id for order in orders)
    assert (redis_client.xlen("orders:btc_usdt"), redis_client.xlen("orders:eth_usdt")) == (1, 1)


def test_cancel_by_type_cancels_only_that_type(api, trader, redis_client):
    limit = OrderFactory(user=trader, status="pending")
    stop = OrderFactory(
        user=trader,
        type="stop_limit",
        trade_type="sell",
        status="stopping",
        base_price=Decimal("95"),
        stop_condition="le",
    )

    data = ok(
        api.put("/api/v1/orders/cancel-by-type", {"type": "stop_limit"}, format="json"),
        message="cancel requested for 1 orders: each shows canceled once the matcher has applied it",
    )

    assert data == {"count": 1, "ids": [stop.id]}
    assert limit.id not in data["ids"]


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("/api/v1/orders/cancel-by-type", {}, {"type"}),
        ("/api/v1/orders/cancel-by-type", {"type": "stop"}, {"type"}),
        ("/api/v1/orders/cancel-all", {"currency": "USDT"}, {"currency"}),
        ("/api/v1/orders/cancel-all", {"currency": "eur"}, {"currency"}),
        ("/api/v1/orders/cancel-all", {"coin": "doge"}, {"coin"}),
        ("/api/v1/orders/cancel-all", {"currency": "usdt", "coin": "eth"}, {"currency", "coin"}),
    ],
)
def test_cancel_all_and_by_type_refuse_bad_input_naming_it(api, trader, redis_client, path, body, named):
    OrderFactory(user=trader, status="pending")

    _message, errors = error(api.put(path, body, format="json"), 400)

    assert set(errors) == named
    assert redis_client.xlen("orders:btc_usdt") == 0


# -- reads: one order, pending, history ----------------------------------------------------------------


def test_an_order_reads_back_as_it_was_placed(api):
    placed = ok(api.post("/api/v1/orders", _order(client_order_id="r1"), format="json"), 201)

    assert ok(api.get(f"/api/v1/orders/detail/{placed['id']}")) == placed


def test_pending_lists_the_users_open_orders_newest_first_in_laravels_page(api, trader):
    MarketFactory(coin="eth", currency="usdt")
    new = OrderFactory(user=trader, status="new")
    pending = OrderFactory(user=trader, status="pending", trade_type="sell")
    partial = OrderFactory(user=trader, status="partially_filled", executed_quantity=Decimal("0.1"))
    stopping = OrderFactory(
        user=trader, status="stopping", type="stop_limit", base_price=Decimal("95"), stop_condition="le"
    )
    eth = OrderFactory(user=trader, status="pending", coin="eth")
    OrderFactory(user=trader, status="executed", executed_quantity=Decimal("1"))
    OrderFactory(user=trader, status="canceled")
    OrderFactory(status="pending")  # another user's

    page = ok(api.get("/api/v1/orders/pending"))

    assert set(page) == PAGE_KEYS
    assert [o["id"] for o in page["data"]] == [eth.id, stopping.id, partial.id, pending.id, new.id]
    assert all(set(order) == ORDER_KEYS for order in page["data"])
    assert {k: v for k, v in page.items() if k != "data"} == {
        "current_page": 1,
        "first_page_url": "http://testserver/api/v1/orders/pending?page=1",
        "from": 1,
        "last_page": 1,
        "last_page_url": "http://testserver/api/v1/orders/pending?page=1",
        "next_page_url": None,
        "path": "http://testserver/api/v1/orders/pending",
        "per_page": 20,
        "prev_page_url": None,
        "to": 5,
        "total": 5,
    }
    btc_sells = ok(api.get("/api/v1/orders/pending", {"currency": "usdt", "coin": "btc", "trade_type": "sell"}))
    assert [o["id"] for o in btc_sells["data"]] == [pending.id]


def test_pages_split_a_list_and_say_where_each_is(api, trader):
    orders = [OrderFactory(user=trader, status="pending") for _ in range(5)]
    newest_first = [order.id for order in reversed(orders)]

    second = ok(api.get("/api/v1/orders/pending", {"coin": "btc", "limit": 2, "page": 2}))
    last = ok(api.get("/api/v1/orders/pending", {"coin": "btc", "limit": 2, "page": 3}))
    beyond = ok(api.get("/api/v1/orders/pending", {"coin": "btc", "limit": 2, "page": 4}))

    base = "http://testserver/api/v1/orders/pending?coin=btc&limit=2&page="
    assert [o["id"] for o in second["data"]] == newest_first[2:4]
    assert {k: v for k, v in second.items() if k != "data"} == {
        "current_page": 2,
        "first_page_url": base + "1",
        "from": 3,
        "last_page": 3,
        "last_page_url": base + "3",
        "next_page_url": base + "3",
        "path": "http://testserver/api/v1/orders/pending",
        "per_page": 2,
        "prev_page_url": base + "1",
        "to": 4,
        "total": 5,
    }
    assert [o["id"] for o in last["data"]] == newest_first[4:]
    assert (last["from"], last["to"], last["next_page_url"]) == (5, 5, None)
    assert (beyond["data"], beyond["from"], beyond["to"], beyond["total"]) == ([], None, None, 5)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"page": 0}, "page"),
        ({"page": "x"}, "page"),
        ({"page": "1e2"}, "page"),
        ({"page": 1_000_001}, "page"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": " 5"}, "limit"),
        ({"trade_type": "hold"}, "trade_type"),
        ({"currency": "eur"}, "currency"),
        ({"coin": "Btc"}, "coin"),
    ],
)
def test_pending_refuses_bad_paging_and_filters_naming_them(api, query, field):
    assert set(error(api.get("/api/v1/orders/pending", query), 400)[1]) == {field}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("pending", ["pending"]),
        ("executed", ["executed"]),
        ("canceled", ["canceled"]),
        ("stopping", ["stopping"]),
        ("open", ["stopping", "partially_filled", "pending", "new"]),
        ("all", ["canceled", "executed", "stopping", "partially_filled", "pending", "new"]),
    ],
)
def test_history_lists_orders_by_status_newest_first(api, trader, status, expected):
    for name in ("new", "pending", "partially_filled", "stopping", "executed", "canceled"):
        OrderFactory(user=trader, status=name)
    OrderFactory(status="pending")  # another user's

    page = ok(api.get(f"/api/v1/orders/usdt/{status}"))

    assert [o["status"] for o in page["data"]] == expected
    assert page["total"] == len(expected)
    assert page["path"] == f"http://testserver/api/v1/orders/usdt/{status}"


def test_history_filters_by_coin_type_side_and_dates(api, trader):
    MarketFactory(coin="eth", currency="usdt")
    early = OrderFactory(user=trader, status="executed")
    late = OrderFactory(user=trader, status="executed", trade_type="sell")
    Order.objects.filter(id=early.id).update(created_at=datetime(2026, 1, 1, tzinfo=UTC))
    Order.objects.filter(id=late.id).update(created_at=datetime(2026, 1, 2, tzinfo=UTC))
    OrderFactory(user=trader, status="executed", coin="eth")
    start = 1767225600000  # 2026-01-01T00:00:00Z

    def ids(**query):
        return [o["id"] for o in ok(api.get("/api/v1/orders/usdt/executed", query))["data"]]

    assert ids(coin="btc") == [late.id, early.id]
    assert ids(coin="btc", trade_type="sell") == [late.id]
    assert ids(coin="btc", type="market") == []
    assert ids(coin="btc", start_date=start, end_date=start) == [early.id]  # both ends inclusive
    assert ids(coin="btc", start_date=start + 1) == [late.id]
    assert ids(coin="btc", end_date=start + 86_400_000 - 1) == [early.id]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"start_date": "yesterday"}, "start_date"),
        ({"start_date": "-1"}, "start_date"),
        ({"end_date": "1.5"}, "end_date"),
        ({"end_date": "9" * 16}, "end_date"),
        ({"start_date": 2000, "end_date": 1000}, "end_date"),
        ({"type": "stop"}, "type"),
        ({"coin": "eth"}, "coin"),
        ({"limit": "all"}, "limit"),
    ],
)
def test_history_refuses_bad_dates_and_filters_naming_them(api, query, field):
    assert set(error(api.get("/api/v1/orders/usdt/all", query), 400)[1]) >= {field}


def test_history_of_an_unknown_currency_or_status_is_a_404_naming_it(api, market):
    message, errors = error(api.get("/api/v1/orders/eur/all"), 404)
    assert (message, errors) == ("no market is quoted in 'eur'", {"currency": ["no market is quoted in 'eur'"]})

    message, errors = error(api.get("/api/v1/orders/usdt/lost"), 404)
    assert list(errors) == ["status"]
    assert message.startswith("unknown status 'lost': one of new, stopping, pending")


# -- reads: trades, book, balances, markets --------------------------------------------------------------


@pytest.fixture
def seller(market):
    other = UserFactory()
    balance_deposit(user=other, asset="btc", amount=Decimal("1"))
    client = APIClient()
    client.force_authenticate(other)
    return client


@pytest.mark.django_db(transaction=True)
def test_the_callers_trades_are_listed_from_the_callers_side(api, trader, seller, engine):
    sell = ok(
        seller.post("/api/v1/orders", _order(trade_type="sell", quantity="0.4", price="100.00"), format="json"), 201
    )
    buy = ok(api.post("/api/v1/orders", _order(trade_type="buy", quantity="0.4", price="100.50"), format="json"), 201)
    _drain(engine)

    page = ok(api.get("/api/v1/orders/transactions"))
    theirs = ok(seller.get("/api/v1/orders/transactions", {"currency": "usdt", "coin": "btc"}))

    assert set(page) == PAGE_KEYS and page["total"] == 1
    [trade] = page["data"]
    assert trade == {
        "id": trade["id"],
        "order_id": buy["id"],
        "buy_order_id": buy["id"],
        "sell_order_id": sell["id"],
        "trade_type": "buy",
        "currency": "usdt",
        "coin": "btc",
        "price": "100",
        "quantity": "0.4",
        "amount": "40",
        "fee": "0.0008",  # taker 0.2 % of 0.4 btc
        "fee_asset": "btc",
        "is_maker": False,
        "created_at": trade["created_at"],
    }
    assert isinstance(trade["id"], int) and _is_ms(trade["created_at"])
    [their] = theirs["data"]
    assert (
        their["id"],
        their["order_id"],
        their["trade_type"],
        their["fee"],
        their["fee_asset"],
        their["is_maker"],
    ) == (
        trade["id"],
        sell["id"],
        "sell",
        "0.04",  # maker 0.1 % of 40 usdt
        "usdt",
        True,
    )
    assert ok(api.get("/api/v1/orders/transactions", {"start_date": trade["created_at"] + 1}))["total"] == 0
    assert ok(api.get("/api/v1/orders/transactions", {"end_date": trade["created_at"]}))["total"] == 1


@pytest.mark.django_db(transaction=True)
def test_recent_trades_of_a_market_are_public_newest_first(api, seller, engine):
    ok(seller.post("/api/v1/orders", _order(trade_type="sell", quantity="0.4", price="100.00"), format="json"), 201)
    ok(api.post("/api/v1/orders", _order(quantity="0.1", price="100.50"), format="json"), 201)
    ok(api.post("/api/v1/orders", _order(quantity="0.2", price="100.00"), format="json"), 201)
    _drain(engine)

    data = ok(APIClient().get("/api/v1/orders/transactions/recent", {"currency": "usdt", "coin": "btc"}))
    one = ok(APIClient().get("/api/v1/orders/transactions/recent", {"currency": "usdt", "coin": "btc", "count": 1}))

    assert [set(trade) for trade in data] == [
        {"id", "currency", "coin", "price", "quantity", "amount", "taker_side", "created_at"}
    ] * 2
    assert [(t["price"], t["quantity"], t["amount"], t["taker_side"]) for t in data] == [
        ("100", "0.2", "20", "buy"),
        ("100", "0.1", "10", "buy"),
    ]
    assert one == data[:1]


def test_the_book_of_a_market_without_orders_is_empty(market):
    data = ok(APIClient().get("/api/v1/orders/order-book", {"currency": "usdt", "coin": "btc"}))

    assert set(data) == {"buy", "sell", "updatedAt", "tickerSize"}
    assert (data["buy"], data["sell"], data["tickerSize"]) == ([], [], "0.01")
    assert _is_ms(data["updatedAt"])


@pytest.mark.django_db(transaction=True)
def test_the_book_shows_the_resting_orders_once_the_engine_ran(api, engine):
    for side, quantity, price in [("sell", "0.5", "101.00"), ("sell", "0.3", "102.50"), ("buy", "1", "99.00")]:
        ok(api.post("/api/v1/orders", _order(trade_type=side, quantity=quantity, price=price), format="json"), 201)
    before_ms = time.time_ns() // 1_000_000
    _drain(engine)
    after_ms = time.time_ns() // 1_000_000
    time.sleep(0.002)

    data = ok(APIClient().get("/api/v1/orders/order-book", {"currency": "usdt", "coin": "btc"}))

    assert before_ms <= data["updatedAt"] <= after_ms, "when the matcher took the book, not when it was read"

    assert data["buy"] == [{"price": "99", "quantity": "1"}]
    assert data["sell"] == [{"price": "101", "quantity": "0.5"}, {"price": "102.5", "quantity": "0.3"}]


@pytest.mark.parametrize("path", ["/api/v1/orders/order-book", "/api/v1/orders/transactions/recent"])
@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"currency": "usdt", "coin": "eth"}, {"currency", "coin"}),
        ({"currency": "USDT", "coin": "btc"}, {"currency"}),
        ({"currency": "usdt", "coin": "b\u00e7c"}, {"coin"}),
        ({"currency": "usdt"}, {"coin"}),
        ({}, {"currency", "coin"}),
    ],
)
def test_market_data_of_an_unknown_market_is_a_400_naming_the_fields(market, path, query, named):
    assert set(error(APIClient().get(path, query), 400)[1]) == named


def test_recent_trades_refuse_a_bad_count(market):
    response = APIClient().get("/api/v1/orders/transactions/recent", {"currency": "usdt", "coin": "btc", "count": 0})

    assert set(error(response, 400)[1]) == {"count"}


def test_balances_show_total_held_and_available_by_asset(api):
    ok(api.post("/api/v1/orders", _order(quantity="2", price="150.25"), format="json"), 201)

    data = ok(api.get("/api/v1/balances"))

    assert data == {
        "btc": {"total": "10", "held": "0", "available": "10"},
        "usdt": {"total": "100000", "held": "300.5", "available": "99699.5"},
    }


def test_the_markets_list_shows_enabled_markets_with_their_rules(market):
    MarketFactory(coin="doge", currency="usdt", enabled=False)

    data = ok(APIClient().get("/api/v1/markets"))

    assert data == [
        {
            "code": "btc_usdt",
            "coin": "btc",
            "currency": "usdt",
            "tick_size": "0.01",
            "lot_size": "0.0001",
            "min_quantity": "0.001",
            "min_notional": "10",
            "maker_fee_rate": "0.001",
            "taker_fee_rate": "0.002",
        }
    ]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/orders/pending",
        "/api/v1/orders/usdt/all",
        "/api/v1/orders/detail/1",
        "/api/v1/orders/detail?client_order_id=x",
        "/api/v1/orders/transactions",
        "/api/v1/balances",
    ],
)
def test_private_reads_need_credentials(market, path):
    response = APIClient().get(path)

    assert error(response, 401) == ("Authentication credentials were not provided.", {})


def test_cancel_all_takes_a_put_without_a_body(api, trader, redis_client):
    order = OrderFactory(user=trader, status="pending")

    data = ok(
        api.put("/api/v1/orders/cancel-all"),
        message="cancel requested for 1 orders: each shows canceled once the matcher has applied it",
    )

    assert data == {"count": 1, "ids": [order.id]}
    assert redis_client.xlen("orders:btc_usdt") == 1
