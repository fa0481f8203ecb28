"""Django admin for the orders domain.

Only markets are edited here (``enabled``, the grid and fees). Orders, trades and balances are written
by intake and the matcher alone (the book in the matcher's memory must match the DB), so their admin
is read-only. Large tables skip the exact count (``show_full_result_count``) and join what a row shows.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from orders.models import Balance, DeadLetter, Market, Order, Trade


class ReadOnlyAdmin(admin.ModelAdmin):
    """Lists and detail pages, no add, change or delete."""

    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Market)
class MarketAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "tick_size",
        "lot_size",
        "min_quantity",
        "min_notional",
        "maker_fee_rate",
        "taker_fee_rate",
        "enabled",
    )
    list_display_links = ("code",)
    list_editable = ("enabled",)
    list_filter = ("enabled",)
    ordering = ("coin", "currency")
    readonly_fields = ("created_at",)


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "user",
        "market",
        "trade_type",
        "type",
        "price",
        "quantity",
        "executed_quantity",
        "status",
        "updated_at",
    )
    list_filter = ("status", "trade_type", "type", "coin")
    list_select_related = ("user",)
    search_fields = ("=id",)
    ordering = ("-created_at",)

    @admin.display(description="market", ordering="coin")
    def market(self, order: Order) -> str:
        return order.market_code


@admin.register(Trade)
class TradeAdmin(ReadOnlyAdmin):
    list_display = ("id", "market", "price", "quantity", "taker_side", "buy_order_id", "sell_order_id", "created_at")
    list_filter = ("coin", "taker_side")
    search_fields = ("=id", "=buy_order__id", "=sell_order__id")
    ordering = ("-created_at",)

    @admin.display(description="market", ordering="coin")
    def market(self, trade: Trade) -> str:
        return f"{trade.coin}_{trade.currency}"


@admin.register(Balance)
class BalanceAdmin(ReadOnlyAdmin):
    list_display = ("user", "asset", "total", "held", "available", "updated_at")
    list_filter = ("asset",)
    list_select_related = ("user",)
    search_fields = ("user__username",)
    ordering = ("user_id", "asset")


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    # Read-only: there is no requeue or discard action yet (FR-RL-003 manual reprocessing is not met).
    list_display = ("market", "entry_id", "reason", "correlation_id", "deliveries", "created_at", "requeued_at")
    list_filter = ("market",)
    search_fields = ("=entry_id", "=correlation_id")
    ordering = ("-created_at",)
