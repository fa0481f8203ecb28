"""Routes of the orders API, mounted under ``/api/v1/`` (no trailing slashes): the old system's names
(docs/API.md). The fixed routes come before ``orders/<currency>/<status>``, which would match them."""

from __future__ import annotations

from django.urls import path

from orders.api import (
    BalanceListApi,
    MarketListApi,
    OrderBatchApi,
    OrderBookApi,
    OrderCancelAllApi,
    OrderCancelApi,
    OrderCancelByTypeApi,
    OrderClientCancelApi,
    OrderClientDetailApi,
    OrderDetailApi,
    OrderHistoryApi,
    OrderPendingApi,
    OrderPlaceApi,
    RecentTransactionListApi,
    TransactionListApi,
)
from orders.api_keys_api import KeyDetailApi, KeyListCreateApi, SessionApi

app_name = "orders"

urlpatterns = [
    path("orders", OrderPlaceApi.as_view(), name="orders"),
    path("orders/batch", OrderBatchApi.as_view(), name="orders-batch"),
    path("orders/pending", OrderPendingApi.as_view(), name="orders-pending"),
    path("orders/cancel", OrderClientCancelApi.as_view(), name="orders-cancel-by-client-order-id"),
    path("orders/cancel-all", OrderCancelAllApi.as_view(), name="orders-cancel-all"),
    path("orders/cancel-by-type", OrderCancelByTypeApi.as_view(), name="orders-cancel-by-type"),
    path("orders/detail", OrderClientDetailApi.as_view(), name="order-detail-by-client-order-id"),
    path("orders/detail/<str:order_id>", OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<str:order_id>/cancel", OrderCancelApi.as_view(), name="order-cancel"),
    path("orders/transactions", TransactionListApi.as_view(), name="transactions"),
    path("orders/transactions/recent", RecentTransactionListApi.as_view(), name="transactions-recent"),
    path("orders/order-book", OrderBookApi.as_view(), name="order-book"),
    path("orders/<str:currency>/<str:status>", OrderHistoryApi.as_view(), name="orders-history"),
    path("balances", BalanceListApi.as_view(), name="balances"),
    path("markets", MarketListApi.as_view(), name="markets"),
    # The session and API keys: a person's login, and the keys bots sign with (orders.api_keys_api).
    path("session", SessionApi.as_view(), name="session"),
    path("keys", KeyListCreateApi.as_view(), name="keys"),
    path("keys/<str:key_id>", KeyDetailApi.as_view(), name="key-detail"),
]
