"""A poison entry: dead-lettered after three deliveries while the orders behind it match, recorded by
the default worker, corrected by an operator in the Django admin, requeued once (a second click is
refused) and matched. Real matcher and default worker processes; the admin through the test client."""

from __future__ import annotations

import json
import time

import pytest

from bench import feed
from orders import invariants
from orders.models import DeadLetter, Order, OrderStatus
from spot import keys
from tests.faults.conftest import accept, assert_end_state, stream_settled, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ADMIN = "/admin/orders/deadletter/"


@pytest.fixture
def operator(client):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_superuser("ops", "ops@example.com", "ops-password")
    client.force_login(user)
    return user


def test_a_poison_entry_is_dead_lettered_corrected_in_the_admin_requeued_once_and_matched(
    market, traders, redis_client, matchers, processes, client, operator
):
    items = accept(market, traders, redis_client, 400, seed=31)
    totals = invariants.asset_totals(["btc", "usdt"])
    # A producer bug writes one order's command under a field the matcher does not know.
    k = next(i for i, (_, order_id) in enumerate(items) if order_id is not None and i >= len(items) // 2)
    poisoned, poisoned_id = items[k]
    feed.push(redis_client, market, items[:k])
    entry_id = redis_client.xadd(keys.stream(market.code), {"cmd": poisoned}).decode()
    feed.push(redis_client, market, items[k + 1 :])

    matchers.start()
    processes.default_worker()
    started = time.monotonic()
    wait_until(lambda: stream_settled(redis_client, market), 60, message="the stream, poison included, to settle")
    wait_until(lambda: DeadLetter.objects.filter(entry_id=entry_id).exists(), 60, message="the letter recorded")
    recorded_after = time.monotonic() - started

    letter = DeadLetter.objects.get(entry_id=entry_id)
    assert (letter.status, letter.reason_kind, letter.deliveries) == ("dead", "malformed", 3)
    assert letter.fields == {"cmd": poisoned}  # the evidence, under the name it came with
    assert letter.payload == ""
    assert letter.reason == "malformed command: the entry has no command field 'c' (its fields: cmd)"
    assert Order.objects.get(id=poisoned_id).status == OrderStatus.NEW  # waits, funds held
    assert Order.objects.exclude(id=poisoned_id).filter(status=OrderStatus.NEW).count() == 0  # the rest flowed

    # The operator finds it in the list, then corrects the payload from the raw fields.
    listing = client.get(ADMIN, {"status__exact": "dead"}).content.decode()
    assert entry_id in listing
    saved = client.post(f"{ADMIN}{letter.pk}/change/", {"payload": poisoned})
    assert saved.status_code == 302, saved.content.decode()[:2000]

    confirm = {"action": "requeue", "_selected_action": [letter.pk], "post": "yes"}
    assert client.post(ADMIN, {"action": "requeue", "_selected_action": [letter.pk]}).status_code == 200
    first = client.post(ADMIN, confirm, follow=True)
    second = client.post(ADMIN, confirm, follow=True)  # clicked twice

    messages = [str(m) for m in first.context["messages"]] + [str(m) for m in second.context["messages"]]
    assert any("1 dead letter(s) requeued" in m for m in messages), messages
    assert any("already requeued" in m for m in messages), messages
    wait_until(
        lambda: Order.objects.get(id=poisoned_id).status != OrderStatus.NEW, 30, message="the requeued order matched"
    )
    wait_until(lambda: stream_settled(redis_client, market), 30, message="the stream to settle again")

    letter.refresh_from_db()
    assert (letter.status, letter.handled_by) == ("requeued", "ops")
    assert DeadLetter.objects.count() == 1
    # Applied once, after everything else: the replay of that order of commands is the truth.
    commands = [c for i, (c, _) in enumerate(items) if i != k] + [poisoned]
    assert_end_state(market, commands, totals)
    assert json.loads(poisoned)["id"] == poisoned_id
    print(f"poison entry recorded as a dead letter {recorded_after:.1f} s after the matchers started")
