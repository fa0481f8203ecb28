"""The matcher's database side: its own connection, explicit transactions, every statement counted.

The matcher does not use Django's connection: Celery's Django fixup closes that one around tasks, and
Django's ``atomic()`` sends two ``SET autocommit`` statements per transaction. This connection stays
in ``autocommit=0``, so a batch costs its DML statements plus one ``COMMIT``:

1. ``UPDATE orders JOIN JSON_TABLE(...)`` for the orders the batch changed, in the same statement as
   the market's checkpoint row, which only matches while the epoch is still ours (fencing);
2. ``INSERT INTO trades SELECT ... FROM JSON_TABLE(...)``;
3. ``UPDATE balances JOIN JSON_TABLE(...)`` with each (user, asset)'s deltas;
4. ``COMMIT``.

Lock order: statement 3 locks balance rows one by one in the order of its JSON array, which
``Settlement.balance_rows`` builds in ``matching.core.lock_order.balance_lock_order``, the order
intake's hold takes them in too; so the matcher and intake never deadlock on balance rows. Statement 1
locks order rows first, but intake never locks an order row the matcher updates (it only inserts new
ones, which reach the matcher after intake's commit).

Each statement carries its rows as one JSON parameter, so the statement text (and the server's parse
work) stays the same whatever the batch size, and no row value is ever spliced into SQL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, NamedTuple

import MySQLdb
import MySQLdb.cursors
from django.conf import settings

from matching.worker.batch import Batch
from matching.worker.errors import BatchRejected, Fenced, MissingBalance

logger = logging.getLogger(__name__)

# Every JSON_TABLE join names the JSON rows first, joins with STRAIGHT_JOIN and forces the unique
# index: with stale table statistics (a growing table estimated at 1 or 2 rows) the optimizer
# otherwise scans the table once per JSON row (seen: 17,670 rows examined to update 37 balances,
# 60 ms instead of 0.6 ms). The plan must not depend on statistics.
_UPDATE_ORDERS = """
UPDATE JSON_TABLE(%s, '$[*]' COLUMNS (
    id BIGINT PATH '$[0]',
    status VARCHAR(16) PATH '$[1]',
    executed_quantity DECIMAL(30, 10) PATH '$[2]',
    executed_quote DECIMAL(30, 10) PATH '$[3]',
    average_price DECIMAL(30, 10) PATH '$[4]',
    fee DECIMAL(30, 10) PATH '$[5]',
    seq BIGINT PATH '$[6]',
    reason VARCHAR(200) PATH '$[7]'
)) AS v
STRAIGHT_JOIN orders AS o FORCE INDEX (PRIMARY) ON o.id = v.id
STRAIGHT_JOIN matcher_checkpoints AS c FORCE INDEX (PRIMARY) ON c.market_id = %s AND c.epoch = %s
SET o.status = v.status,
    o.executed_quantity = v.executed_quantity,
    o.executed_quote = v.executed_quote,
    o.average_price = v.average_price,
    o.fee = v.fee,
    o.seq = COALESCE(v.seq, o.seq),
    o.reject_reason = COALESCE(v.reason, o.reject_reason),
    o.updated_at = NOW(6),
    c.last_entry = %s,
    c.last_seq = %s,
    c.updated_at = NOW(6)
"""

_INSERT_TRADES = """
INSERT INTO trades (coin, currency, buy_order_id, sell_order_id, taker_side, price, quantity,
                    buyer_fee, seller_fee, created_at)
SELECT %s, %s, v.buy_order, v.sell_order, v.taker_side, v.price, v.quantity, v.buyer_fee, v.seller_fee, NOW(6)
FROM JSON_TABLE(%s, '$[*]' COLUMNS (
    buy_order BIGINT PATH '$[0]',
    sell_order BIGINT PATH '$[1]',
    taker_side VARCHAR(4) PATH '$[2]',
    price DECIMAL(30, 10) PATH '$[3]',
    quantity DECIMAL(30, 10) PATH '$[4]',
    buyer_fee DECIMAL(30, 10) PATH '$[5]',
    seller_fee DECIMAL(30, 10) PATH '$[6]'
)) AS v
"""

_UPDATE_BALANCES = """
UPDATE JSON_TABLE(%s, '$[*]' COLUMNS (
    user_id BIGINT PATH '$[0]',
    asset VARCHAR(16) PATH '$[1]',
    total DECIMAL(30, 10) PATH '$[2]',
    held DECIMAL(30, 10) PATH '$[3]'
)) AS v
STRAIGHT_JOIN balances AS b FORCE INDEX (uniq_balances_user_asset) ON b.user_id = v.user_id AND b.asset = v.asset
SET b.total = b.total + v.total, b.held = b.held + v.held, b.updated_at = NOW(6)
"""

# The orders a set of committed commands changed: their own, and every order they traded with (the
# makers a taker filled, or the takers that filled a maker), as the DB has them now. One statement,
# each lookup on an index: trades by buy_order_id (uniq_trades_buy_sell) and by sell_order_id (its
# foreign key's index), then orders by primary key.
_CHANGED_ORDERS = """
SELECT o.id, o.status, o.executed_quantity, o.executed_quote, o.average_price, o.fee
FROM (
    SELECT v.id FROM JSON_TABLE(%(ids)s, '$[*]' COLUMNS (id BIGINT PATH '$')) AS v
    UNION
    SELECT t.sell_order_id FROM JSON_TABLE(%(ids)s, '$[*]' COLUMNS (id BIGINT PATH '$')) AS v
    STRAIGHT_JOIN trades AS t FORCE INDEX (uniq_trades_buy_sell) ON t.buy_order_id = v.id
    UNION
    SELECT t.buy_order_id FROM JSON_TABLE(%(ids)s, '$[*]' COLUMNS (id BIGINT PATH '$')) AS v
    STRAIGHT_JOIN trades AS t FORCE INDEX (trades_sell_order_id_6f2e6599_fk_orders_id) ON t.sell_order_id = v.id
) AS changed
STRAIGHT_JOIN orders AS o FORCE INDEX (PRIMARY) ON o.id = changed.id
"""


class StoredOrder(NamedTuple):
    """An order's fields the matcher changes, as the DB holds them (``orders.cache.OrderChange``)."""

    id: int
    status: str
    executed_quantity: str
    executed_quote: str
    average_price: str | None
    fee: str


class OpenOrder(NamedTuple):
    """A resting order as the book needs it, amounts already in integer units."""

    id: int
    user_id: int
    side: str
    price: int  # ticks
    quantity: int  # lots
    filled: int  # lots executed
    quote: int  # executed quote in tick-lots
    fee: int  # base units (1e-10)
    seq: int


_OPEN_ORDERS = """
SELECT id, user_id, trade_type,
       CAST(price / %(tick)s AS SIGNED), CAST(quantity / %(lot)s AS SIGNED),
       CAST(executed_quantity / %(lot)s AS SIGNED), CAST(executed_quote / %(notional)s AS SIGNED),
       CAST(fee * 10000000000 AS SIGNED), COALESCE(seq, 0),
       MOD(price, %(tick)s) = 0 AND MOD(quantity, %(lot)s) = 0 AND MOD(executed_quantity, %(lot)s) = 0
       AND MOD(executed_quote, %(notional)s) = 0 AS on_grid
FROM orders
WHERE currency = %(currency)s AND coin = %(coin)s AND status IN ('pending', 'partially_filled')
ORDER BY seq
"""


class WaitingStop(NamedTuple):
    """A stop order waiting for its trigger (``stopping``), as its row holds it: amounts as ``Decimal``
    (they become the engine's place command, then the core's units)."""

    id: int
    user_id: int
    side: str
    type: str
    tif: str
    quantity: Decimal
    price: Decimal | None
    base_price: Decimal
    stop_condition: str
    held: Decimal
    seq: int


# Placement order (seq): the order waiting stops trigger in. Few rows next to the resting orders, so
# fetched at once; idx_orders_currency_coin_status finds them, a filesort orders them.
_WAITING_STOPS = """
SELECT id, user_id, trade_type, type, time_in_force, quantity, price, base_price, stop_condition, held, seq
FROM orders
WHERE currency = %(currency)s AND coin = %(coin)s AND status = 'stopping'
ORDER BY seq
"""

# The market's latest trade: the last entry of idx_trades_market_created (coin, currency, created_at,
# and the primary key InnoDB appends), so one index dive. A batch's trades share one NOW(6); their ids
# follow the order they were made in.
_LAST_TRADE_PRICE = """
SELECT price FROM trades FORCE INDEX (idx_trades_market_created)
WHERE coin = %s AND currency = %s
ORDER BY created_at DESC, id DESC
LIMIT 1
"""


class MatchStore:
    """A dedicated MySQLdb connection in explicit-transaction mode; ``statements`` counts every
    statement sent (COMMIT and ROLLBACK included), as the driver sends them."""

    def __init__(self) -> None:
        self.statements = 0
        self._conn: Any = None

    # -- connection ----------------------------------------------------------------------------

    def connect(self) -> None:
        db = settings.DATABASES["default"]
        self.close()
        self._conn = MySQLdb.connect(
            host=db["HOST"] or "127.0.0.1",
            port=int(db["PORT"] or 3306),
            user=db["USER"],
            password=db["PASSWORD"],
            database=db["NAME"],
            charset="utf8mb4",
            autocommit=False,
            connect_timeout=5,
            # Matched rather than changed rows: the fence check counts the checkpoint row even when
            # a batch leaves an order's values as they were.
            client_flag=MySQLdb.constants.CLIENT.FOUND_ROWS,
        )
        self._execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        self._commit()

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except MySQLdb.Error:
                logger.debug("closing a broken matcher connection", exc_info=True)
            self._conn = None

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def _ensure(self) -> None:
        if self._conn is None:
            self.connect()

    def _execute(self, sql: str, args: Any = None) -> Any:
        cursor = self._conn.cursor()
        self.statements += 1
        try:
            cursor.execute(sql, args)
        except MySQLdb.OperationalError:
            # A lost connection is useless afterwards; the next call reconnects.
            self.close()
            raise
        return cursor

    def _commit(self) -> None:
        self.statements += 1
        try:
            self._conn.commit()
        except MySQLdb.OperationalError:
            self.close()
            raise

    def _rollback(self) -> None:
        if self._conn is None:
            return
        self.statements += 1
        try:
            self._conn.rollback()
        except MySQLdb.Error:
            self.close()

    # -- start-up ------------------------------------------------------------------------------

    def claim_epoch(self, market_id: int) -> tuple[int, str, int]:
        """Bump the market's epoch (fencing out any former owner); returns (epoch, last_entry, last_seq)."""
        self._ensure()
        try:
            self._execute(
                "INSERT IGNORE INTO matcher_checkpoints (market_id, last_entry, last_seq, epoch, updated_at) "
                "VALUES (%s, '0-0', 0, 0, NOW(6))",
                [market_id],
            )
            self._execute("UPDATE matcher_checkpoints SET epoch = epoch + 1 WHERE market_id = %s", [market_id])
            cursor = self._execute(
                "SELECT epoch, last_entry, last_seq FROM matcher_checkpoints WHERE market_id = %s", [market_id]
            )
            epoch, last_entry, last_seq = cursor.fetchone()
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return int(epoch), str(last_entry), int(last_seq)

    def open_orders(self, coin: str, currency: str, tick: Decimal, lot: Decimal) -> Iterator[OpenOrder]:
        """The market's resting orders in time priority (``seq``), amounts in integer units.

        Streamed (a server-side cursor, 10,000 rows a fetch) and converted by MariaDB, so a book of a
        million orders is rebuilt without a million rows of ``Decimal`` objects in memory at once.
        Reads idx_orders_currency_coin_status. Raises ``ValueError`` for an amount off its grid.
        """
        self._ensure()
        cursor = self._conn.cursor(MySQLdb.cursors.SSCursor)
        self.statements += 1
        args = {"tick": tick, "lot": lot, "notional": tick * lot, "currency": currency, "coin": coin}
        try:
            cursor.execute(_OPEN_ORDERS, args)
            make = OpenOrder._make
            while rows := cursor.fetchmany(10_000):
                for row in rows:
                    if not row[-1]:  # the last column, on_grid: every amount is a whole number of steps
                        raise ValueError(f"order {row[0]}: an amount is off the market's tick or lot grid")
                    yield make(row[:-1])
        except MySQLdb.OperationalError:
            self.close()
            raise
        finally:
            if self._conn is not None:
                cursor.close()
        self._commit()

    def waiting_stops(self, coin: str, currency: str) -> list[WaitingStop]:
        """The market's waiting stop orders in placement order (``seq``)."""
        self._ensure()
        try:
            cursor = self._execute(_WAITING_STOPS, {"currency": currency, "coin": coin})
            rows = [WaitingStop._make(row) for row in cursor.fetchall()]
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return rows

    def last_trade_price(self, coin: str, currency: str) -> Decimal | None:
        """The price of the market's latest trade, None when it never traded (stops then wait)."""
        self._ensure()
        try:
            cursor = self._execute(_LAST_TRADE_PRICE, [coin, currency])
            row = cursor.fetchone()
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return None if row is None else Decimal(row[0])

    # -- the batch -----------------------------------------------------------------------------

    def write_batch(self, batch: Batch, *, epoch: int) -> None:
        """Write a batch's effects and its checkpoint in one transaction, under ``epoch``.

        Raises ``Fenced``, ``BatchRejected`` or ``MissingBalance`` (rolled back), or the driver's error
        (rolled back, or connection dropped). The rows serialize as JSON arrays (they are named tuples
        in column order).
        """
        effects = batch.effects
        if not effects:
            return  # nothing changed (only rejected cancels): no checkpoint needed to replay those
        spec = effects.spec
        orders = list(effects.orders.values())
        self._ensure()
        dumps = json.dumps
        try:
            cursor = self._execute(_UPDATE_ORDERS, [dumps(orders), spec.id, epoch, batch.last_entry, batch.last_seq])
            if cursor.rowcount != len(orders) + 1:
                self._rollback()
                if cursor.rowcount == 0:
                    raise Fenced(f"market {spec.code}: epoch {epoch} is no longer current")
                raise BatchRejected(f"batch updated {cursor.rowcount - 1} of {len(orders)} orders")
            if effects.trades:
                self._execute(_INSERT_TRADES, [spec.coin, spec.currency, dumps(effects.trades)])
            if balances := effects.balance_rows():
                cursor = self._execute(_UPDATE_BALANCES, [dumps(balances)])
                if cursor.rowcount != len(balances):
                    self._rollback()
                    raise MissingBalance(f"{len(balances) - cursor.rowcount} balance rows are missing")
            self._commit()
        except (Fenced, BatchRejected, MissingBalance):
            raise
        except BaseException:
            self._rollback()
            raise

    def changed_orders(self, order_ids: list[int]) -> list[StoredOrder]:
        """The committed state of ``order_ids`` and of every order that traded with one of them.

        For recovery only (entries acknowledged by the checkpoint, whose cache writes may have been
        lost): one indexed statement and a ``COMMIT`` that ends the read.
        """
        self._ensure()
        try:
            cursor = self._execute(_CHANGED_ORDERS, {"ids": json.dumps(order_ids)})
            rows = [
                StoredOrder(int(i), status, str(q), str(quote), None if price is None else str(price), str(fee))
                for i, status, q, quote, price, fee in cursor.fetchall()
            ]
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return rows
