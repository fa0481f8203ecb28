"""Fixtures for the pipeline: a funded market on the real test database and Redis.

Pipeline tests use ``transaction=True``: the matcher writes through its own connection (and, in the
process tests, its own process), so the data it reads must be committed.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from matching import service
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


@pytest.fixture
def engine(market, traders) -> Iterator:
    """The market's engine in this process, started (lease, epoch, book rebuilt)."""
    engine = service.engine_for(market.code)
    engine.start()
    yield engine
    service.forget_engines()
