"""Fixtures of the API tests: a funded trader (100,000 usdt, 10 btc) of the module's ``market`` and a
DRF test client authenticated as that trader."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from orders.balances import balance_deposit
from tests.factories import UserFactory


@pytest.fixture
def trader(market):
    user = UserFactory()
    balance_deposit(user=user, asset="usdt", amount=Decimal("100000"))
    balance_deposit(user=user, asset="btc", amount=Decimal("10"))
    return user


@pytest.fixture
def api(trader) -> APIClient:
    client = APIClient()
    client.force_authenticate(trader)
    return client
