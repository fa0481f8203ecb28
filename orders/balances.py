"""Writes of balances: deposits, the fee account, and the holds intake takes for new orders.

Lock order: a transaction that locks several balance rows takes them in
``matching.core.lock_order.balance_lock_order`` (by user, then asset), as the matcher's balance update
does; that module says why this rules out deadlocks between the two. Intake's hold transaction locks
balance rows only through the one ordered ``UPDATE`` of ``balance_hold``: the rows an order will
receive into are created before it, outside any transaction (``balance_rows_ensure``), because an
``INSERT IGNORE`` of a row that exists takes a shared lock on it, out of that order.
"""

from __future__ import annotations

import json
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection

from matching.core.lock_order import BalanceKey, balance_lock_order
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


def balance_hold(holds: dict[BalanceKey, Decimal]) -> None:
    """Reserve funds; raises ``InsufficientFunds`` (rolling the transaction back) if any falls short.

    One statement; it locks the rows in ``balance_lock_order`` (the order of its JSON array), the
    order the matcher's balance update takes them in.
    """
    rows = [[user, asset, str(holds[user, asset])] for user, asset in balance_lock_order(holds)]
    with connection.cursor() as cursor:
        cursor.execute(_HOLD, [json.dumps(rows)])
        if cursor.rowcount == len(rows):
            return
    short = _first_short(holds)
    raise InsufficientFunds(
        f"insufficient {short[1]} balance" + (f" for user {short[0]}" if len(holds) > 1 else ""),
        field="quantity",
    )


def _first_short(holds: dict[BalanceKey, Decimal]) -> BalanceKey:
    ordered = balance_lock_order(holds)
    for user, asset in ordered:
        balance = Balance.objects.filter(user_id=user, asset=asset).first()
        if balance is None or balance.available < holds[user, asset]:
            return user, asset
    return ordered[0]


_EXISTING = """
SELECT b.user_id, b.asset FROM JSON_TABLE(%s, '$[*]' COLUMNS (
    user_id BIGINT PATH '$[0]', asset VARCHAR(16) PATH '$[1]'
)) AS v
STRAIGHT_JOIN balances AS b FORCE INDEX (uniq_balances_user_asset) ON b.user_id = v.user_id AND b.asset = v.asset
"""


def balance_rows_ensure(pairs: set[BalanceKey]) -> None:
    """Create the balance rows an order will receive into (the matcher settles into existing rows only).

    Call it outside a transaction, before the hold. A plain ``SELECT`` (a consistent read: no lock,
    no wait for a transaction that holds the row) finds the rows that exist, as they nearly always
    do; only missing ones get an ``INSERT IGNORE``, in autocommit, so the shared lock it takes on a row
    another request created meanwhile lasts one statement and no transaction holds it. One statement,
    two the first time a user trades an asset. Rows are never deleted, so a row found stays there.
    """
    if not pairs:
        return
    ordered = balance_lock_order(pairs)
    with connection.cursor() as cursor:
        cursor.execute(_EXISTING, [json.dumps(ordered)])
        missing = set(ordered).difference((int(user), str(asset)) for user, asset in cursor.fetchall())
        if not missing:
            return
        rows = balance_lock_order(missing)
        placeholders = ", ".join(["(%s, %s, 0, 0, NOW(6))"] * len(rows))
        cursor.execute(
            f"INSERT IGNORE INTO balances (user_id, asset, total, held, updated_at) VALUES {placeholders}",
            [value for row in rows for value in row],
        )
