"""Writes of balances: deposits, the fee account, and the holds intake takes for new orders.

Lock order (both sides rely on it): balance rows are locked in (user, asset) order, by intake's hold
update here and by the matcher's balance update (``Settlement.balance_rows``), so the two never wait
on each other in a cycle.
"""

from __future__ import annotations

import json
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection

from orders.errors import InsufficientFunds, OrderRejected
from orders.models import Balance, Market


def balance_deposit(*, user: AbstractBaseUser | int, asset: str, amount: Decimal) -> None:
    """Credit ``amount`` of ``asset`` to the user (creating the balance row if needed)."""
    if amount <= 0:
        raise OrderRejected("a deposit must be positive", field="amount")
    user_id = user if isinstance(user, int) else user.pk
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO balances (user_id, asset, total, held, updated_at) VALUES (%s, %s, %s, 0, NOW(6)) "
            "ON DUPLICATE KEY UPDATE total = total + VALUES(total), updated_at = VALUES(updated_at)",
            [user_id, asset, amount],
        )


def fee_account_id(market: Market) -> int:
    """The user collecting fees, with balance rows for the market's assets (created if missing)."""
    user, _ = get_user_model().objects.get_or_create(
        username=settings.FEE_ACCOUNT_USERNAME, defaults={"is_active": False}
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT IGNORE INTO balances (user_id, asset, total, held, updated_at) "
            "VALUES (%s, %s, 0, 0, NOW(6)), (%s, %s, 0, 0, NOW(6))",
            [user.pk, market.coin, user.pk, market.currency],
        )
    return int(user.pk)


# JSON rows first, STRAIGHT_JOIN: see matching.worker.store for why the join order is forced.
_HOLD = """
UPDATE JSON_TABLE(%s, '$[*]' COLUMNS (
    user_id BIGINT PATH '$[0]', asset VARCHAR(16) PATH '$[1]', amount DECIMAL(30, 10) PATH '$[2]'
)) AS v
STRAIGHT_JOIN balances AS b FORCE INDEX (uniq_balances_user_asset) ON b.user_id = v.user_id AND b.asset = v.asset
SET b.held = b.held + v.amount, b.updated_at = NOW(6)
WHERE b.total - b.held >= v.amount
"""


def balance_hold(holds: dict[tuple[int, str], Decimal]) -> None:
    """Reserve funds; raises ``InsufficientFunds`` (rolling the transaction back) if any falls short.

    Rows are taken in (user, asset) order, the order ``Settlement.balance_rows`` gives the matcher.
    """
    rows = [[user, asset, str(amount)] for (user, asset), amount in sorted(holds.items())]
    with connection.cursor() as cursor:
        cursor.execute(_HOLD, [json.dumps(rows)])
        if cursor.rowcount == len(rows):
            return
    short = _first_short(holds)
    raise InsufficientFunds(
        f"insufficient {short[1]} balance" + (f" for user {short[0]}" if len(holds) > 1 else ""),
        field="quantity",
    )


def _first_short(holds: dict[tuple[int, str], Decimal]) -> tuple[int, str]:
    for (user, asset), amount in sorted(holds.items()):
        balance = Balance.objects.filter(user_id=user, asset=asset).first()
        if balance is None or balance.available < amount:
            return user, asset
    return next(iter(sorted(holds)))


def balance_rows_ensure(pairs: set[tuple[int, str]]) -> None:
    """The matcher settles into existing rows only; create the ones an order will receive into."""
    if not pairs:
        return
    placeholders = ", ".join(["(%s, %s, 0, 0, NOW(6))"] * len(pairs))
    args = [value for pair in sorted(pairs) for value in pair]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT IGNORE INTO balances (user_id, asset, total, held, updated_at) VALUES {placeholders}", args
        )
