"""The admin's order list shows a stop order's trigger and the client's order id (issue 10)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.services import order_place
from tests.factories import BalanceFactory, MarketFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_the_order_list_shows_the_base_price_stop_condition_and_client_order_id(client, redis_client):
    market = MarketFactory(coin="btc", currency="usdt")
    trader = UserFactory()
    BalanceFactory(user=trader, asset="usdt", total=Decimal("1000"))
    order_place(
        user=trader,
        market=market,
        side="buy",
        order_type="stop_limit",
        quantity="1",
        price="101",
        base_price="100.25",
        stop_condition="ge",
        client_order_id="bot-42",
    )
    client.force_login(UserFactory(username="ops", is_staff=True, is_superuser=True))

    page = client.get("/admin/orders/order/")

    assert page.status_code == 200
    body = page.content.decode()
    assert "100.2500000000" in body and "bot-42" in body and "Stop Limit" in body and ">Ge<" in body
