"""``python manage.py dlq`` (issue 8): list, show, requeue, discard, purge; exit 2 on bad usage, 1 when
an id does not exist or cannot be handled, 0 otherwise. Through ``call_command``, and once through a
real process for the exit statuses. Real MariaDB and Redis."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from matching.commands import encode
from orders.models import Balance, DeadLetter, Order
from orders.outbox import order_command
from orders.services import order_place
from tests.dead_letter_queue import record

STREAM = "orders:btc_usdt"
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


def placed_and_dead(trader, redis_client) -> tuple[Order, DeadLetter]:
    """An accepted order whose stream entry was dead-lettered (and left the stream, as the matcher
    acknowledges and trims it)."""
    order = order_place(user=trader, market="btc_usdt", side="buy", order_type="limit", quantity="1", price="100")
    ((entry_id, fields),) = redis_client.xrange(STREAM)
    redis_client.xdel(STREAM, entry_id)
    payload = fields[b"c"].decode()
    return order, record(entry_id=entry_id.decode(), payload=payload, fields={"c": payload}, reason="a bug")


def dlq(*args: str) -> str:
    out = StringIO()
    call_command("dlq", *args, stdout=out, stderr=out)
    return out.getvalue()


def refused(*args: str) -> CommandError:
    with pytest.raises(CommandError) as error:
        dlq(*args)
    return error.value


# -- reads ---------------------------------------------------------------------------------------


def test_list_shows_a_table_filtered_by_market_status_and_since(market):
    now = timezone.now()
    btc = record(entry_id="1700000000000-0", payload='{"op":"place","id":42}', reason_kind="malformed", failed_at=now)
    record(market="eth_usdt", entry_id="1700000000000-1", failed_at=now)
    old = record(entry_id="1600000000000-0", failed_at=now - timedelta(days=10))
    DeadLetter.objects.filter(pk=old.pk).update(status="discarded")

    everything = dlq("list").splitlines()
    assert everything[0].split()[:6] == ["id", "status", "market", "entry", "order", "reason"]
    assert len(everything) == 4
    row = dlq("list", "--market", "btc_usdt", "--status", "dead").splitlines()[1].split()
    assert row[:7] == [str(btc.pk), "dead", "btc_usdt", "1700000000000-0", "42", "malformed", "3"]
    assert len(dlq("list", "--since", "7d").splitlines()) == 3
    assert len(dlq("list", "--since", (now - timedelta(days=30)).date().isoformat()).splitlines()) == 4
    assert len(dlq("list", "--limit", "1").splitlines()) == 2
    assert dlq("list", "--market", "nope_usdt").strip() == "no dead letters match"


def test_show_prints_everything_with_the_payload_pretty_printed(market):
    letter = record(
        entry_id="1700000000000-0",
        payload='{"op":"place","id":42,"bad":true}',
        fields={"c": '{"op":"place","id":42,"bad":true}', "odd": "x"},
        correlation_id="20261101-a1b2c3d4e5f67890",
        reason_kind="malformed",
        reason="unknown field(s): bad",
        exception="MalformedCommand: unknown field(s): bad",
        traceback="Traceback (most recent call last):\nMalformedCommand",
    )

    out = dlq("show", str(letter.pk))

    assert f"id:             {letter.pk}" in out
    assert "correlation id: 20261101-a1b2c3d4e5f67890" in out
    assert '{\n  "op": "place",\n  "id": 42,\n  "bad": true\n}' in out
    assert 'raw fields:\n  c: {\n    "op": "place",' in out and "\n  odd: x" in out
    assert "MalformedCommand: unknown field(s): bad" in out and "Traceback (most recent call last):" in out


def test_show_prints_a_float_that_python_would_round_exactly_as_it_was_sent(market):
    sent = '{"op":"place","id":42,"price":0.10000000000000000001}'
    letter = record(entry_id="1700000000000-0", payload=sent, reason_kind="malformed")

    assert f"payload:\n{sent}\n" in dlq("show", str(letter.pk))


# -- writes --------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_requeue_puts_the_entry_back_once_and_a_second_requeue_fails_with_status_1(traders, redis_client):
    order, letter = placed_and_dead(traders[0], redis_client)

    out = dlq("requeue", str(letter.pk))
    again = refused("requeue", str(letter.pk))

    ((entry_id, fields),) = redis_client.xrange(STREAM)
    assert f"requeued {letter.pk} (btc_usdt {letter.entry_id}) as {entry_id.decode()}" in out
    assert json.loads(fields[b"c"])["id"] == order.id
    assert again.returncode == 1 and "not requeued" in str(again)
    letter.refresh_from_db()
    assert (letter.status, letter.handled_by) == ("requeued", f"cli:{getpass.getuser()}")


@pytest.mark.django_db(transaction=True)
def test_requeue_of_several_ids_handles_the_others_and_names_the_one_that_failed(traders, redis_client):
    _, good = placed_and_dead(traders[0], redis_client)
    garbage = record(entry_id="1700000000000-9", payload="not json", reason_kind="malformed")

    error = refused("requeue", str(garbage.pk), str(good.pk), "999999")

    assert error.returncode == 1
    assert f"2 of 3 dead letter(s) not requeued: {garbage.pk}, 999999" in str(error)
    assert DeadLetter.objects.get(pk=good.pk).status == "requeued"
    assert DeadLetter.objects.get(pk=garbage.pk).status == "dead"
    assert redis_client.xlen(STREAM) == 1


@pytest.mark.django_db(transaction=True)
def test_requeue_with_a_payload_file_checks_and_sends_the_corrected_payload(traders, redis_client, tmp_path):
    order, letter = placed_and_dead(traders[0], redis_client)
    DeadLetter.objects.filter(pk=letter.pk).update(payload=json.dumps({"op": "place", "id": order.id}))
    bad, good = tmp_path / "bad.json", tmp_path / "good.json"
    bad.write_text(json.dumps({**order_command(order, "").to_dict(), "price": 100}))  # a float price
    good.write_text(encode(order_command(order, "")) + "\n")

    invalid = refused("requeue", str(letter.pk), "--payload-file", str(bad))
    dlq("requeue", str(letter.pk), "--payload-file", str(good))

    assert invalid.returncode == 2 and "--payload-file: payload:" in str(invalid)
    ((_, fields),) = redis_client.xrange(STREAM)
    assert fields[b"c"].decode() == encode(order_command(order, ""))
    assert DeadLetter.objects.get(pk=letter.pk).payload == encode(order_command(order, ""))


@pytest.mark.django_db(transaction=True)
def test_discard_with_a_reason_rejects_the_order_and_releases_its_hold(traders, redis_client):
    order, letter = placed_and_dead(traders[0], redis_client)

    out = dlq("discard", str(letter.pk), "--reason", "a duplicate")

    assert f"discarded {letter.pk} (btc_usdt {letter.entry_id})" in out
    letter.refresh_from_db()
    assert (letter.status, letter.handled_note) == ("discarded", "a duplicate")
    assert Order.objects.get(pk=order.pk).status == "rejected"
    assert Balance.objects.get(user=traders[0], asset="usdt").held == Decimal("0")
    assert refused("discard", str(letter.pk)).returncode == 1


def test_purge_deletes_handled_letters_older_than_the_duration_and_keeps_dead_ones(market):
    old, recent, waiting = (record(entry_id=f"{n}-0") for n in (1, 2, 3))
    DeadLetter.objects.filter(pk=old.pk).update(status="requeued", handled_at=timezone.now() - timedelta(days=8))
    DeadLetter.objects.filter(pk=recent.pk).update(status="discarded", handled_at=timezone.now() - timedelta(days=1))
    DeadLetter.objects.filter(pk=waiting.pk).update(first_failed_at=timezone.now() - timedelta(days=30))

    out = dlq("purge", "--older-than", "7d")

    assert "purged 1 " in out
    assert set(DeadLetter.objects.values_list("pk", flat=True)) == {recent.pk, waiting.pk}


# -- bad usage -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("list", "--since", "yesterday"), "--since: 'yesterday' is neither a duration"),
        (("list", "--status", "lost"), "--status: 'lost' is not one of dead, requeued, discarded"),
        (("list", "--limit", "ten"), "--limit: 'ten' is not a positive integer"),
        (("show", "abc"), "ID: 'abc' is not a dead letter id"),
        (("requeue", "1", "x"), "ID: 'x' is not a dead letter id"),
        (("requeue", "1", "2", "--payload-file", "f.json"), "--payload-file corrects one dead letter"),
        (("requeue", "1", "--payload-file", "/no/such/file"), "--payload-file: cannot read /no/such/file"),
        (("purge", "--older-than", "7 days"), "--older-than: '7 days' is not a duration such as 7d"),
    ],
)
def test_bad_usage_is_refused_with_status_2_and_a_message_naming_the_problem(market, args, message):
    record(entry_id="1-0")  # id 1 may or may not exist: usage is checked first

    error = refused(*args)

    assert error.returncode == 2
    assert message in str(error)


def test_an_unknown_id_fails_with_status_1(market):
    error = refused("show", "999999")

    assert error.returncode == 1 and "dead letter 999999 does not exist" in str(error)


# -- a real process ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_as_a_process_it_exits_0_when_done_1_for_an_unknown_id_and_2_for_bad_usage(market):
    letter = record(entry_id="1700000000000-0", payload="garbage")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE,
        "MYSQL_DATABASE": settings.DATABASES["default"]["NAME"],  # this test's database
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "manage.py", "dlq", *args]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    shown, listed, unknown = run("show", str(letter.pk)), run("list"), run("discard", "999999")
    usage, no_action, bad_since = run("requeue", "one"), run(), run("list", "--since", "soon")
    discarded = run("discard", str(letter.pk), "--reason", "garbage")

    assert (shown.returncode, listed.returncode, discarded.returncode) == (0, 0, 0), shown.stderr + listed.stderr
    assert "1700000000000-0" in listed.stdout and "garbage" in shown.stdout
    assert unknown.returncode == 1 and "dead letter 999999 was not discarded: no dead letter with id" in unknown.stderr
    assert (usage.returncode, no_action.returncode, bad_since.returncode) == (2, 2, 2)
    assert "ID: 'one' is not a dead letter id" in usage.stderr
    assert "the following arguments are required" in no_action.stderr
    assert DeadLetter.objects.get(pk=letter.pk).status == "discarded"
