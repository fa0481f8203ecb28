from __future__ import annotations

from decimal import Decimal

import pytest

from bench.feed import publish_reference
from orders.cache import cached_order
from orders.errors import InsufficientFunds, OrderRejected
from orders.models import Balance, Order
from orders.outbox import order_sweep_unqueued
from orders.services import OrderRequest, order_place, order_place_many
from tests.factories import BalanceFactory, MarketFactory, UserFactory

pytestmark = pytest.mark.django_db

STREAM = "orders:btc_usdt"


@pytest.fixture
def market(redis_client):
    return MarketFactory(coin="btc", currency="usdt")


def _funded(usdt: str = "100000", btc: str | None = None):
    user = UserFactory()
    BalanceFactory(user=user, asset="usdt", total=Decimal(usdt))
    if btc is not None:
        BalanceFactory(user=user, asset="btc", total=Decimal(btc))
    return user


def _held(user, asset: str) -> Decimal:
    return Balance.objects.get(user=user, asset=asset).held


# -- order_place_many: all or none -------------------------------------------------------------------


def test_a_batch_with_one_user_short_of_funds_writes_nothing_for_anyone(market, redis_client):
    rich, poor = _funded("100000"), _funded("10")
    requests = [
        OrderRequest(rich.pk, "buy", "limit", Decimal("1"), Decimal("100")),
        OrderRequest(poor.pk, "buy", "limit", Decimal("1"), Decimal("100")),
    ]

    with pytest.raises(InsufficientFunds) as error:
        order_place_many(market=market, requests=requests)

    assert f"user {poor.pk}" in error.value.message
    assert Order.objects.count() == 0
    assert (_held(rich, "usdt"), _held(poor, "usdt")) == (0, 0)
    assert not Balance.objects.filter(asset="btc").exists()
    assert redis_client.xlen(STREAM) == 0


def test_a_batch_with_one_invalid_order_writes_nothing(market, redis_client):
    user = _funded()
    requests = [
        OrderRequest(user.pk, "buy", "limit", Decimal("1"), Decimal("100")),
        OrderRequest(user.pk, "buy", "limit", Decimal("1"), Decimal("100.001")),  # off the tick grid
    ]

    with pytest.raises(OrderRejected):
        order_place_many(market=market, requests=requests)

    assert Order.objects.count() == 0
    assert _held(user, "usdt") == 0
    assert redis_client.xlen(STREAM) == 0


def test_a_batch_of_several_users_holds_each_users_funds(market, redis_client):
    alice, bob = _funded("1000"), _funded("0", btc="2")
    requests = [
        OrderRequest(alice.pk, "buy", "limit", Decimal("2"), Decimal("100")),
        OrderRequest(alice.pk, "buy", "limit", Decimal("1"), Decimal("150.50")),
        OrderRequest(bob.pk, "sell", "limit", Decimal("1.5"), Decimal("200")),
    ]

    orders = order_place_many(market=market, requests=requests)

    assert [o.status for o in orders] == ["new", "new", "new"]
    assert _held(alice, "usdt") == Decimal("350.50")
    assert _held(bob, "btc") == Decimal("1.5")
    assert redis_client.xlen(STREAM) == 3


# -- holds -------------------------------------------------------------------------------------------


def test_a_limit_buy_holds_price_times_quantity_in_the_quote_asset(market, redis_client):
    user = _funded("1000")

    order = order_place(user=user, market=market, side="buy", order_type="limit", quantity="0.1234", price="250.01")

    assert order.held == Decimal("30.851234")
    assert _held(user, "usdt") == Decimal("30.851234")


def test_a_limit_sell_holds_the_quantity_in_the_base_asset(market, redis_client):
    user = _funded("0", btc="1")

    order = order_place(user=user, market=market, side="sell", order_type="limit", quantity="0.75", price="99.99")

    assert order.held == Decimal("0.75")
    assert (_held(user, "btc"), _held(user, "usdt")) == (Decimal("0.75"), 0)


def test_a_market_sell_holds_the_quantity_and_needs_no_book(market, redis_client):
    user = _funded("0", btc="1")

    order = order_place(user=user, market=market, side="sell", order_type="market", quantity="0.5")

    assert (order.held, order.time_in_force, order.price) == (Decimal("0.5"), "ioc", None)


def test_a_market_buy_holds_quantity_times_best_ask_plus_collar_rounded_up_to_the_notional_step(market, redis_client):
    user = _funded("1000")
    publish_reference(redis_client, market, Decimal("100.37"))

    order = order_place(user=user, market=market, side="buy", order_type="market", quantity="0.0123")

    # 0.0123 x 100.37 x 1.05 = 1.29627855, up to the step tick x lot = 0.000001
    assert order.held == Decimal("1.296279")
    assert _held(user, "usdt") == Decimal("1.296279")
    assert order.time_in_force == "ioc"


def test_a_market_buy_without_a_published_book_is_rejected_naming_the_type(market, redis_client):
    user = _funded("1000")

    with pytest.raises(OrderRejected) as error:
        order_place(user=user, market=market, side="buy", order_type="market", quantity="0.01")

    assert error.value.field == "type"
    assert Order.objects.count() == 0
    assert _held(user, "usdt") == 0


def test_a_buy_creates_the_balance_row_of_the_asset_it_will_receive(market, redis_client):
    user = _funded("1000")
    assert not Balance.objects.filter(user=user, asset="btc").exists()

    order_place(user=user, market=market, side="buy", order_type="limit", quantity="1", price="100")

    btc = Balance.objects.get(user=user, asset="btc")
    assert (btc.total, btc.held) == (0, 0)


# -- after commit: stream and cache ------------------------------------------------------------------


def test_an_accepted_order_lands_in_its_market_stream_once_and_in_the_cache(market, redis_client):
    user = _funded("1000")

    order = order_place(user=user, market=market, side="buy", order_type="limit", quantity="1", price="100")
    pushed_again = order_sweep_unqueued(older_than_s=-60)

    assert redis_client.xlen(STREAM) == 1
    assert pushed_again == 0  # the push-once marker stops the sweeper's duplicate
    cached = cached_order(redis_client, order.id)
    assert (cached["user"], cached["status"], cached["market"]) == (str(user.pk), "new", "btc_usdt")
