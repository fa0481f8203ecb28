"""The dead letter queue in the Django admin, through the test client as a logged-in operator (issue 8):
list, filters, search, a readable and escaped detail page, payload correction, the requeue and discard
actions with their confirmation page, and the queue's size on the index. Real MariaDB and Redis."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.utils import timezone

from matching.commands import encode
from orders.models import Balance, DeadLetter, Order
from orders.outbox import order_command
from orders.services import order_place
from tests.dead_letter_queue import record
from tests.factories import UserFactory

STREAM = "orders:btc_usdt"
LIST = "/admin/orders/deadletter/"

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    user = UserFactory(username="ops", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


def placed_and_dead(trader, redis_client, *, price: str = "100") -> tuple[Order, DeadLetter]:
    """An accepted order whose stream entry the matcher gave up on: its entry left the stream (acked
    and trimmed, as the matcher does) and it waits as a dead letter with its real payload."""
    order = order_place(user=trader, market="btc_usdt", side="buy", order_type="limit", quantity="1", price=price)
    ((entry_id, fields),) = redis_client.xrange(STREAM)
    redis_client.xdel(STREAM, entry_id)
    payload = fields[b"c"].decode()
    letter = record(
        entry_id=entry_id.decode(),
        payload=payload,
        fields={"c": payload},
        correlation_id="20261101-a1b2c3d4e5f67890",
        reason_kind="error",
        reason="ZeroDivisionError while applying",
        exception="ZeroDivisionError: division by zero",
        traceback='Traceback (most recent call last):\n  File "engine.py", line 1\nZeroDivisionError',
    )
    return order, letter


def result_ids(response) -> set[int]:
    assert response.status_code == 200, response.content[:500]
    return {letter.pk for letter in response.context["cl"].result_list}


def texts(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


# -- list, filters, search ----------------------------------------------------------------------


def test_the_list_shows_each_letter_with_its_columns(client, operator, market):
    letter = record(entry_id="1700000000000-0", payload='{"op":"place","id":42}', reason_kind="malformed")

    response = client.get(LIST)

    assert result_ids(response) == {letter.pk}
    content = response.content.decode()
    for column in ("status", "market", "entry id", "order id", "reason kind", "reason", "deliveries"):
        assert f">{column.capitalize()}<" in content or f">{column}<" in content.lower(), column
    assert "1700000000000-0" in content and ">42<" in content and "malformed" in content


def test_the_list_filters_by_market_status_reason_kind_and_last_failure(client, operator, market):
    now = timezone.now()
    btc = record(entry_id="1-0", reason_kind="malformed", failed_at=now)
    eth = record(market="eth_usdt", entry_id="2-0", reason_kind="error", failed_at=now)
    old = record(entry_id="3-0", reason_kind="error", failed_at=now - timedelta(days=30))
    DeadLetter.objects.filter(pk=old.pk).update(status="discarded")

    assert result_ids(client.get(LIST, {"market": "eth_usdt"})) == {eth.pk}
    assert result_ids(client.get(LIST, {"status__exact": "discarded"})) == {old.pk}
    assert result_ids(client.get(LIST, {"status__exact": "dead"})) == {btc.pk, eth.pk}
    assert result_ids(client.get(LIST, {"reason_kind__exact": "malformed"})) == {btc.pk}
    week = {  # the "Past 7 days" choice of the date filter
        "last_failed_at__gte": str(now - timedelta(days=7)),
        "last_failed_at__lt": str(now + timedelta(days=1)),
    }
    assert result_ids(client.get(LIST, week)) == {btc.pk, eth.pk}


def test_search_finds_a_letter_by_entry_id_correlation_id_or_order_id_exactly(client, operator, market):
    wanted = record(entry_id="1700000000000-7", correlation_id="20261101-00000000000000aa", payload='{"id":9001}')
    record(entry_id="1700000000000-70", correlation_id="20261101-00000000000000ab", payload='{"id":90011}')

    assert result_ids(client.get(LIST, {"q": "1700000000000-7"})) == {wanted.pk}
    assert result_ids(client.get(LIST, {"q": "20261101-00000000000000aa"})) == {wanted.pk}
    assert result_ids(client.get(LIST, {"q": "9001"})) == {wanted.pk}
    # Not a number: not an order id, and no error either (Django's own lookup would fail with a 500).
    assert result_ids(client.get(LIST, {"q": "no-such-thing"})) == set()
    assert result_ids(client.get(LIST, {"q": "99999999999999999999999"})) == set()


# -- detail page --------------------------------------------------------------------------------


def test_the_detail_page_shows_the_payload_pretty_printed_and_escaped(client, operator, market):
    hostile = '{"op":"place","id":5,"note":"</pre><script>alert(1)</script>"}'
    letter = record(
        entry_id="1700000000000-1",
        payload=hostile,
        fields={"c": hostile, "x-odd": "<b>raw</b>"},
        reason_kind="malformed",
        reason="unknown field(s): note",
        exception="MalformedCommand: unknown field(s): note",
        traceback="Traceback (most recent call last):\nMalformedCommand",
    )

    response = client.get(f"{LIST}{letter.pk}/change/")

    assert response.status_code == 200
    content = response.content.decode()
    assert "<script>alert(1)" not in content and "<b>raw</b>" not in content
    assert "&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in content
    assert "  &quot;op&quot;: &quot;place&quot;,\n  &quot;id&quot;: 5," in content  # indented, one key a line
    assert '<th scope="row">x-odd</th><td><pre class="dead-letter-text">&lt;b&gt;raw&lt;/b&gt;</pre>' in content
    assert "MalformedCommand: unknown field(s): note" in content
    assert "Traceback (most recent call last):" in content
    assert "Handling history" in content and "recorded as a dead letter" in content
    assert 'name="payload"' in content  # dead: the payload may be corrected
    assert f"{LIST}{letter.pk}/requeue/" in content and f"{LIST}{letter.pk}/discard/" in content


@pytest.mark.django_db(transaction=True)
def test_a_corrected_payload_is_saved_and_an_invalid_one_refused_with_the_codecs_message(
    client, operator, traders, redis_client
):
    order, letter = placed_and_dead(traders[0], redis_client)
    page = f"{LIST}{letter.pk}/change/"

    float_price = {**json.loads(letter.payload), "price": 100.5}  # money is never a float
    refused = client.post(page, {"payload": json.dumps(float_price)})

    assert refused.status_code == 200  # the form again, with the error
    assert "&quot;price&quot; must be a decimal string such as &quot;1.25&quot;, not 100.5" in refused.content.decode()
    assert DeadLetter.objects.get(pk=letter.pk).payload == letter.payload

    corrected = encode(order_command(order, "20261101-00000000000000cc"))  # another correlation id
    saved = client.post(page, {"payload": corrected})

    assert saved.status_code == 302
    letter.refresh_from_db()
    assert (letter.payload, letter.status) == (corrected, "dead")
    assert letter.original_payload != corrected  # the evidence stays
    history = client.get(page).content.decode()
    assert "ops: Changed Corrected payload." in history


def test_a_handled_letter_is_read_only_and_there_is_no_add_or_delete(client, operator, market):
    letter = record(entry_id="1700000000000-2", payload="garbage")
    DeadLetter.objects.filter(pk=letter.pk).update(status="requeued", handled_by="ops", requeued_as="1-1")

    page = client.get(f"{LIST}{letter.pk}/change/").content.decode()

    assert 'name="payload"' not in page and f"{LIST}{letter.pk}/requeue/" not in page
    assert "requeued by ops as 1-1" in page
    assert client.post(f"{LIST}{letter.pk}/change/", {"payload": "x"}).status_code == 403
    assert client.get(f"{LIST}add/").status_code == 403
    assert client.get(f"{LIST}{letter.pk}/delete/").status_code == 403
    assert "delete_selected" not in client.get(LIST).content.decode()


# -- requeue and discard ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_requeue_asks_for_confirmation_then_puts_the_entry_back_on_its_stream_once(
    client, operator, traders, redis_client
):
    order, letter = placed_and_dead(traders[0], redis_client)
    chosen = {"action": "requeue", "_selected_action": [letter.pk], "index": 0}

    confirmation = client.post(LIST, chosen)

    assert confirmation.status_code == 200
    page = confirmation.content.decode()
    assert "Requeue 1 dead letter?" in page and letter.entry_id in page
    assert 'value="Yes, requeue"' in page and 'name="post" value="yes"' in page
    assert redis_client.xlen(STREAM) == 0  # nothing happens before the confirmation

    confirm = {"action": "requeue", "_selected_action": [letter.pk], "post": "yes"}
    first = client.post(LIST, confirm, follow=True)
    second = client.post(LIST, confirm, follow=True)  # a second click, or a second operator

    assert "1 dead letter(s) requeued." in texts(first)
    assert any(f"Dead letter {letter.pk}" in text and "already requeued" in text for text in texts(second))
    entries = redis_client.xrange(STREAM)
    assert len(entries) == 1
    letter.refresh_from_db()
    assert (letter.status, letter.handled_by, letter.requeued_as) == ("requeued", "ops", entries[0][0].decode())
    assert json.loads(entries[0][1][b"c"])["id"] == order.id


def test_the_detail_pages_requeue_button_opens_the_same_confirmation(client, operator, market):
    letter = record(entry_id="1700000000000-3", payload="garbage")

    page = client.get(f"{LIST}{letter.pk}/requeue/")

    assert page.status_code == 200
    content = page.content.decode()
    assert f'action="{LIST}"' in content and f'name="_selected_action" value="{letter.pk}"' in content
    assert 'name="action" value="requeue"' in content


@pytest.mark.django_db(transaction=True)
def test_a_letter_that_cannot_be_requeued_is_named_and_the_others_are_requeued(client, operator, traders, redis_client):
    _, good = placed_and_dead(traders[0], redis_client)
    garbage = record(entry_id="1700000000000-4", payload="not json", reason_kind="malformed")

    response = client.post(
        LIST, {"action": "requeue", "_selected_action": [good.pk, garbage.pk], "post": "yes"}, follow=True
    )

    messages = texts(response)
    assert "1 dead letter(s) requeued." in messages
    assert any(f"Dead letter {garbage.pk}" in text and "not valid JSON" in text for text in messages)
    assert DeadLetter.objects.get(pk=garbage.pk).status == "dead"
    assert redis_client.xlen(STREAM) == 1


@pytest.mark.django_db(transaction=True)
def test_discard_with_a_reason_rejects_the_order_and_releases_its_hold(client, operator, traders, redis_client):
    order, letter = placed_and_dead(traders[0], redis_client)
    assert Balance.objects.get(user=traders[0], asset="usdt").held == Decimal("100")

    confirmation = client.post(LIST, {"action": "discard", "_selected_action": [letter.pk], "index": 0})
    assert 'name="note"' in confirmation.content.decode() and 'value="Yes, discard"' in confirmation.content.decode()
    response = client.post(
        LIST,
        {"action": "discard", "_selected_action": [letter.pk], "post": "yes", "note": "duplicate of 77"},
        follow=True,
    )

    assert "1 dead letter(s) discarded." in texts(response)
    letter.refresh_from_db()
    assert (letter.status, letter.handled_by, letter.handled_note) == ("discarded", "ops", "duplicate of 77")
    order.refresh_from_db()
    assert order.status == "rejected"
    assert Balance.objects.get(user=traders[0], asset="usdt").held == 0
    assert redis_client.xlen(STREAM) == 0


# -- the index ----------------------------------------------------------------------------------


def test_the_index_shows_how_many_dead_letters_wait_with_a_link_to_them(client, operator, market):
    record(entry_id="1-0")
    record(entry_id="2-0")
    handled = record(entry_id="3-0")
    DeadLetter.objects.filter(pk=handled.pk).update(status="discarded")

    content = client.get("/admin/").content.decode()

    assert "Dead letters: 2 waiting" in content
    assert f'href="{LIST}?status__exact=dead"' in content
    assert "Site administration" in content and "/admin/orders/order/" in content  # the rest of the index
