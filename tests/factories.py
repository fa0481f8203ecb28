"""factory-boy factories for the schema; amounts are Decimal strings, never floats."""

from __future__ import annotations

from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from orders.models import Balance, Market


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
