"""The exchange's schema: markets, orders, trades, balances, matcher checkpoints, dead letters.

Amounts are ``DecimalField(30, 10)`` as in the original schema; money is never a float. Order ids are
BIGINTs made by the application (``orders.ids``) because the matcher writes rows in bulk and MySQL's
bulk insert does not return generated ids.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

# The project's one set of order enums lives in the pure core; the schema takes its choices from it.
from matching.core import OPEN_STATUSES, RESTING_STATUSES, OrderStatus, OrderType, Side, TimeInForce

__all__ = [
    "OPEN_STATUSES",
    "RESTING_STATUSES",
    "Balance",
    "DeadLetter",
    "Market",
    "MatcherCheckpoint",
    "Order",
    "OrderStatus",
    "OrderType",
    "Side",
    "TimeInForce",
    "Trade",
]

SIDES = frozenset(Side)
ORDER_TYPES = frozenset(OrderType)
TIMES_IN_FORCE = frozenset(TimeInForce)


def choices(enum: type[StrEnum]) -> list[tuple[str, str]]:
    """A field's choices from an enum, labelled as Django's ``TextChoices`` would label them."""
    return [(member.value, member.name.replace("_", " ").title()) for member in enum]


def amount_field(**kwargs: object) -> models.DecimalField:
    kwargs.setdefault("max_digits", 30)
    kwargs.setdefault("decimal_places", 10)
    return models.DecimalField(**kwargs)  # type: ignore[arg-type]


class Market(models.Model):
    """A pair: ``coin`` is the base asset, ``currency`` the quote (btc/usdt)."""

    coin = models.CharField(max_length=16)
    currency = models.CharField(max_length=16)
    tick_size = amount_field()
    lot_size = amount_field()
    min_quantity = amount_field(default=Decimal("0"))
    min_notional = amount_field(default=Decimal("0"))
    maker_fee_rate = models.DecimalField(max_digits=12, decimal_places=8, default=Decimal("0.001"))
    taker_fee_rate = models.DecimalField(max_digits=12, decimal_places=8, default=Decimal("0.002"))
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "markets"
        constraints = [
            models.UniqueConstraint(fields=["coin", "currency"], name="uniq_markets_coin_currency"),
            models.CheckConstraint(condition=Q(tick_size__gt=0) & Q(lot_size__gt=0), name="chk_markets_steps"),
            models.CheckConstraint(
                condition=Q(maker_fee_rate__gte=0, maker_fee_rate__lt=1, taker_fee_rate__gte=0, taker_fee_rate__lt=1),
                name="chk_markets_fee_rates",
            ),
        ]

    def __str__(self) -> str:
        return self.code

    def clean(self) -> None:
        # The matcher settles in units of 1e-10 (the amount columns' scale): a tick x lot finer than
        # that would make price x quantity unrepresentable in a balance.
        if self.tick_size and self.lot_size and (self.tick_size * self.lot_size) % Decimal("1E-10"):
            raise ValidationError({"lot_size": "tick size x lot size must be a multiple of 0.0000000001"})

    @property
    def code(self) -> str:
        """The market's name in streams, queues and metrics: ``btc_usdt``."""
        return f"{self.coin}_{self.currency}"


class Order(models.Model):
    id = models.BigIntegerField(primary_key=True)
    # Indexed through idx_orders_user_currency_coin, whose first column serves the foreign key.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, db_index=False, related_name="orders")
    trade_type = models.CharField(max_length=4, choices=choices(Side))
    currency = models.CharField(max_length=16)
    coin = models.CharField(max_length=16)
    type = models.CharField(max_length=6, choices=choices(OrderType))
    time_in_force = models.CharField(max_length=3, choices=choices(TimeInForce), default=TimeInForce.GTC)
    quantity = amount_field()
    price = amount_field(null=True, blank=True)  # none for market orders
    # What placing the order held: quote for a buy (price x quantity, or a market buy's budget), base
    # for a sell. An open order still needs ``held`` less what it has consumed.
    held = amount_field()
    executed_quantity = amount_field(default=Decimal("0"))
    executed_quote = amount_field(default=Decimal("0"))  # sum of price x quantity over its trades
    average_price = amount_field(null=True, blank=True)
    fee = amount_field(default=Decimal("0"))  # charged in the asset the order receives
    status = models.CharField(max_length=16, choices=choices(OrderStatus), default=OrderStatus.NEW)
    reject_reason = models.CharField(max_length=200, blank=True, default="")
    # Per-market sequence given when the matcher first sees the order: fixes time priority, so a
    # book rebuilt from the DB orders equal prices exactly as the book in memory did.
    seq = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "orders"
        indexes = [
            # FR-DB-001. Also what the book rebuild reads: a market's open orders, by status.
            models.Index(fields=["currency", "coin", "status"], name="idx_orders_currency_coin_status"),
            # FR-DB-001. The outbox sweeper: `new` orders not updated for a while.
            models.Index(fields=["status", "updated_at"], name="idx_orders_status_updated"),
            # FR-DB-001. A user's orders in a market.
            models.Index(fields=["user", "currency", "coin"], name="idx_orders_user_currency_coin"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="chk_orders_quantity_positive"),
            models.CheckConstraint(
                condition=Q(executed_quantity__gte=0, executed_quantity__lte=F("quantity")),
                name="chk_orders_executed_within_quantity",
            ),
            models.CheckConstraint(condition=Q(held__gte=0), name="chk_orders_held_non_negative"),
        ]

    def __str__(self) -> str:
        return f"order {self.id} {self.trade_type} {self.quantity} {self.coin}_{self.currency} @ {self.price}"

    @property
    def market_code(self) -> str:
        return f"{self.coin}_{self.currency}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class Trade(models.Model):
    coin = models.CharField(max_length=16)
    currency = models.CharField(max_length=16)
    # Covered by uniq_trades_buy_sell, whose first column serves this foreign key.
    buy_order = models.ForeignKey(Order, on_delete=models.PROTECT, db_index=False, related_name="+")
    sell_order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="+")
    taker_side = models.CharField(max_length=4, choices=choices(Side))
    price = amount_field()
    quantity = amount_field()
    buyer_fee = amount_field()  # in coin, kept from what the buyer receives
    seller_fee = amount_field()  # in currency, kept from what the seller receives
    created_at = models.DateTimeField()

    class Meta:
        db_table = "trades"
        constraints = [
            # Two orders meet at most once (the one that arrives later either exhausts or is exhausted
            # by the other), so a second row for a pair is a duplicate trade: the DB refuses it.
            models.UniqueConstraint(fields=["buy_order", "sell_order"], name="uniq_trades_buy_sell"),
            models.CheckConstraint(condition=Q(price__gt=0, quantity__gt=0), name="chk_trades_positive"),
        ]
        indexes = [models.Index(fields=["coin", "currency", "created_at"], name="idx_trades_market_created")]


class Balance(models.Model):
    """One user's holding of one asset; ``held`` is reserved by open orders."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, db_index=False, related_name="balances"
    )
    asset = models.CharField(max_length=16)
    total = amount_field(default=Decimal("0"))
    held = amount_field(default=Decimal("0"))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "balances"
        constraints = [
            models.UniqueConstraint(fields=["user", "asset"], name="uniq_balances_user_asset"),
            models.CheckConstraint(
                condition=Q(total__gte=0, held__gte=0, held__lte=F("total")), name="chk_balances_non_negative"
            ),
        ]

    @property
    def available(self) -> Decimal:
        return self.total - self.held


class MatcherCheckpoint(models.Model):
    """A market's last applied stream entry, written in each batch's transaction.

    ``epoch`` fences matchers: each new owner of the market's lease bumps it, and a batch commits only
    if the epoch is still its own, so a stalled former owner cannot write after a takeover.
    """

    market = models.OneToOneField(Market, on_delete=models.CASCADE, primary_key=True, related_name="checkpoint")
    last_entry = models.CharField(max_length=40, default="0-0")
    last_seq = models.BigIntegerField(default=0)  # the highest order sequence number given so far
    epoch = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "matcher_checkpoints"


class DeadLetter(models.Model):
    """A stream entry that failed ``MATCHING_MAX_DELIVERIES`` deliveries (FR-RL-003).

    ``requeued_at`` is reserved for the manual requeue of a dead letter, which does not exist yet.
    """

    market = models.CharField(max_length=32)
    entry_id = models.CharField(max_length=40)
    payload = models.TextField()
    reason = models.TextField()
    correlation_id = models.CharField(max_length=25, blank=True, default="")
    deliveries = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    requeued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "dead_letters"
        constraints = [models.UniqueConstraint(fields=["market", "entry_id"], name="uniq_dead_letters_entry")]
        indexes = [models.Index(fields=["created_at"], name="idx_dead_letters_created")]

    def __str__(self) -> str:
        return f"{self.market} {self.entry_id}: {self.reason[:60]}"
