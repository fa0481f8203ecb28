"""factory-boy factories for the schema; amounts are Decimal strings, never floats."""

from __future__ import annotations

from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from orders.ids import allocator
from orders.models import Balance, Market, Order


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"trader{n}")
    password = factory.django.Password("pass-for-tests")


class MarketFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Market
        django_get_or_create = ("coin", "currency")

    coin = "btc"
    currency = "usdt"
    tick_size = Decimal("0.01")
    lot_size = Decimal("0.0001")
    min_quantity = Decimal("0.0001")
    min_notional = Decimal("1")
    maker_fee_rate = Decimal("0.001")
    taker_fee_rate = Decimal("0.002")


class BalanceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Balance

    user = factory.SubFactory(UserFactory)
    asset = "usdt"
    total = Decimal("100000")
    held = Decimal("0")


class OrderFactory(factory.django.DjangoModelFactory):
    """An order row written directly: no funds held, not queued, in any status. For reads and for
    states intake cannot produce (an executed order); accepted orders come from ``order_place``."""

    class Meta:
        model = Order

    id = factory.LazyFunction(lambda: allocator.take(1)[0])
    user = factory.SubFactory(UserFactory)
    trade_type = "buy"
    coin = "btc"
    currency = "usdt"
    type = "limit"
    time_in_force = "gtc"
    quantity = Decimal("1")
    price = Decimal("100")
    held = factory.LazyAttribute(lambda o: o.price * o.quantity if o.trade_type == "buy" else o.quantity)
    status = "pending"
