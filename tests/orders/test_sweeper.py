"""The order row is the outbox: `new` orders that never reached their stream are pushed, once."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from matching.commands import PlaceCommand, decode
from orders.balances import balance_deposit
from orders.models import Order
from orders.outbox import order_sweep_unqueued
from orders.services import OrderRequest, order_place_many
from spot import keys
from tests.factories import MarketFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def unqueued(redis_client):
    market = MarketFactory()
    user = UserFactory()
    balance_deposit(user=user, asset="usdt", amount=Decimal("10000"))
    orders = order_place_many(
        market=market,
        requests=[OrderRequest(user.id, "buy", "limit", Decimal("0.1"), Decimal("100.00")) for _ in range(3)],
        enqueue=False,  # as if Redis had been down when they were accepted
    )
    Order.objects.filter(id__in=[o.id for o in orders]).update(updated_at=timezone.now() - timedelta(seconds=60))
    return market, orders


def test_the_sweeper_pushes_new_orders_that_never_reached_their_stream(unqueued, redis_client):
    market, _ = unqueued

    assert order_sweep_unqueued(older_than_s=5) == 3

    assert redis_client.xlen(keys.stream(market.code)) == 3


def test_sweeping_again_pushes_nothing_twice(unqueued, redis_client):
    market, _ = unqueued
    order_sweep_unqueued(older_than_s=5)

    assert order_sweep_unqueued(older_than_s=5) == 0
    assert redis_client.xlen(keys.stream(market.code)) == 3


def test_the_sweeper_leaves_young_new_orders_to_their_first_push(unqueued, redis_client):
    _, orders = unqueued
    Order.objects.filter(id=orders[0].id).update(updated_at=timezone.now())

    assert order_sweep_unqueued(older_than_s=5) == 2


def test_a_swept_stop_order_carries_its_trigger_and_a_stop_market_buy_its_budget(redis_client):
    market = MarketFactory()
    user = UserFactory()
    balance_deposit(user=user, asset="usdt", amount=Decimal("10000"))
    stop_market = OrderRequest(
        user.id, "buy", "stop_market", Decimal("0.1"), None, base_price=Decimal("100.00"), stop_condition="ge"
    )
    [order] = order_place_many(market=market, requests=[stop_market], enqueue=False)
    Order.objects.filter(id=order.id).update(updated_at=timezone.now() - timedelta(seconds=60))

    assert order_sweep_unqueued(older_than_s=5) == 1

    [(_, fields)] = redis_client.xrange(keys.stream(market.code))
    command = decode(fields[b"c"])
    assert isinstance(command, PlaceCommand)
    assert (command.type, command.base_price, command.stop_condition) == ("stop_market", Decimal("100.00"), "ge")
    assert command.quote_budget == command.held == Decimal("10.5")  # 0.1 x 100 x 1.05
