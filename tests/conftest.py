"""Shared fixtures: real MariaDB (pytest-django's test database) and a real Redis database."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import redis
from django.conf import settings


@pytest.fixture(autouse=True)
def _markets_read_afresh() -> None:
    """Each test reads markets from its own rows: a market the process cached in an earlier test
    (orders.market_cache) was rolled back with that test's transaction, which no signal reports."""
    from orders.market_cache import MARKETS

    MARKETS.clear()


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """The test Redis database, emptied before and after the test."""
    client = redis.Redis.from_url(settings.MATCHING_REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def market(redis_client):
    """BTC/USDT (tick 0.01, lot 0.0001, fees 0.1 % maker / 0.2 % taker) with a clean Redis."""
    from tests.factories import MarketFactory

    return MarketFactory(coin="btc", currency="usdt")


@pytest.fixture
def traders(market) -> list:
    """Six users with 1,000,000 USDT and 100 BTC each."""
    from orders.balances import balance_deposit
    from tests.factories import UserFactory

    users = [UserFactory() for _ in range(6)]
    for user in users:
        balance_deposit(user=user, asset="usdt", amount=Decimal("1000000"))
        balance_deposit(user=user, asset="btc", amount=Decimal("100"))
    return users


@pytest.fixture
def engine(market):
    """The market's matching engine in this process, started (lease, epoch, book rebuilt)."""
    from matching.worker import registry

    engine = registry.engine_for(market.code)
    engine.start()
    yield engine
    registry.forget_engines()


def drain_all(engine) -> int:
    """Run an in-process engine's batches until its stream is empty; returns commands handled."""
    total = 0
    while n := engine.drain_batch():
        total += n
    return total
