"""Routes of the orders API, mounted under ``/api/v1/`` (no trailing slashes)."""

from __future__ import annotations

from django.urls import path

from orders.api import (
    BalanceListApi,
    MarketBookApi,
    MarketListApi,
    MarketTradeListApi,
    OrderBatchApi,
    OrderDetailApi,
    OrderListCreateApi,
)
from orders.api_keys_api import KeyDetailApi, KeyListCreateApi, SessionApi

app_name = "orders"

urlpatterns = [
    path("orders", OrderListCreateApi.as_view(), name="orders"),
    path("orders/batch", OrderBatchApi.as_view(), name="orders-batch"),
    path("orders/<int:order_id>", OrderDetailApi.as_view(), name="order-detail"),
    path("balances", BalanceListApi.as_view(), name="balances"),
    path("markets", MarketListApi.as_view(), name="markets"),
    path("markets/<str:code>/book", MarketBookApi.as_view(), name="market-book"),
    path("markets/<str:code>/trades", MarketTradeListApi.as_view(), name="market-trades"),
    # The session and API keys: a person's login, and the keys bots sign with (orders.api_keys_api).
    path("session", SessionApi.as_view(), name="session"),
    path("keys", KeyListCreateApi.as_view(), name="keys"),
    path("keys/<str:key_id>", KeyDetailApi.as_view(), name="key-detail"),
]
