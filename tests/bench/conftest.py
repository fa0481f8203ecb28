"""Fixtures for the benchmark's pipelines: a funded market on the real test database and Redis (as in
tests/pipeline/conftest.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.models import Market
from orders.services import balance_deposit
from tests.factories import MarketFactory, UserFactory


@pytest.fixture
def market(redis_client) -> Market:
    return MarketFactory(coin="btc", currency="usdt")


@pytest.fixture
def traders(market) -> list:
    users = [UserFactory() for _ in range(6)]
    for user in users:
        balance_deposit(user=user, asset="usdt", amount=Decimal("1000000"))
        balance_deposit(user=user, asset="btc", amount=Decimal("100"))
    return users
