"""The dead letter queue end to end, with real processes: a matcher worker publishes a poison entry to
the Celery queue ``dead_letter`` and a default worker (``-Q default,dead_letter``, the Procfile's)
records it; while the DB is unreachable the letter waits in the broker and is recorded when it returns.
"""

from __future__ import annotations

import pytest

from matching.queue import RedisStreamOrderQueue
from orders.models import DeadLetter, Order
from orders.services import order_place
from spot import keys
from spot.celery import publish_dead_letter
from tests.pipeline.conftest import stream_settled, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CID = "20260123-a1b2c3d4e5f67890"
DEFAULT_QUEUES = "default,dead_letter"  # the Procfile's default worker


def test_poison_entries_end_as_one_dead_letter_each_with_their_raw_fields_and_the_orders_flow(
    market, traders, redis_client, matchers
):
    queue = RedisStreamOrderQueue(redis_client, market.code)
    queue.ensure_group()
    ask = order_place(user=traders[0], market=market, side="sell", order_type="limit", quantity="0.5", price="100")
    stream = keys.stream(market.code)
    odd_field = redis_client.xadd(stream, {"foo": "bar"}).decode()  # no command field at all
    garbage = redis_client.xadd(stream, {"c": "garbage", "note": b"\xff"}).decode()
    bid = order_place(user=traders[1], market=market, side="buy", order_type="limit", quantity="0.5", price="100")
    matchers.start()
    recorder = matchers.start(queue=DEFAULT_QUEUES)

    wait_until(lambda: stream_settled(redis_client, market), 60, message="the stream, poison included, to settle")
    wait_until(lambda: DeadLetter.objects.count() == 2, 60, message="both dead letters to be recorded")

    letters = {letter.entry_id: letter for letter in DeadLetter.objects.all()}
    assert letters[odd_field].fields == {"foo": "bar"}  # the evidence, whatever the field's name
    assert letters[odd_field].payload == ""
    assert letters[garbage].fields == {"c": "garbage", "note": "\ufffd"}  # undecodable bytes replaced
    assert letters[garbage].payload == letters[garbage].original_payload == "garbage"
    for letter in letters.values():
        assert (letter.kind, letter.status, letter.reason_kind, letter.deliveries) == ("stream", "dead", "malformed", 3)
        assert letter.reason.startswith("malformed command:")
        assert letter.exception.startswith("MalformedCommand:")
    assert set(Order.objects.values_list("status", flat=True)) == {"executed"}  # the orders behind them matched
    assert {ask.id, bid.id} == set(Order.objects.values_list("id", flat=True))
    assert redis_client.hget(keys.dead_letter_counts(), f"{market.code}\tmalformed") == b"2"

    # The same letter published again (a matcher killed between its publish and its acknowledgment):
    # recorded once, counted once.
    publish_dead_letter(market.code, garbage, "malformed command: again", "", kind="stream", deliveries=4)
    wait_until(lambda: "delivered again; recorded once" in recorder.log(), 30, message="the duplicate to be seen")
    assert DeadLetter.objects.count() == 2
    assert DeadLetter.objects.get(entry_id=garbage).deliveries == 4
    assert redis_client.hget(keys.dead_letter_counts(), f"{market.code}\tmalformed") == b"2"


def test_while_the_db_is_unreachable_a_dead_letter_waits_in_the_broker_and_is_recorded_when_it_returns(
    market, redis_client, matchers
):
    from django.conf import settings

    from tests.pipeline.proxy import CuttableProxy

    proxy = CuttableProxy(int(settings.DATABASES["default"]["PORT"]))
    try:
        proxy.cut()
        # Its only way to the database is the proxy; short retries keep the test short (the cap is 30 s).
        recorder = matchers.start(queue=DEFAULT_QUEUES, env={"MYSQL_PORT": str(proxy.port), "RETRY_CAP_S": "1"})
        publish_dead_letter(
            market.code,
            "1700000000000-0",
            "malformed command: not valid JSON",
            CID,
            kind="stream",
            reason_kind="malformed",
            fields={"c": "garbage"},
            payload="garbage",
            deliveries=3,
        )
        wait_until(lambda: recorder.log().count("Retry in") >= 3, 60, message="the record task to retry")
        assert not DeadLetter.objects.exists()

        proxy.restore()
        wait_until(lambda: DeadLetter.objects.exists(), 60, message="the letter to be recorded after the DB returned")
    finally:
        proxy.close()

    letter = DeadLetter.objects.get()  # one: the record task never dead-letters itself
    assert (letter.entry_id, letter.payload, letter.correlation_id) == ("1700000000000-0", "garbage", CID)
    assert f"[{CID}]" in recorder.log()  # the record task's log lines carry the letter's correlation id


def test_a_default_worker_killed_while_a_letter_waits_for_its_retry_loses_nothing_and_records_it_once(
    market, redis_client, matchers
):
    import time

    import redis as redis_lib
    from django.conf import settings

    from tests.pipeline.proxy import CuttableProxy

    visibility_s = 5  # the broker's redelivery delay for unacknowledged messages (default 300 s)
    proxy = CuttableProxy(int(settings.DATABASES["default"]["PORT"]))
    env = {"MYSQL_PORT": str(proxy.port), "RETRY_CAP_S": "1", "CELERY_VISIBILITY_TIMEOUT_S": str(visibility_s)}
    try:
        proxy.cut()
        first = matchers.start(queue=DEFAULT_QUEUES, env=env)
        publish_dead_letter(market.code, "1700000000001-0", "malformed command: x", CID, kind="stream", payload="x")
        wait_until(lambda: first.log().count("Retry in") >= 2, 60, message="the record task to retry")
        first.kill()  # kill -9: the retry it held (unacknowledged, waiting for its countdown) stays in the broker
        broker = redis_lib.Redis.from_url(settings.CELERY_BROKER_URL)
        assert broker.hlen("unacked") == 1  # kombu's Redis transport keeps unacknowledged messages there
        proxy.restore()
        killed_at = time.monotonic()
        matchers.start(queue=DEFAULT_QUEUES, env=env)
        wait_until(lambda: DeadLetter.objects.exists(), 60, message="the letter to come back and be recorded")
        back_after = time.monotonic() - killed_at
    finally:
        proxy.close()

    assert DeadLetter.objects.get().entry_id == "1700000000001-0"
    print(f"recorded {back_after:.1f} s after the kill (visibility timeout {visibility_s} s, restore scan every 10 s)")
