from __future__ import annotations

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


def _index_columns(table: str) -> dict[str, list[str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT index_name, column_name FROM information_schema.statistics
            WHERE table_schema = DATABASE() AND table_name = %s
            ORDER BY index_name, seq_in_index
            """,
            [table],
        )
        indexes: dict[str, list[str]] = {}
        for name, column in cursor.fetchall():
            indexes.setdefault(name, []).append(column)
    return indexes


def test_the_orders_table_has_the_fr_db_001_indexes_with_their_columns_in_order():
    indexes = _index_columns("orders")

    assert indexes["idx_orders_currency_coin_status"] == ["currency", "coin", "status"]
    assert indexes["idx_orders_status_updated"] == ["status", "updated_at"]
    assert indexes["idx_orders_user_currency_coin"] == ["user_id", "currency", "coin"]


def test_the_database_runs_mariadb_with_utf8mb4_and_read_committed():
    with connection.cursor() as cursor:
        cursor.execute("SELECT VERSION(), @@character_set_connection, @@tx_isolation")
        version, charset, isolation = cursor.fetchone()

    assert "MariaDB" in version
    assert charset == "utf8mb4"
    assert isolation == "READ-COMMITTED"


def test_amount_columns_are_exact_decimals():
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT table_name, column_name, data_type, numeric_precision, numeric_scale
            FROM information_schema.columns
            WHERE table_schema = DATABASE()
              AND column_name IN ('quantity', 'price', 'total', 'held', 'executed_quantity', 'fee')
              AND table_name IN ('orders', 'trades', 'balances')
            """
        )
        columns = cursor.fetchall()

    assert len(columns) >= 8
    for table, column, data_type, precision, scale in columns:
        assert (data_type, precision, scale) == ("decimal", 30, 10), f"{table}.{column}"


def test_balances_cannot_go_negative_in_the_database():
    from django.db import IntegrityError, transaction

    from tests.factories import UserFactory

    user = UserFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO balances (user_id, asset, total, held, updated_at) VALUES (%s, 'usdt', -1, 0, NOW(6))",
                [user.id],
            )


def test_order_ids_come_in_distinct_blocks_from_the_sequence():
    from orders.ids import BLOCK_SIZE, OrderIdAllocator

    first, second = OrderIdAllocator(), OrderIdAllocator()
    a = first.take(3)
    b = second.take(BLOCK_SIZE + 5)

    assert a == [a[0], a[0] + 1, a[0] + 2]
    assert len(set(b)) == BLOCK_SIZE + 5
    assert not set(a) & set(b)


def test_a_market_whose_tick_times_lot_is_finer_than_the_amount_scale_is_refused():
    from decimal import Decimal

    from django.core.exceptions import ValidationError

    from orders.models import Market

    market = Market(coin="dust", currency="usdt", tick_size=Decimal("0.000001"), lot_size=Decimal("0.00001"))

    with pytest.raises(ValidationError, match=r"multiple of 0\.0000000001"):
        market.full_clean()
