from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from matching.core import plain
from orders.cache import cached_order
from orders.errors import ServiceUnavailable
from orders.selectors import (
    OrderNotFound,
    balance_list,
    book_get,
    market_list,
    markets_exist,
    order_get,
    order_page,
    trade_list,
    trade_page,
)
from orders.services import order_place
from spot import keys
from tests.factories import BalanceFactory, MarketFactory, OrderFactory, UserFactory

pytestmark = pytest.mark.django_db

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connections are refused


@pytest.fixture
def market(redis_client):
    return MarketFactory(coin="btc", currency="usdt")


@pytest.fixture
def trader(market):
    user = UserFactory()
    BalanceFactory(user=user, asset="usdt", total=Decimal("100000"))
    BalanceFactory(user=user, asset="btc", total=Decimal("10"))
    return user


def _place(user, market, **kwargs):
    fields = {"side": "buy", "order_type": "limit", "quantity": "0.5", "price": "100.00", **kwargs}
    return order_place(user=user, market=market, **fields)


# -- order_get ---------------------------------------------------------------------------------------


def test_a_cached_order_is_read_without_a_db_query(trader, market):
    order = _place(trader, market)

    with CaptureQueriesContext(connection) as queries:
        data = order_get(user=trader, order_id=order.id)

    assert len(queries) == 0
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
        "created_at": int(order.created_at.timestamp() * 1000),
        "updated_at": int(order.updated_at.timestamp() * 1000),
    }


def test_a_cache_miss_reads_the_db_and_refills_the_cache(trader, market, redis_client):
    order = OrderFactory(user=trader, quantity=Decimal("0.25"), price=Decimal("99.5"))
    assert cached_order(redis_client, order.id) is None

    with CaptureQueriesContext(connection) as miss:
        data = order_get(user=trader, order_id=order.id)
    with CaptureQueriesContext(connection) as hit:
        again = order_get(user=trader, order_id=order.id)

    assert len(miss) >= 1
    assert cached_order(redis_client, order.id)["user"] == str(trader.pk)
    assert redis_client.ttl(keys.order(order.id)) > 3500
    assert len(hit) == 0
    assert again == data
    assert (data["quantity"], data["price"], data["status"]) == ("0.25", "99.5", "pending")
    assert (data["currency"], data["coin"], data["user_id"]) == ("usdt", "btc", trader.pk)


def test_an_order_reads_the_same_from_the_cache_and_from_the_db(trader, market, redis_client):
    order = _place(trader, market, quantity="0.1230", price="101.50")
    from_cache = order_get(user=trader, order_id=order.id)
    redis_client.delete(keys.order(order.id))

    from_db = order_get(user=trader, order_id=order.id)

    assert from_db == from_cache


def test_a_hash_the_matcher_wrote_after_expiry_is_incomplete_and_read_from_the_db(trader, market, redis_client):
    order = OrderFactory(user=trader, status="pending")
    redis_client.hset(keys.order(order.id), mapping={"status": "pending", "executed_quantity": "0"})

    with CaptureQueriesContext(connection) as queries:
        data = order_get(user=trader, order_id=order.id)

    assert len(queries) >= 1
    assert (data["currency"], data["coin"]) == ("usdt", "btc")
    assert cached_order(redis_client, order.id) is not None


def test_a_refill_keeps_a_newer_status_the_matcher_wrote_meanwhile(trader, market, redis_client):
    # The DB read saw the order pending; the matcher then committed its execution and wrote the
    # mutable fields through. The refill must not put "pending" back.
    order = OrderFactory(user=trader, status="pending")
    redis_client.hset(keys.order(order.id), mapping={"status": "executed", "executed_quantity": "1"})

    order_get(user=trader, order_id=order.id)

    data = order_get(user=trader, order_id=order.id)
    assert (data["status"], data["executed_quantity"]) == ("executed", "1")


def test_another_users_order_is_not_found_whether_cached_or_not(trader, market, redis_client):
    order = _place(trader, market)
    stranger = UserFactory()

    with pytest.raises(OrderNotFound):
        order_get(user=stranger, order_id=order.id)
    redis_client.delete(keys.order(order.id))
    with pytest.raises(OrderNotFound) as error:
        order_get(user=stranger, order_id=order.id)

    assert error.value.status == 404


def test_an_unknown_order_is_not_found(trader, redis_client):
    with pytest.raises(OrderNotFound):
        order_get(user=trader, order_id=999_999_999)


def test_when_redis_is_unreachable_the_order_is_read_from_the_db(trader, market, settings, caplog):
    order = OrderFactory(user=trader, status="partially_filled", executed_quantity=Decimal("0.4"))
    settings.MATCHING_REDIS_URL = UNREACHABLE_REDIS

    data = order_get(user=trader, order_id=order.id)

    assert (data["id"], data["status"], data["executed_quantity"]) == (order.id, "partially_filled", "0.4")
    assert "order cache unavailable" in caplog.text


# -- lists -------------------------------------------------------------------------------------------


def test_order_page_shows_only_the_users_orders_newest_first(trader, market):
    first = OrderFactory(user=trader)
    second = OrderFactory(user=trader)
    OrderFactory()  # another user's

    page = order_page(user=trader)

    assert [o["id"] for o in page.items] == [second.id, first.id]
    assert (page.total, page.page, page.per_page) == (2, 1, 20)


def test_order_page_filters_by_market_status_type_and_side(trader, market):
    pending = OrderFactory(user=trader, status="pending")
    OrderFactory(user=trader, status="executed")
    OrderFactory(user=trader, coin="eth", status="pending")
    sell = OrderFactory(user=trader, status="pending", trade_type="sell", type="market", price=None)

    def ids(**filters):
        return [o["id"] for o in order_page(user=trader, **filters).items]

    assert ids(currency="usdt", coin="btc", statuses={"pending"}) == [sell.id, pending.id]
    assert ids(coin="btc", statuses={"pending"}, side="buy") == [pending.id]
    assert ids(order_type="market") == [sell.id]
    assert ids(coin="doge") == []


@pytest.mark.parametrize("filters", [{}, {"currency": "usdt", "coin": "btc", "statuses": {"pending", "new"}}])
def test_order_page_reads_through_the_user_market_index(trader, market, filters):
    OrderFactory(user=trader)
    with CaptureQueriesContext(connection) as queries:
        order_page(user=trader, **filters)

    assert len(queries) == 2  # the count and the page
    for query in queries:
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN {query['sql']}")
            plan = str(cursor.fetchall())
        assert "idx_orders_user_currency_coin" in plan, plan


def test_order_page_pages_and_counts(trader, market):
    for _ in range(5):
        OrderFactory(user=trader)

    pages = [order_page(user=trader, page=number, per_page=2) for number in (1, 2, 3, 4)]

    assert [len(page.items) for page in pages] == [2, 2, 1, 0]
    assert {page.total for page in pages} == {5}
    assert len({o["id"] for page in pages for o in page.items}) == 5


def test_trade_page_is_empty_for_a_user_without_trades(trader, market):
    page = trade_page(user=trader)

    assert (page.items, page.total) == ([], 0)


def test_markets_exist_matches_a_currency_a_coin_or_a_pair(market):
    MarketFactory(coin="eth", currency="usdt", enabled=False)

    assert markets_exist(currency="usdt") and markets_exist(coin="eth") and markets_exist(currency="usdt", coin="btc")
    assert not markets_exist(currency="eur") and not markets_exist(currency="usdt", coin="doge")


def test_balance_list_shows_the_users_balances_by_asset(trader):
    BalanceFactory(asset="eth")  # another user's

    balances = list(balance_list(user=trader))

    assert [(b.asset, b.total, b.available) for b in balances] == [
        ("btc", Decimal("10"), Decimal("10")),
        ("usdt", Decimal("100000"), Decimal("100000")),
    ]


def test_market_list_shows_only_enabled_markets(market):
    MarketFactory(coin="eth", currency="usdt", enabled=False)

    assert [m.code for m in market_list()] == ["btc_usdt"]


def test_trade_list_is_empty_for_a_market_without_trades(market):
    assert list(trade_list(market_code="btc_usdt")) == []


# -- book --------------------------------------------------------------------------------------------


def test_a_book_never_published_has_empty_sides(market):
    book = book_get(market=market)

    assert (book["buy"], book["sell"], book["tickerSize"]) == ([], [], "0.01")
    assert isinstance(book["updatedAt"], int)


def test_the_book_is_read_as_the_matcher_published_it_with_plain_amounts(market, redis_client):
    published = {
        "market": "btc_usdt",
        "bids": [["99.0000000000", "1.0000000000"]],
        "asks": [["101.0000000000", "0.5000000000"], ["102.5000000000", "0.3000000000"]],
    }
    redis_client.set("book:btc_usdt", json.dumps(published))

    book = book_get(market=market)

    assert book["buy"] == [{"price": "99", "quantity": "1"}]
    assert book["sell"] == [{"price": "101", "quantity": "0.5"}, {"price": "102.5", "quantity": "0.3"}]


def test_the_book_is_unavailable_when_redis_is_unreachable(market, settings):
    settings.MATCHING_REDIS_URL = UNREACHABLE_REDIS

    with pytest.raises(ServiceUnavailable):
        book_get(market=market)


# -- amounts -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("0.5000000000", "0.5"),
        ("0E-10", "0"),
        ("1E+2", "100"),
        ("100.0000000000", "100"),
        ("12345678901234567890.1234567891", "12345678901234567890.1234567891"),  # 30 digits, not rounded
    ],
)
def test_amounts_are_plain_exact_strings(value, text):
    assert plain(Decimal(value)) == text
