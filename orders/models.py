"""The exchange's schema: markets, orders, trades, balances, matcher checkpoints, dead letters.

Amounts are ``DecimalField(30, 10)`` as in the original schema; money is never a float. Order ids are
BIGINTs made by the application (``orders.ids``) because the matcher writes rows in bulk and MySQL's
bulk insert does not return generated ids.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from enum import StrEnum

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

# The project's one set of order enums lives in the pure core; the schema takes its choices from it.
from matching.core import (
    OPEN_STATUSES,
    RESTING_STATUSES,
    OrderStatus,
    OrderType,
    Side,
    StopCondition,
    TimeInForce,
)

__all__ = [
    "CLIENT_ORDER_ID",
    "OPEN_STATUSES",
    "RESTING_STATUSES",
    "ApiKey",
    "ApiKeyScope",
    "Balance",
    "DeadLetter",
    "DeadLetterKind",
    "DeadLetterReason",
    "DeadLetterStatus",
    "Market",
    "MatcherCheckpoint",
    "Order",
    "OrderStatus",
    "OrderType",
    "Side",
    "StopCondition",
    "TimeInForce",
    "Trade",
]

SIDES = frozenset(Side)
ORDER_TYPES = frozenset(OrderType)
TIMES_IN_FORCE = frozenset(TimeInForce)
STOP_CONDITIONS = frozenset(StopCondition)
STOP_TYPES = frozenset({OrderType.STOP_LIMIT, OrderType.STOP_MARKET})
# A client's own name for its order (issue 10): printable ASCII (0x20-0x7E), 1 to 36 characters (a
# UUID fits), unique per user. Compared exactly: the column's collation is binary, where the table's
# default would let ``A`` and ``a`` (or a trailing space) name one order.
CLIENT_ORDER_ID = re.compile(r"[\x20-\x7e]{1,36}")


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
    type = models.CharField(max_length=11, choices=choices(OrderType))
    time_in_force = models.CharField(max_length=3, choices=choices(TimeInForce), default=TimeInForce.GTC)
    quantity = amount_field()
    price = amount_field(null=True, blank=True)  # none for market and stop_market orders
    # A stop order's trigger (issue 10): it waits, ``stopping``, until a trade in its market happens at
    # a price ``ge`` (at or above) or ``le`` (at or below) ``base_price``. Empty for other types.
    base_price = amount_field(null=True, blank=True)
    stop_condition = models.CharField(max_length=2, choices=choices(StopCondition), blank=True, default="")
    # The client's own id for the order (``CLIENT_ORDER_ID``); placing again with it returns this order.
    client_order_id = models.CharField(max_length=36, null=True, blank=True, db_collation="utf8mb4_nopad_bin")
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
    # book rebuilt from the DB orders equal prices exactly as the book in memory did. A waiting stop
    # keeps its placement seq (waiting stops trigger in that order); a triggered one gets a new seq.
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
            # Idempotent placement (issue 10): the constraint, not a read before the insert, decides
            # which of two concurrent retries with one id makes the order. NULLs never collide.
            models.UniqueConstraint(fields=["user", "client_order_id"], name="uniq_orders_user_client_order_id"),
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


class DeadLetterKind(StrEnum):
    STREAM = "stream"  # a market stream entry the matcher could not apply
    TASK = "task"  # a Celery task that failed for good


class DeadLetterReason(StrEnum):
    MALFORMED = "malformed"  # the entry is not a command the matcher accepts (codec or matcher rules)
    ERROR = "error"  # a bug while applying it
    TASK = "task"  # a task that exhausted its retries or raised a bug


class DeadLetterStatus(StrEnum):
    DEAD = "dead"  # waiting for an operator
    REQUEUED = "requeued"  # put back on its stream (or sent again) once, as ``requeued_as``
    DISCARDED = "discarded"  # given up; a place command's order was rejected and its hold released


class DeadLetter(models.Model):
    """A stream entry that failed ``MATCHING_MAX_DELIVERIES`` deliveries, or a Celery task that failed
    for good (FR-RL-003), recorded from the ``dead_letter`` Celery queue (``orders.deadletters``).

    ``fields`` keeps the entry's raw fields, whatever their names; ``payload`` is the command (field
    ``c``) and may be corrected by an operator before a requeue, ``original_payload`` never changes.
    One row per (market, entry): a message delivered twice updates ``last_failed_at``/``deliveries``.
    """

    kind = models.CharField(max_length=8, choices=choices(DeadLetterKind), default=DeadLetterKind.STREAM.value)
    market = models.CharField(max_length=32, blank=True)  # empty for a task
    entry_id = models.CharField(max_length=64)  # the stream entry id, or the task id
    order_id = models.BigIntegerField(null=True, blank=True)  # the command's "id", when it has one
    fields = models.JSONField(default=dict, blank=True)
    payload = models.TextField(blank=True, default="")
    original_payload = models.TextField(blank=True, default="")
    reason = models.TextField()
    reason_kind = models.CharField(
        max_length=16, choices=choices(DeadLetterReason), default=DeadLetterReason.ERROR.value
    )
    exception = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    deliveries = models.PositiveIntegerField(default=0)
    correlation_id = models.CharField(max_length=64, blank=True, default="")
    task_name = models.CharField(max_length=200, blank=True, default="")
    task_args = models.JSONField(default=list, blank=True)
    task_kwargs = models.JSONField(default=dict, blank=True)
    first_failed_at = models.DateTimeField()
    last_failed_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=choices(DeadLetterStatus), default=DeadLetterStatus.DEAD.value)
    handled_by = models.CharField(max_length=150, blank=True, default="")
    handled_at = models.DateTimeField(null=True, blank=True)
    handled_note = models.TextField(blank=True, default="")
    requeued_as = models.CharField(max_length=64, blank=True, default="")  # the new entry id or task id
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "dead_letters"
        constraints = [models.UniqueConstraint(fields=["market", "entry_id"], name="uniq_dead_letters_entry")]
        indexes = [
            models.Index(fields=["created_at"], name="idx_dead_letters_created"),
            # The admin's status filter and the purge (handled letters by age).
            models.Index(fields=["status", "handled_at"], name="idx_dead_letters_status"),
            # The admin's market filter; the dead-count gauge groups the `dead` ones by market.
            models.Index(fields=["market", "status"], name="idx_dead_letters_market_status"),
            # The admin's search fields.
            models.Index(fields=["entry_id"], name="idx_dead_letters_entry"),
            models.Index(fields=["correlation_id"], name="idx_dead_letters_correlation"),
            # Also the sweeper's question: is this `new` order's place entry dead-lettered?
            models.Index(fields=["order_id"], name="idx_dead_letters_order"),
        ]

    @property
    def placed_order_id(self) -> int | None:
        """The order whose place command this letter holds: ``order_id`` when the payload, or the
        original, is a place (even a malformed one); None for a cancel, garbage or a task."""
        if self.kind != DeadLetterKind.STREAM or self.order_id is None:
            return None
        for text in (self.payload, self.original_payload):
            try:
                data = json.loads(text)
            except (ValueError, RecursionError):
                continue
            if isinstance(data, dict) and data.get("op") == "place":
                return self.order_id
        return None

    def __str__(self) -> str:
        where = self.market or self.task_name
        return f"dead letter {self.pk} ({where} {self.entry_id}, {self.status}): {self.reason[:60]}"


class ApiKeyScope(StrEnum):
    READ = "read"  # GET: orders, balances, market data
    TRADE = "trade"  # place and cancel orders


class ApiKey(models.Model):
    """A user's key for signed requests (``orders.authentication``); written by ``orders.apikeys``.

    ``key_id`` is public (sent with every request). The secret is shown once, at creation: the row
    keeps it only encrypted (``secret_encrypted``, Fernet under ``API_KEY_ENCRYPTION_KEYS``), since
    checking an HMAC needs the secret itself, not a hash of it. A revoked key stays, with its
    ``revoked_at``, so its history is kept and its id never comes back.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    key_id = models.CharField(max_length=32, unique=True)
    label = models.CharField(max_length=100, blank=True, default="")
    # The scopes sorted and comma-separated ("read", "trade", "read,trade"); the constraint below
    # keeps it one of those, so at least one scope and no other.
    scopes = models.CharField(max_length=16)
    # IP addresses and CIDR networks (normalised strings); empty allows every address.
    allowed_ips = models.JSONField(default=list, blank=True)
    secret_encrypted = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    # Written when a web process fills its cache from the row, not on every request: a key used
    # now shows a time no older than orders.apikeys.CACHE_TTL_S.
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "api_keys"
        verbose_name = "API key"
        constraints = [
            models.CheckConstraint(condition=Q(scopes__in=["read", "trade", "read,trade"]), name="chk_api_keys_scopes"),
        ]

    def __str__(self) -> str:
        return f"{self.key_id} ({self.label})" if self.label else self.key_id

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split(",")) if self.scopes else frozenset()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
