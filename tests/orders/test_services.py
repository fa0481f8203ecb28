from __future__ import annotations

import json
from decimal import Decimal

import pytest

from bench.feed import publish_reference
from orders.cache import cached_order
from orders.errors import InsufficientFunds, OrderRejected
from orders.models import Balance, Order
from orders.outbox import order_sweep_unqueued
from orders.services import OrderRequest, order_cancel_all, order_place, order_place_many
from tests.factories import BalanceFactory, MarketFactory, UserFactory

pytestmark = pytest.mark.django_db

STREAM = "orders:btc_usdt"


@pytest.fixture
def market(redis_client):
    return MarketFactory(coin="btc", currency="usdt")


def _funded(usdt: str = "100000", btc: str | None = None):
    user = UserFactory()
    BalanceFactory(user=user, asset="usdt", total=Decimal(usdt))
    if btc is not None:
        BalanceFactory(user=user, asset="btc", total=Decimal(btc))
    return user


def _held(user, asset: str) -> Decimal:
    return Balance.objects.get(user=user, asset=asset).held


# -- order_place_many: all or none -------------------------------------------------------------------


def test_a_batch_with_one_user_short_of_funds_writes_nothing_for_anyone(market, redis_client):
    rich, poor = _funded("100000"), _funded("10")
    requests = [
        OrderRequest(rich.pk, "buy", "limit", Decimal("1"), Decimal("100")),
        OrderRequest(poor.pk, "buy", "limit", Decimal("1"), Decimal("100")),
    ]

    with pytest.raises(InsufficientFunds) as error:
        order_place_many(market=market, requests=requests)

    assert f"user {poor.pk}" in error.value.message
    assert Order.objects.count() == 0
    assert (_held(rich, "usdt"), _held(poor, "usdt")) == (0, 0)
    # The rows the orders would receive into are created before the hold transaction: empty, harmless.
    assert all(b.total == b.held == 0 for b in Balance.objects.filter(asset="btc"))
    assert redis_client.xlen(STREAM) == 0


def test_a_batch_with_one_invalid_order_writes_nothing(market, redis_client):
    user = _funded()
    requests = [
        OrderRequest(user.pk, "buy", "limit", Decimal("1"), Decimal("100")),
        OrderRequest(user.pk, "buy", "limit", Decimal("1"), Decimal("100.001")),  # off the tick grid
    ]

    with pytest.raises(OrderRejected):
        order_place_many(market=market, requests=requests)

    assert Order.objects.count() == 0
    assert _held(user, "usdt") == 0
    assert redis_client.xlen(STREAM) == 0


def test_a_batch_of_several_users_holds_each_users_funds(market, redis_client):
    alice, bob = _funded("1000"), _funded("0", btc="2")
    requests = [
        OrderRequest(alice.pk, "buy", "limit", Decimal("2"), Decimal("100")),
        OrderRequest(alice.pk, "buy", "limit", Decimal("1"), Decimal("150.50")),
        OrderRequest(bob.pk, "sell", "limit", Decimal("1.5"), Decimal("200")),
    ]

    orders = order_place_many(market=market, requests=requests)

    assert [o.status for o in orders] == ["new", "new", "new"]
    assert _held(alice, "usdt") == Decimal("350.50")
    assert _held(bob, "btc") == Decimal("1.5")
    assert redis_client.xlen(STREAM) == 3


# -- holds -------------------------------------------------------------------------------------------


def test_a_limit_buy_holds_price_times_quantity_in_the_quote_asset(market, redis_client):
    user = _funded("1000")

    order = order_place(user=user, market=market, side="buy", order_type="limit", quantity="0.1234", price="250.01")

    assert order.held == Decimal("30.851234")
    assert _held(user, "usdt") == Decimal("30.851234")


def test_a_limit_sell_holds_the_quantity_in_the_base_asset(market, redis_client):
    user = _funded("0", btc="1")

    order = order_place(user=user, market=market, side="sell", order_type="limit", quantity="0.75", price="99.99")

    assert order.held == Decimal("0.75")
    assert (_held(user, "btc"), _held(user, "usdt")) == (Decimal("0.75"), 0)


def test_a_market_sell_holds_the_quantity_and_needs_no_book(market, redis_client):
    user = _funded("0", btc="1")

    order = order_place(user=user, market=market, side="sell", order_type="market", quantity="0.5")

    assert (order.held, order.time_in_force, order.price) == (Decimal("0.5"), "ioc", None)


def test_a_market_buy_holds_quantity_times_best_ask_plus_collar_rounded_up_to_the_notional_step(market, redis_client):
    user = _funded("1000")
    publish_reference(redis_client, market, Decimal("100.37"))

    order = order_place(user=user, market=market, side="buy", order_type="market", quantity="0.0123")

    # 0.0123 x 100.37 x 1.05 = 1.29627855, up to the step tick x lot = 0.000001
    assert order.held == Decimal("1.296279")
    assert _held(user, "usdt") == Decimal("1.296279")
    assert order.time_in_force == "ioc"


def test_a_market_buy_without_a_published_book_is_rejected_naming_the_type(market, redis_client):
    user = _funded("1000")

    with pytest.raises(OrderRejected) as error:
        order_place(user=user, market=market, side="buy", order_type="market", quantity="0.01")

    assert error.value.field == "type"
    assert Order.objects.count() == 0
    assert _held(user, "usdt") == 0


def test_a_buy_creates_the_balance_row_of_the_asset_it_will_receive(market, redis_client):
    user = _funded("1000")
    assert not Balance.objects.filter(user=user, asset="btc").exists()

    order_place(user=user, market=market, side="buy", order_type="limit", quantity="1", price="100")

    btc = Balance.objects.get(user=user, asset="btc")
    assert (btc.total, btc.held) == (0, 0)


# -- stop orders: held like the order they become ----------------------------------------------------


def _stop(user, market, **fields):
    values = {"side": "buy", "order_type": "stop_limit", "quantity": "0.5", "price": "101", "base_price": "100"}
    values.update(fields)
    values.setdefault("stop_condition", "ge")
    return order_place(user=user, market=market, **values)


def test_a_stop_limit_buy_holds_price_times_quantity_and_keeps_its_trigger(market, redis_client):
    user = _funded("1000")

    order = _stop(user, market, time_in_force="ioc")

    assert (order.held, order.status, order.time_in_force) == (Decimal("50.5"), "new", "ioc")
    row = Order.objects.get(id=order.id)
    assert (row.type, row.base_price, row.stop_condition, row.price) == ("stop_limit", 100, "ge", 101)
    assert _held(user, "usdt") == Decimal("50.5")
    assert redis_client.xlen(STREAM) == 1


def test_a_stop_limit_sell_holds_its_quantity(market, redis_client):
    user = _funded("0", btc="1")

    order = _stop(user, market, side="sell", stop_condition="le")

    assert (order.held, _held(user, "btc")) == (Decimal("0.5"), Decimal("0.5"))


def test_a_stop_market_sell_holds_its_quantity_and_needs_no_book(market, redis_client):
    user = _funded("0", btc="1")

    order = _stop(user, market, side="sell", order_type="stop_market", price=None, stop_condition="le")

    assert (order.held, order.time_in_force, order.price) == (Decimal("0.5"), "ioc", None)


def test_a_stop_market_buy_holds_a_budget_priced_at_its_base_price_and_needs_no_book(market, redis_client):
    user = _funded("1000")

    order = _stop(user, market, order_type="stop_market", price=None, quantity="0.0123", base_price="100.37")

    # 0.0123 x 100.37 x 1.05 = 1.29627855, up to the step tick x lot = 0.000001
    assert (order.held, order.time_in_force) == (Decimal("1.296279"), "ioc")
    assert _held(user, "usdt") == Decimal("1.296279")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"base_price": None}, "base_price"),
        ({"base_price": "0"}, "base_price"),
        ({"base_price": "-5"}, "base_price"),
        ({"base_price": "100.001"}, "base_price"),  # off the tick grid
        ({"base_price": "abc"}, "base_price"),
        ({"stop_condition": None}, "stop_condition"),
        ({"stop_condition": "gt"}, "stop_condition"),
        ({"price": None}, "price"),  # a stop limit needs its limit price
        ({"order_type": "stop_market"}, "price"),  # a stop market takes none
        ({"order_type": "limit"}, "base_price"),  # other types take no trigger
        ({"order_type": "limit", "base_price": None}, "stop_condition"),
        ({"order_type": "stop_loss"}, "type"),
    ],
)
def test_a_stop_order_with_a_bad_trigger_or_price_is_rejected_naming_the_field(market, redis_client, fields, field):
    user = _funded("1000")

    with pytest.raises(OrderRejected) as error:
        _stop(user, market, **fields)

    assert error.value.field == field
    assert Order.objects.count() == 0 and _held(user, "usdt") == 0


def test_a_limit_order_with_an_empty_stop_condition_is_accepted(market, redis_client):
    user = _funded("1000")

    order = order_place(
        user=user, market=market, side="buy", order_type="limit", quantity="1", price="100", stop_condition=""
    )

    assert (order.base_price, order.stop_condition) == (None, "")


# -- cancel all ----------------------------------------------------------------------------------------


def _cancels(redis_client) -> list[int]:
    entries = redis_client.xrange(STREAM)
    return [json.loads(fields[b"c"])["id"] for _, fields in entries if json.loads(fields[b"c"])["op"] == "cancel"]


def test_cancel_all_asks_to_cancel_each_open_order_of_the_user_that_matches(market, redis_client):
    user, other = _funded("10000", btc="10"), _funded("10000")
    MarketFactory(coin="eth", currency="usdt")
    limit = order_place(user=user, market=market, side="buy", order_type="limit", quantity="1", price="100")
    stop = _stop(user, market)
    sell = order_place(user=user, market=market, side="sell", order_type="limit", quantity="1", price="200")
    done = order_place(user=user, market=market, side="buy", order_type="limit", quantity="1", price="99")
    Order.objects.filter(id=done.id).update(status="executed")
    Order.objects.filter(id=stop.id).update(status="stopping")
    theirs = order_place(user=other, market=market, side="buy", order_type="limit", quantity="1", price="100")

    assert [o.id for o in order_cancel_all(user=user, order_type="stop_limit")] == [stop.id]
    assert {o.id for o in order_cancel_all(user=user, currency="usdt", coin="btc")} == {limit.id, stop.id, sell.id}
    assert order_cancel_all(user=user, coin="eth") == []
    assert order_cancel_all(user=user, currency="USDT") == []  # codes compare exactly

    assert _cancels(redis_client) == [stop.id, limit.id, stop.id, sell.id]
    assert theirs.id not in _cancels(redis_client)


def test_cancel_all_with_an_unknown_type_is_rejected_naming_the_type(market, redis_client):
    user = _funded()

    with pytest.raises(OrderRejected) as error:
        order_cancel_all(user=user, order_type="iceberg")

    assert error.value.field == "type"


# -- after commit: stream and cache ------------------------------------------------------------------


def test_an_accepted_order_lands_in_its_market_stream_once_and_in_the_cache(market, redis_client):
    user = _funded("1000")

    order = order_place(user=user, market=market, side="buy", order_type="limit", quantity="1", price="100")
    pushed_again = order_sweep_unqueued(older_than_s=-60)

    assert redis_client.xlen(STREAM) == 1
    assert pushed_again == 0  # the push-once marker stops the sweeper's duplicate
    cached = cached_order(redis_client, order.id)
    assert (cached["user"], cached["status"], cached["market"]) == (str(user.pk), "new", "btc_usdt")


# -- lock order, balance rows outside the hold transaction, lock retries ----------------------------
#
# These tests use several real connections at once, so their rows must be committed: transaction=True.


def _raw_connection():
    """A MySQLdb connection of its own to the test database, READ COMMITTED as the web's and the
    matcher's are, in explicit-transaction mode."""
    import MySQLdb
    from django.conf import settings

    db = settings.DATABASES["default"]
    conn = MySQLdb.connect(
        host=db["HOST"] or "127.0.0.1",
        port=int(db["PORT"] or 3306),
        user=db["USER"],
        password=db["PASSWORD"],
        database=db["NAME"],
        charset="utf8mb4",
        autocommit=False,
    )
    conn.cursor().execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    return conn


def _wait_until_locked(user_id: int, asset: str, timeout: float = 10.0) -> None:
    """Until another transaction holds the balance row's lock. (Not information_schema.innodb_trx: the
    server refreshes that snapshot only after 100 ms without a reader, which a concurrent poller
    anywhere on the server can postpone indefinitely.)"""
    from tests.pipeline.conftest import wait_until

    wait_until(lambda: _locked(user_id, asset), timeout, interval=0.01, message=f"({user_id}, {asset}) to be locked")


def _locked(user_id: int, asset: str) -> bool:
    """Whether another transaction holds the balance row's lock (asked with NOWAIT: never waits)."""
    import MySQLdb

    probe = _raw_connection()
    try:
        probe.cursor().execute(
            "SELECT id FROM balances WHERE user_id = %s AND asset = %s FOR UPDATE NOWAIT", [user_id, asset]
        )
        return False
    except MySQLdb.OperationalError as exc:
        assert exc.args[0] in (1205, 3572), exc  # lock wait timeout / NOWAIT: the row is locked
        return True
    finally:
        probe.rollback()
        probe.close()


def _hold_rows(user_id: int, assets: list[str]) -> list:
    return [[user_id, asset, "1"] for asset in assets]


def _settle_rows(user_id: int, assets: list[str]) -> list:
    return [[user_id, asset, "0", "0"] for asset in assets]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("statement", ["intake's hold", "the matcher's balance update"])
@pytest.mark.parametrize("json_order", [["btc", "eth", "usdt"], ["usdt", "eth", "btc"]])
def test_the_balance_updates_of_intake_and_the_matcher_lock_rows_in_the_order_of_their_json_rows(statement, json_order):
    import json
    import threading

    from matching.worker.store import _UPDATE_BALANCES
    from orders.balances import _HOLD

    user = UserFactory()
    for asset in ("btc", "eth", "usdt"):
        BalanceFactory(user=user, asset=asset, total=Decimal("10"))
    sql, rows = (_HOLD, _hold_rows) if statement == "intake's hold" else (_UPDATE_BALANCES, _settle_rows)
    holder, runner = _raw_connection(), _raw_connection()
    holder.cursor().execute("SELECT id FROM balances WHERE user_id = %s AND asset = 'eth' FOR UPDATE", [user.pk])
    run = threading.Thread(target=lambda: runner.cursor().execute(sql, [json.dumps(rows(user.pk, json_order))]))
    run.start()
    first, last = json_order[0], json_order[-1]
    try:
        # Locks its first JSON row, then waits at the middle one, eth, which the holder has; in any
        # other order (the index's, say) the first row of the reversed array would never be locked.
        _wait_until_locked(user.pk, first)

        assert not _locked(user.pk, last), f"{statement} had locked {last}, its last JSON row, already"
    finally:
        holder.rollback()
        run.join(10)
        runner.rollback()
        holder.close()
        runner.close()


@pytest.mark.django_db(transaction=True)
def test_balance_hold_sends_its_rows_in_the_lock_order_whatever_order_it_is_given():
    import threading

    from django.db import connection, transaction

    from orders.balances import balance_hold

    user = UserFactory()
    for asset in ("btc", "eth", "usdt"):
        BalanceFactory(user=user, asset=asset, total=Decimal("10"))
    holder = _raw_connection()
    holder.cursor().execute("SELECT id FROM balances WHERE user_id = %s AND asset = 'eth' FOR UPDATE", [user.pk])

    def hold() -> None:
        try:
            with transaction.atomic():
                balance_hold({(user.pk, asset): Decimal("1") for asset in ("usdt", "eth", "btc")})
        finally:
            connection.close()

    run = threading.Thread(target=hold)
    run.start()
    try:
        _wait_until_locked(user.pk, "btc")  # then it waits at eth, which the holder has

        assert not _locked(user.pk, "usdt")
    finally:
        holder.rollback()
        holder.close()
        run.join(10)
    assert _held(user, "btc") == _held(user, "eth") == _held(user, "usdt") == 1


@pytest.mark.django_db(transaction=True)
def test_the_hold_transaction_locks_balance_rows_only_by_its_update_and_the_receiving_row_is_created_before_it(
    market, redis_client
):
    from django.db import connection

    user = _funded("1000")  # no btc row yet: this buy creates it
    statements: list[tuple[bool, str]] = []

    def record(execute, sql, params, many, context):
        statements.append((connection.in_atomic_block, " ".join(sql.split())))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        order_place(user=user, market=market, side="buy", order_type="limit", quantity="1", price="100")

    inside = [sql for in_transaction, sql in statements if in_transaction]
    outside = [sql for in_transaction, sql in statements if not in_transaction]
    assert [sql.split()[0] for sql in inside] == ["UPDATE", "INSERT"], inside
    assert "balances" in inside[0] and inside[1].startswith("INSERT INTO `orders`"), inside
    assert [sql.split()[:3] for sql in outside if "balances" in sql] == [
        ["SELECT", "b.user_id,", "b.asset"],
        ["INSERT", "IGNORE", "INTO"],
    ], outside
    btc = Balance.objects.get(user=user, asset="btc")
    assert (btc.total, btc.held) == (0, 0)


@pytest.mark.django_db(transaction=True)
def test_a_receiving_row_that_exists_is_only_read_not_inserted(market, redis_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    user = _funded("1000", btc="0")

    with CaptureQueriesContext(connection) as queries:
        order_place(user=user, market=market, side="buy", order_type="limit", quantity="1", price="100")

    assert not [q["sql"] for q in queries if "INSERT IGNORE" in q["sql"]]


def _retries(reason: str) -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value("spot_intake_lock_retries_total", {"market": "btc_usdt", "error": reason})
    return value or 0.0


def _deadlock_the_hold(market, alice, bob, *, in_callers_transaction: bool = False) -> dict:
    """A real deadlock: another transaction has (bob, usdt) and asks for (alice, usdt) while the hold
    of a batch for both has (alice, usdt) and waits for (bob, usdt). The other transaction has
    changed more rows, so MariaDB rolls back the lighter one, intake's. Returns what the placement
    returned (``orders``) or raised (``error``)."""
    import threading

    from django.db import connection, transaction

    ballast = [_funded("1") for _ in range(5)]
    requests = [
        OrderRequest(alice.pk, "buy", "limit", Decimal("1"), Decimal("100")),
        OrderRequest(bob.pk, "buy", "limit", Decimal("2"), Decimal("100")),
    ]
    other = _raw_connection()
    cursor = other.cursor()
    for user in ballast:  # weight: InnoDB picks the transaction that changed fewer rows as the victim
        cursor.execute("UPDATE balances SET updated_at = NOW(6) WHERE user_id = %s", [user.pk])
    cursor.execute("UPDATE balances SET updated_at = NOW(6) WHERE user_id = %s AND asset = 'usdt'", [bob.pk])
    result: dict = {}

    def place() -> None:
        try:
            if in_callers_transaction:
                with transaction.atomic():
                    result["orders"] = order_place_many(market=market, requests=requests)
            else:
                result["orders"] = order_place_many(market=market, requests=requests)
        except Exception as exc:  # noqa: BLE001 - any failure is the main thread's to report
            result["error"] = exc
        finally:
            connection.close()

    run = threading.Thread(target=place)
    run.start()
    try:
        _wait_until_locked(alice.pk, "usdt")  # the hold has (alice, usdt) and waits for (bob, usdt)
        cursor.execute("UPDATE balances SET updated_at = NOW(6) WHERE user_id = %s AND asset = 'usdt'", [alice.pk])
    finally:
        other.commit()
        other.close()
        run.join(10)
    return result


@pytest.mark.django_db(transaction=True)
def test_a_hold_transaction_chosen_as_a_deadlock_victim_is_run_again_and_its_orders_accepted_once(
    market, redis_client, caplog
):
    alice, bob = _funded("1000"), _funded("1000")
    before = _retries("deadlock")

    result = _deadlock_the_hold(market, alice, bob)

    assert "error" not in result, result.get("error")
    assert _retries("deadlock") == before + 1
    assert "deadlock in the hold transaction of 2 orders; retry 1 of 2" in caplog.text
    orders = result["orders"]
    assert Order.objects.filter(id__in=[o.id for o in orders]).count() == 2
    assert (_held(alice, "usdt"), _held(bob, "usdt")) == (100, 200)  # held once, not once per attempt
    assert redis_client.xlen(STREAM) == 2


@pytest.mark.django_db(transaction=True)
def test_inside_a_callers_transaction_a_deadlock_is_not_retried_since_the_callers_work_is_gone_too(
    market, redis_client
):
    from django.db import OperationalError

    alice, bob = _funded("1000"), _funded("1000")
    before = _retries("deadlock")

    result = _deadlock_the_hold(market, alice, bob, in_callers_transaction=True)

    assert isinstance(result.get("error"), OperationalError) and result["error"].args[0] == 1213
    assert _retries("deadlock") == before
    assert Order.objects.count() == 0
    assert (_held(alice, "usdt"), _held(bob, "usdt")) == (0, 0)
    assert redis_client.xlen(STREAM) == 0


@pytest.mark.django_db(transaction=True)
def test_lock_wait_timeouts_are_retried_and_after_the_last_retry_the_error_surfaces_with_nothing_written(
    market, redis_client, settings
):
    """Another transaction keeps the row locked longer than every attempt waits: each attempt times out
    (1205, the session's lock wait shortened to 1 s), and after INTAKE_LOCK_RETRIES retries the
    OperationalError reaches the caller (the API answers it 503). Nothing is held, stored or pushed."""
    from django.db import OperationalError, connection

    settings.INTAKE_LOCK_RETRIES = 1
    user = _funded("1000")
    before = _retries("lock_wait_timeout")
    other = _raw_connection()
    other.cursor().execute("SELECT id FROM balances WHERE user_id = %s AND asset = 'usdt' FOR UPDATE", [user.pk])
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")
        with pytest.raises(OperationalError) as error:
            order_place(user=user, market=market, side="buy", order_type="limit", quantity="1", price="100")
    finally:
        other.rollback()
        other.close()
        connection.close()  # the next test gets a connection with the server's lock wait timeout

    assert error.value.args[0] == 1205
    assert _retries("lock_wait_timeout") == before + 1
    assert Order.objects.count() == 0
    assert _held(user, "usdt") == 0
    assert redis_client.xlen(STREAM) == 0


@pytest.mark.parametrize(
    ("quantity", "price", "field", "message"),
    [
        ("0.2", "100", "quantity", "quantity must be at least 0.3"),
        ("0.35", "100", "quantity", "quantity must be a multiple of the lot size 0.1"),
        ("0.3", "105", "price", "price must be a multiple of the tick size 10"),
        ("0.3", "10", "quantity", "price x quantity must be at least 10"),
    ],
)
def test_a_refusal_names_the_market_rule_in_plain_decimals(redis_client, quantity, price, field, message):
    # Decimal("1E+1").normalize() would print the rule as "1E+1": traders read "10".
    market = MarketFactory(
        tick_size=Decimal("10"),
        lot_size=Decimal("0.1"),
        min_quantity=Decimal("0.3000"),
        min_notional=Decimal("10.00"),
    )
    with pytest.raises(OrderRejected) as refused:
        order_place(user=_funded(), market=market, side="buy", order_type="limit", quantity=quantity, price=price)

    assert (refused.value.field, refused.value.message) == (field, message)


def test_the_rows_intake_inserts_read_back_as_the_orders_it_returned(market, redis_client):
    # Intake writes its INSERT itself (not through bulk_create): every column must read back as the
    # instance it returned, times included, for each shape of order.
    trader = _funded(btc="10")
    requests = [
        OrderRequest(trader.pk, "buy", "limit", Decimal("0.5"), Decimal("100.25"), "ioc", client_order_id="a b~"),
        OrderRequest(
            trader.pk,
            "sell",
            "stop_limit",
            Decimal("0.1"),
            Decimal("90"),
            base_price=Decimal("95"),
            stop_condition="le",
        ),
        OrderRequest(trader.pk, "buy", "stop_market", Decimal("0.2"), base_price=Decimal("120"), stop_condition="ge"),
    ]

    placed = order_place_many(market=market, requests=requests)

    fields = [f.attname for f in Order._meta.concrete_fields]
    for order in placed:
        stored = Order.objects.get(pk=order.pk)
        assert {f: getattr(stored, f) for f in fields} == {f: getattr(order, f) for f in fields}
        assert not order._state.adding
    assert placed[0].created_at == placed[0].updated_at and placed[0].created_at.tzinfo is not None
    assert [o.client_order_id for o in Order.objects.order_by("id")] == ["a b~", None, None]
