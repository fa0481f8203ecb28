"""The matching path against the replay oracle and its statement budget, with the engine in this
process (the process-level tests start real workers)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bench import feed, workload
from orders import invariants
from orders.models import Order, OrderStatus
from tests.conftest import drain_all

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stream(market, traders, redis_client):
    feed.publish_reference(redis_client, market, Decimal("30000.20"))
    commands = workload.generate(1500, seed=11, users=len(traders))
    items = feed.accept(market, [u.id for u in traders], commands)
    feed.push(redis_client, market, items)
    return [json for json, _ in items]


def test_the_pipeline_makes_the_same_trades_and_statuses_as_the_replay(engine, market, stream):
    totals_before = invariants.asset_totals(["btc", "usdt"])

    assert drain_all(engine) == len(stream)

    assert invariants.trades_against_replay(market, stream) == []
    assert invariants.holds(market) == []
    assert invariants.crossed_book(market) == []
    assert invariants.duplicate_trades(market) == []
    assert invariants.conservation(totals_before, invariants.asset_totals(["btc", "usdt"])) == []
    assert not Order.objects.filter(status=OrderStatus.NEW).exists()


def test_the_matching_path_sends_at_most_one_statement_per_ten_orders_at_batch_size_50(engine, stream):
    before = engine.store.statements

    handled = drain_all(engine)

    assert engine.batch_size == 50
    statements = engine.store.statements - before
    print(f"statements per command: {statements}/{handled} = {statements / handled:.3f}")
    assert statements / handled <= 0.1, f"{statements} statements for {handled} commands"


def test_a_rebuilt_book_equals_the_book_in_memory(engine, market, stream):
    drain_all(engine)
    in_memory = [(o.id, o.price, o.remaining, o.seq) for o in engine.matcher.book.orders()]

    engine.stop()
    engine.start()

    assert [(o.id, o.price, o.remaining, o.seq) for o in engine.matcher.book.orders()] == in_memory
    assert in_memory, "the workload leaves orders resting"


def test_the_statements_the_store_counts_are_the_statements_the_server_received_on_its_connection(engine, stream):
    # Asked on the store's own connection: SESSION status counts that session alone, whatever other
    # connections (this test's, other tests') send meanwhile. Asked on the writer's thread, which owns
    # the store while the engine runs (nothing is in flight between drains, so nothing else runs there).
    conn = engine.store._conn
    thread_id = conn.thread_id()

    def questions() -> int:
        cursor = conn.cursor()
        cursor.execute("SHOW SESSION STATUS LIKE 'Questions'")
        return int(cursor.fetchone()[1])

    before_server, before_counted = engine.writer.call(questions), engine.store.statements
    batches_before = engine.writer.batches
    handled = drain_all(engine)
    after_server, after_counted = engine.writer.call(questions), engine.store.statements
    batches = engine.writer.batches - batches_before

    assert engine.store._conn is conn and conn.thread_id() == thread_id, "one session throughout: no reconnect"
    counted = after_counted - before_counted
    # The server counts a statement as it starts it: the second SHOW is in the server's window (and not
    # in the store's, which did not send it), the first is not. Each COMMIT is a statement to both: the
    # driver's commit() sends the query "COMMIT".
    assert after_server - before_server - 1 == counted
    assert handled == len(stream)
    # Every batch of this stream changes orders, trades and balances: UPDATE orders (with the checkpoint),
    # INSERT trades, UPDATE balances, COMMIT.
    assert (batches, counted) == (len(stream) // engine.batch_size, 4 * batches)
