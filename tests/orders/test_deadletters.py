"""The dead letter queue's services (orders.deadletters), its record task, the sweeper's part and the
project's task base class dead-lettering a task: real MariaDB, Redis and broker, matched in-process.

``transaction=True``: two operators requeue from two threads (two DB connections), and the in-process
matcher writes through its own connection.
"""

from __future__ import annotations

import logging
import random
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from celery.app.task import Task
from django.db import OperationalError, connection
from django.utils import timezone
from prometheus_client import CollectorRegistry

from matching.commands import encode
from matching.queue import RedisStreamOrderQueue
from orders import invariants
from orders.deadletters import (
    dead_letter_check_payload,
    dead_letter_collector,
    dead_letter_discard,
    dead_letter_purge,
    dead_letter_record,
    dead_letter_requeue,
    dead_letters_dead_count,
)
from orders.errors import DeadLetterNotFound, DeadLetterNotRequeueable, InvalidInput
from orders.models import Balance, DeadLetter, Order
from orders.outbox import order_command, order_sweep_unqueued
from orders.services import OrderRequest, order_place, order_place_many
from spot import keys
from spot.celery import app
from spot.correlation import CorrelationIdFilter
from tests.conftest import drain_all
from tests.dead_letter_queue import empty_dead_letter_queue, record_dead_letters, waiting_dead_letters

pytestmark = pytest.mark.django_db(transaction=True)

CID = "20260123-a1b2c3d4e5f67890"


@pytest.fixture(autouse=True)
def _empty_broker_queue():
    empty_dead_letter_queue()
    yield
    empty_dead_letter_queue()


def _accepted(market, trader, side="buy", price="100.00", quantity="0.5") -> Order:
    """An accepted `new` order that never reached the stream (holding its funds)."""
    [order] = order_place_many(
        market=market,
        requests=[OrderRequest(trader.id, side, "limit", Decimal(quantity), Decimal(price))],
        enqueue=False,
    )
    return order


def _dead_place(market, order, *, payload=None, entry_id="1700000000000-0", **extra) -> DeadLetter:
    """The dead letter of ``order``'s place entry, as the record task stores it."""
    text = encode(order_command(order, CID)) if payload is None else payload
    letter, _ = dead_letter_record(
        market=market.code,
        entry_id=entry_id,
        reason="malformed command: something",
        correlation_id=CID,
        reason_kind="malformed",
        fields={"c": text},
        payload=text,
        deliveries=3,
        **extra,
    )
    return letter


# -- recording ---------------------------------------------------------------------------------


def test_the_same_dead_letter_recorded_twice_is_one_row_counted_once(market, redis_client):
    first, created = dead_letter_record(
        market=market.code,
        entry_id="5-0",
        reason="malformed command: not valid JSON",
        correlation_id=CID,
        reason_kind="malformed",
        fields={"foo": "bar"},
        payload="",
        deliveries=3,
        failed_at="2026-01-23T10:00:00+00:00",
    )
    again, created_again = dead_letter_record(
        market=market.code,
        entry_id="5-0",
        reason="malformed command: not valid JSON",
        correlation_id=CID,
        reason_kind="malformed",
        deliveries=4,
        failed_at="2026-01-23T10:05:00+00:00",
    )

    assert (created, created_again, again.pk) == (True, False, first.pk)
    letter = DeadLetter.objects.get()
    assert letter.fields == {"foo": "bar"}  # the first message's evidence stays
    assert letter.deliveries == 4
    assert letter.first_failed_at.isoformat() == "2026-01-23T10:00:00+00:00"
    assert letter.last_failed_at.isoformat() == "2026-01-23T10:05:00+00:00"
    assert redis_client.hgetall(keys.dead_letter_counts()) == {f"{market.code}\tmalformed".encode(): b"1"}


def test_a_handled_dead_letter_delivered_again_stays_handled(market, traders):
    letter = _dead_place(market, _accepted(market, traders[0]))
    dead_letter_discard(letter.pk, by="ops")

    _dead_place(market, Order.objects.get(), entry_id=letter.entry_id)

    assert DeadLetter.objects.get().status == "discarded"


def test_the_record_task_records_with_the_letters_correlation_id_on_its_log_lines(market, caplog):
    from orders.tasks import record_dead_letter

    caplog.handler.addFilter(CorrelationIdFilter())
    with caplog.at_level(logging.INFO, logger="orders"):
        record_dead_letter(market.code, "7-0", "malformed command: x", CID, kind="stream", reason_kind="malformed")
        record_dead_letter(market.code, "7-0", "malformed command: x", CID, kind="stream", reason_kind="malformed")

    assert DeadLetter.objects.get().correlation_id == CID
    lines = [r for r in caplog.records if r.name == "orders.tasks"]
    assert len(lines) == 2
    assert {r.correlation_id for r in lines} == {CID}


# -- requeue -----------------------------------------------------------------------------------


def test_two_operators_requeuing_at_once_put_the_entry_back_once(market, traders, redis_client):
    order = _accepted(market, traders[0])
    letter = _dead_place(market, order)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def click(who: str) -> None:
        barrier.wait()
        try:
            dead_letter_requeue(letter.pk, by=who)
            outcomes.append("requeued")
        except DeadLetterNotRequeueable as exc:
            outcomes.append(exc.message)
        finally:
            connection.close()

    threads = [threading.Thread(target=click, args=(who,)) for who in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == [f"dead letter {letter.pk} is already requeued; nothing was done", "requeued"]
    entries = redis_client.xrange(keys.stream(market.code))
    assert len(entries) == 1
    letter.refresh_from_db()
    assert (letter.status, letter.requeued_as) == ("requeued", entries[0][0].decode())
    assert letter.handled_by in {"alice", "bob"} and letter.handled_at is not None
    assert entries[0][1] == {b"c": letter.payload.encode()}
    assert redis_client.exists(keys.enqueued(market.code, order.id))  # the sweeper will not push it again


def test_a_requeue_whose_commit_was_lost_after_the_push_does_not_push_again(market, traders, redis_client):
    order = _accepted(market, traders[0])
    letter = _dead_place(market, order)
    queue = RedisStreamOrderQueue(redis_client, market.code)
    # The first attempt pushed (marker set with the push), then its transaction never committed.
    _, pushed_as = queue.push_once_as(letter.payload, keys.dead_letter_requeued(letter.pk), 60)
    assert DeadLetter.objects.get().status == "dead"

    letter = dead_letter_requeue(letter.pk, by="ops")

    assert letter.requeued_as == pushed_as
    assert redis_client.xlen(keys.stream(market.code)) == 1


def test_a_poison_entry_corrected_and_requeued_is_matched(engine, market, traders, redis_client):
    seller = order_place(user=traders[1], market=market, side="sell", order_type="limit", quantity="0.5", price="99")
    order = _accepted(market, traders[0])
    good = order_command(order, CID).to_dict()
    bad = {name: value for name, value in good.items() if name != "held"}  # the matcher refuses it
    queue = RedisStreamOrderQueue(redis_client, market.code)
    queue.push(encode_dict(bad))
    for _ in range(3):  # three deliveries, the last one dead-letters it
        drain_all(engine)
    assert record_dead_letters() == 1
    letter = DeadLetter.objects.get()
    assert (letter.status, letter.reason_kind, letter.order_id) == ("dead", "malformed", order.id)
    assert "does not say exactly what the order holds" in letter.reason

    with pytest.raises(InvalidInput, match="must say what the order holds"):
        dead_letter_requeue(letter.pk, by="ops")  # the payload as it failed is refused
    letter = dead_letter_requeue(letter.pk, by="ops", payload=encode(order_command(order, CID)))
    drain_all(engine)

    order.refresh_from_db()
    seller.refresh_from_db()
    assert (order.status, seller.status) == ("executed", "executed")
    assert letter.original_payload == encode_dict(bad)
    assert invariants.holds(market) == []
    assert invariants.lost_orders(market) == []


def encode_dict(command: dict) -> str:
    import json

    return json.dumps(command, separators=(",", ":"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: "not json", "payload: not valid JSON"),
        (lambda c: "", "payload: empty"),
        (lambda c: encode_dict({**c, "market": "eth_usdt"}), "market 'eth_usdt' is not this dead letter's market"),
        (lambda c: encode_dict({**c, "id": c["id"] + 1}), "is not the original entry's"),
        (lambda c: encode_dict({**c, "held": "1"}), "held is 1 but order"),
        (lambda c: encode_dict({**c, "price": "90.00"}), "price is 90.00 but order"),
        (lambda c: encode_dict({**c, "colour": "red"}), "unknown field"),
    ],
)
def test_a_bad_corrected_payload_is_refused_with_a_clear_message_and_nothing_changes(
    market, traders, redis_client, change, message
):
    order = _accepted(market, traders[0])
    letter = _dead_place(market, order)

    with pytest.raises(InvalidInput, match=message) as refused:
        dead_letter_requeue(letter.pk, by="ops", payload=change(order_command(order, CID).to_dict()))

    assert refused.value.field == "payload"
    unchanged = DeadLetter.objects.get()
    assert (unchanged.status, unchanged.payload, unchanged.handled_by) == ("dead", letter.payload, "")
    assert not redis_client.exists(keys.stream(market.code))


def test_a_place_for_an_order_the_matcher_already_settled_is_refused(market, traders):
    order = _accepted(market, traders[0])
    letter = _dead_place(market, order)
    Order.objects.filter(pk=order.pk).update(status="pending")

    with pytest.raises(InvalidInput, match=f"order {order.id} is pending, not new"):
        dead_letter_check_payload(letter, letter.payload)


def test_a_letter_of_raw_fields_needs_a_payload_to_be_requeued(market):
    letter, _ = dead_letter_record(
        market=market.code, entry_id="9-0", reason="malformed command: not valid JSON", fields={"foo": "bar"}
    )

    with pytest.raises(InvalidInput, match="payload: empty"):
        dead_letter_requeue(letter.pk, by="ops")
    cancel = '{"op":"cancel","id":12345,"market":"btc_usdt"}'
    assert dead_letter_requeue(letter.pk, by="ops", payload=cancel).payload == cancel


def test_requeue_and_discard_refuse_a_missing_or_handled_letter(market, traders):
    letter = _dead_place(market, _accepted(market, traders[0]))
    dead_letter_requeue(letter.pk, by="ops")

    with pytest.raises(DeadLetterNotRequeueable, match="already requeued"):
        dead_letter_requeue(letter.pk, by="ops")
    with pytest.raises(DeadLetterNotRequeueable, match="already requeued"):
        dead_letter_discard(letter.pk, by="ops")
    with pytest.raises(DeadLetterNotFound, match="no dead letter with id 999999"):
        dead_letter_requeue(999999, by="ops")


def test_a_task_letter_is_requeued_by_sending_the_task_again_once(market):
    letter, _ = dead_letter_record(
        market="",
        entry_id="5b0e7c36-0000-4000-8000-000000000001",
        reason="task orders.sweep_unqueued failed: OperationalError: gone",
        kind="task",
        task_name="orders.sweep_unqueued",
        task_args=[],
        task_kwargs={},
    )

    letter = dead_letter_requeue(letter.pk, by="ops")

    sent = []
    with app.connection_for_read() as conn:
        queue = conn.SimpleQueue(app.amqp.queues["default"])
        while True:
            try:
                message = queue.get(block=False)
            except queue.Empty:
                break
            message.ack()
            sent.append((message.headers["task"], message.headers["id"]))
        queue.close()
    assert ("orders.sweep_unqueued", letter.requeued_as) in sent
    with pytest.raises(DeadLetterNotRequeueable):
        dead_letter_requeue(letter.pk, by="ops")


# -- discard -----------------------------------------------------------------------------------


def test_discarding_a_place_letter_rejects_its_order_and_releases_the_hold(market, traders, redis_client):
    totals = invariants.asset_totals(["btc", "usdt"])
    order = order_place(user=traders[0], market=market, side="buy", order_type="limit", quantity="0.5", price="100")
    redis_client.delete(keys.stream(market.code))  # as if its entry had been dead-lettered
    letter = _dead_place(market, order)
    assert Balance.objects.get(user=traders[0], asset="usdt").held == Decimal("50")

    letter = dead_letter_discard(letter.pk, by="alice", note="customer asked")

    order.refresh_from_db()
    assert (order.status, order.reject_reason) == ("rejected", "dead letter discarded by alice")
    assert Balance.objects.get(user=traders[0], asset="usdt").held == 0
    assert (letter.status, letter.handled_by, letter.handled_note) == ("discarded", "alice", "customer asked")
    assert redis_client.hget(keys.order(order.id), "status") == b"rejected"
    assert invariants.lost_orders(market) == []
    assert invariants.holds(market) == []
    assert invariants.conservation(totals, invariants.asset_totals(["btc", "usdt"])) == []


def test_discarding_a_cancel_letter_touches_no_order(market, traders):
    order = _accepted(market, traders[0])
    cancel = f'{{"op":"cancel","id":{order.id},"market":"{market.code}"}}'
    letter = _dead_place(market, order, payload=cancel)

    dead_letter_discard(letter.pk, by="ops")

    assert Order.objects.get().status == "new"
    assert Balance.objects.get(user=traders[0], asset="usdt").held == Decimal("50")


# -- purge, the sweeper, counts ------------------------------------------------------------------


def test_purge_deletes_handled_letters_older_than_the_retention_and_keeps_dead_ones(market):
    def letter(n: int, status: str, age_days: float) -> None:
        row, _ = dead_letter_record(market=market.code, entry_id=f"{n}-0", reason="x")
        DeadLetter.objects.filter(pk=row.pk).update(
            status=status,
            handled_at=None if status == "dead" else timezone.now() - timedelta(days=age_days),
            created_at=timezone.now() - timedelta(days=age_days),
        )

    letter(1, "requeued", 8)
    letter(2, "discarded", 8)
    letter(3, "requeued", 6)
    letter(4, "dead", 30)

    assert dead_letter_purge(older_than=timedelta(days=7)) == 2

    assert sorted(DeadLetter.objects.values_list("entry_id", flat=True)) == ["3-0", "4-0"]
    assert dead_letters_dead_count() == 1 and dead_letters_dead_count(market.code) == 1


def test_the_sweeper_leaves_an_order_whose_place_entry_is_a_dead_letter(market, traders, redis_client):
    lettered, other = _accepted(market, traders[0]), _accepted(market, traders[1])
    _dead_place(market, lettered)
    Order.objects.update(updated_at=timezone.now() - timedelta(days=8))  # push-once markers long expired

    assert order_sweep_unqueued(older_than_s=5) == 1

    [(_, fields)] = redis_client.xrange(keys.stream(market.code))
    assert f'"id":{other.id}'.encode() in fields[b"c"]


def test_the_collector_exports_letters_by_market_and_reason_and_the_dead_ones(market, traders):
    from tests.factories import MarketFactory

    MarketFactory(coin="eth", currency="usdt")
    _dead_place(market, _accepted(market, traders[0]))
    discarded, _ = dead_letter_record(market=market.code, entry_id="2-0", reason="bug", reason_kind="error")
    dead_letter_discard(discarded.pk, by="ops")
    registry = CollectorRegistry()
    registry.register(dead_letter_collector())

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("spot_dead_letters_total", market="btc_usdt", reason="malformed") == 1
    assert sample("spot_dead_letters_total", market="btc_usdt", reason="error") == 1
    assert sample("spot_dead_letters_total", market="eth_usdt", reason="malformed") == 0
    assert sample("spot_dead_letters_dead", market="btc_usdt") == 1
    assert sample("spot_dead_letters_dead", market="eth_usdt") == 0


# -- the project's task base class -------------------------------------------------------------


@app.task(bind=True, name="tests.orders.always_failing")
def always_failing(self, market: str, attempts: list) -> None:  # type: ignore[no-untyped-def]
    attempts.append(self.request.retries)
    raise OperationalError("the database went away")


def test_a_task_that_exhausts_its_retries_is_dead_lettered_once_with_its_name_arguments_and_exception(settings):
    settings.RETRY_MAX_RETRIES = 3
    attempts: list[int] = []

    always_failing.apply(args=("btc_usdt", attempts))  # eager: the retries run at once, in this process

    assert attempts == [0, 1, 2, 3]  # FR-RL-002: three retries
    waiting = waiting_dead_letters()
    assert waiting, "nothing was published to the dead_letter queue"
    from orders.tasks import record_dead_letter

    for args, kwargs in waiting:
        record_dead_letter(*args, **kwargs)
    letter = DeadLetter.objects.get()  # published by each eager level, recorded once
    assert (letter.kind, letter.reason_kind, letter.market) == ("task", "task", "")
    assert letter.task_name == "tests.orders.always_failing"
    assert letter.task_args == ["btc_usdt", [0, 1, 2, 3]]
    assert letter.exception == "OperationalError: the database went away"
    assert "always_failing" in letter.traceback


def test_task_retry_countdowns_follow_fr_rl_002_from_100_ms_doubling_to_a_30_s_cap(monkeypatch, settings):
    settings.RETRY_BASE_S, settings.RETRY_CAP_S, settings.RETRY_JITTER = 0.1, 30.0, 0.1
    asked: list[tuple[float, int | None]] = []

    def celery_retry(self, *args, countdown=None, max_retries=None, **kwargs):  # Celery's, after ours
        asked.append((countdown, max_retries))

    monkeypatch.setattr(Task, "retry", celery_retry)
    random.seed(2026)
    draws = random.Random(2026)
    for attempt in range(12):
        always_failing.push_request(retries=attempt)
        try:
            always_failing.retry(exc=OperationalError("gone"))
        finally:
            always_failing.pop_request()

    countdowns = [c for c, _ in asked]
    assert countdowns == pytest.approx(
        [min(30.0, min(30.0, 0.1 * 2**n) * (1 + 0.1 * draws.random())) for n in range(12)]
    )
    for n, countdown in enumerate(countdowns[:9]):  # 0.1, 0.2, 0.4 ... 25.6 s, each plus up to 10 %
        assert 0.1 * 2**n <= countdown <= 0.1 * 2**n * 1.1
    assert countdowns[9:] == [30.0, 30.0, 30.0]  # capped
    assert {m for _, m in asked} == {settings.RETRY_MAX_RETRIES}
