from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.db import connection
from rest_framework.test import APIClient

from bench.feed import publish_reference
from orders.balances import balance_deposit
from orders.models import Balance, Order
from orders.outbox import order_sweep_unqueued
from tests.factories import MarketFactory, OrderFactory, UserFactory

pytestmark = pytest.mark.django_db

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connections are refused


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
    return {"market": "btc_usdt", "trade_type": "buy", "type": "limit", "quantity": "0.5", "price": "100.00", **fields}


def _held(user, asset: str) -> Decimal:
    return Balance.objects.get(user=user, asset=asset).held


# -- place -------------------------------------------------------------------------------------------


def test_placing_a_limit_order_answers_201_with_the_order(api, trader):
    response = api.post("/api/orders", _order(), format="json")

    assert response.status_code == 201, response.data
    body = response.data
    order = Order.objects.get()
    assert body["id"] == order.id
    assert {k: body[k] for k in ("market", "trade_type", "type", "time_in_force", "quantity", "price", "status")} == {
        "market": "btc_usdt",
        "trade_type": "buy",
        "type": "limit",
        "time_in_force": "gtc",
        "quantity": "0.5",
        "price": "100",
        "status": "new",
    }
    assert (body["executed_quantity"], body["average_price"], body["fee"]) == ("0", None, "0")
    assert set(body) >= {"executed_quote", "reject_reason", "created_at", "updated_at"}
    assert "held" not in body and "user" not in body
    assert _held(trader, "usdt") == Decimal("50")


def test_json_numbers_are_parsed_exactly(api, trader):
    response = api.post("/api/orders", _order(quantity=0.1, price=123.45), format="json")

    assert response.status_code == 201, response.data
    order = Order.objects.get()
    assert (order.quantity, order.price, order.held) == (Decimal("0.1"), Decimal("123.45"), Decimal("12.345"))


def test_a_number_with_more_digits_than_a_float_holds_is_taken_as_sent(api, trader):
    payload = b'{"market": "btc_usdt", "trade_type": "sell", "type": "limit", "quantity": 1.0001, "price": 12345678.12}'

    response = api.post("/api/orders", payload, content_type="application/json")

    assert response.status_code == 201, response.data
    assert Order.objects.get().price == Decimal("12345678.12")


def test_a_form_encoded_order_is_accepted(api):
    response = api.post("/api/orders", urlencode(_order()), content_type="application/x-www-form-urlencoded")

    assert response.status_code == 201, response.data


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        pytest.param({"price": None}, "price", id="limit without a price"),
        pytest.param({"price": "100.005"}, "price", id="price off the tick grid"),
        pytest.param({"price": "-1.00"}, "price", id="negative price"),
        pytest.param({"quantity": "0.00015"}, "quantity", id="quantity off the lot grid"),
        pytest.param({"quantity": "0.0005"}, "quantity", id="below the minimum quantity"),
        pytest.param({"quantity": "0.001", "price": "100"}, "quantity", id="below the minimum notional"),
        pytest.param({"quantity": "0"}, "quantity", id="zero quantity"),
        pytest.param({"quantity": "lots"}, "quantity", id="non-numeric quantity"),
        pytest.param({"quantity": 0.12345678901}, "quantity", id="float with 11 decimals"),
        pytest.param({"quantity": "1e400"}, "quantity", id="quantity too large"),
        pytest.param({"quantity": None}, "quantity", id="null quantity"),
        pytest.param({"market": "eth_usdt"}, "market", id="unknown market"),
        pytest.param({"market": "doge_usdt"}, "market", id="disabled market"),
        pytest.param({"trade_type": "hold"}, "trade_type", id="bad side"),
        pytest.param({"type": "stop"}, "type", id="bad type"),
        pytest.param({"time_in_force": "gtd"}, "time_in_force", id="bad time in force"),
        pytest.param({"type": "market", "trade_type": "sell", "price": "100"}, "price", id="market order with a price"),
        pytest.param({"quantity": "10", "price": "100000.00"}, "quantity", id="insufficient funds"),
    ],
)
def test_bad_input_answers_400_naming_the_field_and_writes_nothing(api, trader, market, fields, field, redis_client):
    MarketFactory(coin="doge", currency="usdt", enabled=False)

    response = api.post("/api/orders", {k: v for k, v in _order(**fields).items() if v is not None}, format="json")

    assert response.status_code == 400, response.data
    assert field in response.data["errors"], response.data
    assert response.data["message"]
    assert Order.objects.count() == 0
    assert (_held(trader, "usdt"), _held(trader, "btc")) == (0, 0)
    assert redis_client.xlen("orders:btc_usdt") == 0


def test_a_missing_field_is_named(api):
    response = api.post("/api/orders", {"market": "btc_usdt", "quantity": "1"}, format="json")

    assert response.status_code == 400
    assert set(response.data["errors"]) == {"trade_type", "type"}


def test_a_market_buy_without_any_published_book_answers_400_naming_the_type(api, trader):
    response = api.post("/api/orders", _order(type="market", price=None), format="json")

    assert response.status_code == 400
    assert "type" in response.data["errors"]
    assert Order.objects.count() == 0
    assert _held(trader, "usdt") == 0


def test_a_market_buy_against_a_published_book_holds_its_budget(api, trader, market, redis_client):
    publish_reference(redis_client, market, Decimal("100"))

    response = api.post("/api/orders", {**_order(type="market"), "price": None}, format="json")

    assert response.status_code == 201, response.data
    assert (response.data["type"], response.data["time_in_force"], response.data["price"]) == ("market", "ioc", None)
    assert _held(trader, "usdt") == Decimal("52.5")  # 0.5 x 100 x 1.05


def test_a_market_buy_while_redis_is_unreachable_answers_503(api, trader, settings):
    settings.MATCHING_REDIS_URL = UNREACHABLE_REDIS

    response = api.post("/api/orders", _order(type="market", price=None), format="json")

    assert response.status_code == 503
    assert "unavailable" in response.data["message"]
    assert Order.objects.count() == 0


def test_a_limit_order_while_redis_is_unreachable_is_accepted_for_the_sweeper(api, trader, settings):
    settings.MATCHING_REDIS_URL = UNREACHABLE_REDIS

    response = api.post("/api/orders", _order(), format="json")

    assert response.status_code == 201
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

        response = api.post("/api/orders", _order(), format="json")

        assert response.status_code == 503
        assert response.data["message"]
    finally:
        blocker.rollback()
        blocker.close()
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION innodb_lock_wait_timeout = DEFAULT")
    assert Order.objects.count() == 0


def test_placing_needs_an_authenticated_user(market):
    response = APIClient().post("/api/orders", _order(), format="json")

    assert response.status_code == 401
    assert response["WWW-Authenticate"]
    assert Order.objects.count() == 0


# -- batch -------------------------------------------------------------------------------------------


def test_a_batch_places_every_order_and_answers_201_with_the_list(api, trader):
    orders = [
        {"trade_type": "buy", "type": "limit", "quantity": "0.5", "price": "100"},
        {"trade_type": "sell", "type": "limit", "quantity": "0.2", "price": "120", "time_in_force": "ioc"},
    ]

    response = api.post("/api/orders/batch", {"market": "btc_usdt", "orders": orders}, format="json")

    assert response.status_code == 201, response.data
    assert [(o["trade_type"], o["quantity"], o["time_in_force"]) for o in response.data] == [
        ("buy", "0.5", "gtc"),
        ("sell", "0.2", "ioc"),
    ]
    assert (_held(trader, "usdt"), _held(trader, "btc")) == (Decimal("50"), Decimal("0.2"))


def test_a_batch_with_one_order_off_the_grid_names_it_and_writes_nothing(api, trader):
    orders = [
        {"trade_type": "buy", "type": "limit", "quantity": "0.5", "price": "100"},
        {"trade_type": "buy", "type": "limit", "quantity": "0.5", "price": "100.001"},
    ]

    response = api.post("/api/orders/batch", {"market": "btc_usdt", "orders": orders}, format="json")

    assert response.status_code == 400
    assert list(response.data["errors"]) == ["orders[1].price"]
    assert response.data["message"].startswith("orders[1]: price must be a multiple of the tick size")
    assert Order.objects.count() == 0
    assert _held(trader, "usdt") == 0


def test_a_batch_with_malformed_orders_names_each_field_by_its_position(api):
    orders = [
        {"trade_type": "buy", "type": "limit", "quantity": "1", "price": "100"},
        {"trade_type": "buy", "type": "limit", "quantity": "x", "price": "100"},
        {"trade_type": "buy", "type": "limit", "quantity": "1", "price": "100"},
        {"trade_type": "hold", "type": "limit", "quantity": "1", "price": "1_00"},
    ]

    response = api.post("/api/orders/batch", {"market": "btc_usdt", "orders": orders}, format="json")

    assert response.status_code == 400
    assert set(response.data["errors"]) == {"orders[1].quantity", "orders[3].trade_type", "orders[3].price"}
    assert response.data["message"].startswith("invalid input: orders[1].quantity")
    assert Order.objects.count() == 0


@pytest.mark.parametrize("count", [0, 51])
def test_a_batch_takes_one_to_fifty_orders(api, count):
    orders = [{"trade_type": "buy", "type": "limit", "quantity": "0.1", "price": "100"}] * count

    response = api.post("/api/orders/batch", {"market": "btc_usdt", "orders": orders}, format="json")

    assert response.status_code == 400
    assert "orders" in response.data["errors"]
    assert Order.objects.count() == 0


# -- cancel ------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_cancel_answers_202_and_the_matcher_then_cancels_the_order(api, trader, engine):
    order_id = api.post("/api/orders", _order(), format="json").data["id"]
    _drain(engine)
    assert api.get(f"/api/orders/{order_id}").data["status"] == "pending"

    response = api.delete(f"/api/orders/{order_id}")
    _drain(engine)

    assert response.status_code == 202
    assert response.data == {"id": order_id, "status": "cancel_requested"}
    assert api.get(f"/api/orders/{order_id}").data["status"] == "canceled"
    assert Order.objects.get(id=order_id).status == "canceled"
    assert _held(trader, "usdt") == 0


@pytest.mark.django_db(transaction=True)
def test_a_cancel_of_an_order_still_waiting_for_the_sweeper_cancels_it(api, trader, engine, settings):
    reachable = settings.MATCHING_REDIS_URL
    settings.MATCHING_REDIS_URL = UNREACHABLE_REDIS
    order_id = api.post("/api/orders", _order(), format="json").data["id"]  # accepted, not in the stream
    settings.MATCHING_REDIS_URL = reachable

    assert api.delete(f"/api/orders/{order_id}").status_code == 202
    _drain(engine)
    order_sweep_unqueued(older_than_s=-60)
    _drain(engine)

    assert Order.objects.get(id=order_id).status == "canceled"
    assert _held(trader, "usdt") == 0


def test_canceling_a_finished_order_answers_409(api, trader, redis_client):
    order = OrderFactory(user=trader, status="executed", executed_quantity=Decimal("1"))

    response = api.delete(f"/api/orders/{order.id}")

    assert response.status_code == 409
    assert "executed" in response.data["message"]
    assert redis_client.xlen("orders:btc_usdt") == 0


def test_another_users_order_is_not_found(api, market, redis_client):
    order = OrderFactory(user=UserFactory())

    assert api.delete(f"/api/orders/{order.id}").status_code == 404
    assert api.get(f"/api/orders/{order.id}").status_code == 404
    assert redis_client.xlen("orders:btc_usdt") == 0


def test_an_unknown_order_is_not_found(api):
    response = api.get("/api/orders/123456789")

    assert response.status_code == 404
    assert "order_id" in response.data["errors"]


# -- reads -------------------------------------------------------------------------------------------


def test_an_order_reads_back_as_it_was_placed(api):
    placed = api.post("/api/orders", _order(), format="json").data

    response = api.get(f"/api/orders/{placed['id']}")

    assert response.status_code == 200
    assert response.data == placed


def test_the_order_list_filters_by_market_and_status(api, trader):
    pending = OrderFactory(user=trader, status="pending")
    OrderFactory(user=trader, status="executed")
    OrderFactory(user=trader, coin="eth")
    OrderFactory(status="pending")  # another user's

    response = api.get("/api/orders", {"market": "btc_usdt", "status": "pending"})

    assert response.status_code == 200
    assert [o["id"] for o in response.data] == [pending.id]
    assert len(api.get("/api/orders").data) == 3


def test_the_order_list_refuses_an_unknown_status(api):
    response = api.get("/api/orders", {"status": "lost"})

    assert response.status_code == 400
    assert "status" in response.data["errors"]


def test_balances_show_total_held_and_available(api):
    api.post("/api/orders", _order(quantity="2", price="150.25"), format="json")

    response = api.get("/api/balances")

    assert response.status_code == 200
    assert response.data == [
        {"asset": "btc", "total": "10", "held": "0", "available": "10"},
        {"asset": "usdt", "total": "100000", "held": "300.5", "available": "99699.5"},
    ]


def test_the_markets_list_shows_enabled_markets_with_their_rules(market):
    MarketFactory(coin="doge", currency="usdt", enabled=False)

    response = APIClient().get("/api/markets")

    assert response.status_code == 200
    assert response.data == [
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


def test_the_book_of_a_market_without_orders_is_empty(market):
    response = APIClient().get("/api/markets/btc_usdt/book")

    assert response.status_code == 200
    assert response.data == {"market": "btc_usdt", "bids": [], "asks": []}


@pytest.mark.django_db(transaction=True)
def test_the_book_shows_the_resting_orders_once_the_engine_ran(api, engine):
    for side, quantity, price in [("sell", "0.5", "101.00"), ("sell", "0.3", "102.50"), ("buy", "1", "99.00")]:
        assert (
            api.post("/api/orders", _order(trade_type=side, quantity=quantity, price=price), format="json").status_code
            == 201
        )
    _drain(engine)

    response = APIClient().get("/api/markets/btc_usdt/book")

    assert response.status_code == 200
    assert response.data == {"market": "btc_usdt", "bids": [["99", "1"]], "asks": [["101", "0.5"], ["102.5", "0.3"]]}


@pytest.mark.django_db(transaction=True)
def test_the_trades_list_shows_a_trade_once_the_engine_matched_it(api, engine):
    other = UserFactory()
    balance_deposit(user=other, asset="btc", amount=Decimal("1"))
    seller = APIClient()
    seller.force_authenticate(other)
    seller.post("/api/orders", _order(trade_type="sell", quantity="0.4", price="100.00"), format="json")
    api.post("/api/orders", _order(trade_type="buy", quantity="0.4", price="100.50"), format="json")
    _drain(engine)

    response = APIClient().get("/api/markets/btc_usdt/trades")

    assert response.status_code == 200
    assert [(t["price"], t["quantity"], t["taker_side"]) for t in response.data] == [("100", "0.4", "buy")]
