"""``python manage.py dlq``: the dead letter queue from a shell (FR-RL-003; US-002 "DLQ messages can be
reprocessed manually").

    dlq list [--market M] [--status dead|requeued|discarded] [--since 2026-11-01|1h|7d] [--limit N]
    dlq show ID
    dlq requeue ID... [--payload-file F]     # F ("-" for standard input): a corrected payload, one ID
    dlq discard ID... [--reason R]
    dlq purge --older-than 7d                 # handled (requeued, discarded) letters only

Exit status: 0 when everything asked was done; 1 when an ID does not exist or could not be requeued or
discarded (the other IDs are still handled, and each failure is named); 2 on bad usage. The writes are
the services' of ``orders.deadletters`` (requeue at most once); ``by`` is ``cli:<os user>``.
"""

from __future__ import annotations

import getpass
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from orders.deadletters import (
    dead_letter_check_payload,
    dead_letter_discard,
    dead_letter_purge,
    dead_letter_requeue,
)
from orders.models import DeadLetter, DeadLetterStatus
from orders.templatetags.dead_letters import pretty_json, utc
from spot.errors import ApplicationError

USAGE = 2  # the exit status of bad usage, as argparse's
FAILED = 1
DURATION = re.compile(r"([0-9]+)([dhm])")
UNITS = {"d": "days", "h": "hours", "m": "minutes"}
STATUSES = [status.value for status in DeadLetterStatus]
LIST_LIMIT = 50


def duration(text: str, option: str) -> timedelta:
    """``7d``, ``12h`` or ``30m`` as a timedelta; anything else is bad usage naming ``option``."""
    match = DURATION.fullmatch(text.strip())
    if not match:
        raise CommandError(f"{option}: {text!r} is not a duration such as 7d, 12h or 30m", returncode=USAGE)
    return timedelta(**{UNITS[match[2]]: int(match[1])})


def parse_since(text: str) -> datetime:
    """``--since``: a duration back from now (``1h``, ``7d``) or an ISO date or time (UTC unless it says)."""
    if DURATION.fullmatch(text.strip()):
        return timezone.now() - duration(text, "--since")
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(
            f"--since: {text!r} is neither a duration (1h, 7d) nor a date such as 2026-11-01", returncode=USAGE
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def letter_ids(texts: list[str]) -> list[int]:
    ids = []
    for text in texts:
        if not text.isdigit():
            raise CommandError(f"ID: {text!r} is not a dead letter id (a positive integer)", returncode=USAGE)
        ids.append(int(text))
    return ids


class Command(BaseCommand):
    help = "List, show, requeue, discard and purge dead letters (exit 1: an ID failed; 2: bad usage)."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="action", metavar="{list,show,requeue,discard,purge}", required=True)

        listing = commands.add_parser("list", help="dead letters, newest first")
        listing.add_argument("--market", help="a market code such as btc_usdt")
        listing.add_argument("--status", help=f"one of {', '.join(STATUSES)}")
        listing.add_argument("--since", help="last failure at or after: 2026-11-01, 1h, 7d")
        listing.add_argument("--limit", default=str(LIST_LIMIT), help=f"at most this many (default {LIST_LIMIT})")

        show = commands.add_parser("show", help="everything about one dead letter")
        show.add_argument("id", metavar="ID")

        requeue = commands.add_parser("requeue", help="put dead letters back on their market's stream, once")
        requeue.add_argument("ids", nargs="+", metavar="ID")
        requeue.add_argument("--payload-file", help="a corrected payload for one ID ('-': standard input)")

        discard = commands.add_parser("discard", help="mark dead letters handled without requeuing them")
        discard.add_argument("ids", nargs="+", metavar="ID")
        discard.add_argument("--reason", default="", help="why, kept with the letter")

        purge = commands.add_parser("purge", help="delete requeued and discarded letters older than a duration")
        purge.add_argument("--older-than", required=True, help="7d, 12h or 30m")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        getattr(self, f"handle_{action}")(**options)

    # -- reads

    def handle_list(self, *, market: str | None, status: str | None, since: str | None, limit: str, **_: Any) -> None:
        letters = DeadLetter.objects.order_by("-id")
        if market:
            letters = letters.filter(market=market)
        if status:
            if status not in STATUSES:
                raise CommandError(f"--status: {status!r} is not one of {', '.join(STATUSES)}", returncode=USAGE)
            letters = letters.filter(status=status)
        if since:
            letters = letters.filter(last_failed_at__gte=parse_since(since))
        if not limit.isdigit() or int(limit) == 0:
            raise CommandError(f"--limit: {limit!r} is not a positive integer", returncode=USAGE)
        rows = [
            (
                str(letter.pk),
                letter.status,
                letter.market or "-",
                letter.entry_id,
                "-" if letter.order_id is None else str(letter.order_id),
                letter.reason_kind,
                str(letter.deliveries),
                utc(letter.last_failed_at),
                letter.reason.replace("\n", " ")[:70],
            )
            for letter in letters[: int(limit)]
        ]
        if not rows:
            self.stdout.write("no dead letters match")
            return
        header = ("id", "status", "market", "entry", "order", "reason kind", "deliveries", "last failure", "reason")
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
        for row in [header, *rows]:
            cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
            self.stdout.write("  ".join([*cells, row[-1]]).rstrip())

    def handle_show(self, *, id: str, **_: Any) -> None:
        (pk,) = letter_ids([id])
        letter = DeadLetter.objects.filter(pk=pk).first()
        if letter is None:
            raise CommandError(f"dead letter {pk} does not exist", returncode=FAILED)
        out = self.stdout.write
        for label, value in [
            ("id", letter.pk),
            ("status", letter.status),
            ("kind", letter.kind),
            ("market", letter.market or "-"),
            ("entry id", letter.entry_id),
            ("order id", "-" if letter.order_id is None else letter.order_id),
            ("reason kind", letter.reason_kind),
            ("reason", letter.reason),
            ("correlation id", letter.correlation_id or "-"),
            ("deliveries", letter.deliveries),
            ("first failure", utc(letter.first_failed_at)),
            ("last failure", utc(letter.last_failed_at)),
            ("recorded", utc(letter.created_at)),
            ("handled by", letter.handled_by or "-"),
            ("handled at", utc(letter.handled_at)),
            ("note", letter.handled_note or "-"),
            ("requeued as", letter.requeued_as or "-"),
        ]:
            out(f"{label + ':':<16}{value}")
        if letter.task_name:
            out(f"{'task:':<16}{letter.task_name}")
            out(f"{'arguments:':<16}{json.dumps(letter.task_args, ensure_ascii=False)}")
            out(f"{'keyword args:':<16}{json.dumps(letter.task_kwargs, ensure_ascii=False)}")
        out("\npayload:")
        out(pretty_json(letter.payload) or "(empty)")
        if letter.payload != letter.original_payload:
            out("\noriginal payload (before correction):")
            out(pretty_json(letter.original_payload) or "(empty)")
        out("\nraw fields:" if letter.fields else "\nraw fields: (none)")
        for name, value in letter.fields.items():  # whatever their names; a JSON value indented
            out(f"  {name}: " + pretty_json(str(value)).replace("\n", "\n  "))
        if letter.exception:
            out(f"\nexception:\n{letter.exception}")
        if letter.traceback:
            out(f"\ntraceback:\n{letter.traceback.rstrip()}")

    # -- writes (the services')

    def handle_requeue(self, *, ids: list[str], payload_file: str | None, **_: Any) -> None:
        pks = letter_ids(ids)
        payload = None
        if payload_file is not None:
            if len(pks) != 1:
                raise CommandError("--payload-file corrects one dead letter: give exactly one ID", returncode=USAGE)
            payload = self.read_payload(payload_file, pks[0])
        by = cli_user()

        def requeue(pk: int) -> str:
            letter = dead_letter_requeue(pk, by=by, payload=payload)
            return f"requeued {describe(letter)} as {letter.requeued_as}"

        self.each(pks, "requeued", requeue)

    def handle_discard(self, *, ids: list[str], reason: str, **_: Any) -> None:
        by = cli_user()

        def discard(pk: int) -> str:
            return f"discarded {describe(dead_letter_discard(pk, by=by, note=reason))}"

        self.each(letter_ids(ids), "discarded", discard)

    def handle_purge(self, *, older_than: str, **_: Any) -> None:
        age = duration(older_than, "--older-than")
        purged = dead_letter_purge(older_than=age)
        self.stdout.write(f"purged {purged} requeued or discarded dead letter(s) older than {older_than}")

    def each(self, pks: list[int], done: str, handle: Any) -> None:
        """``handle`` each id; names each failure and exits 1 after the others are handled."""
        failed = []
        for pk in pks:
            try:
                self.stdout.write(handle(pk))
            except ApplicationError as exc:  # not found, not dead, a payload the matcher would refuse
                self.stderr.write(f"dead letter {pk} was not {done}: {exc.message}")
                failed.append(str(pk))
        if failed:
            raise CommandError(
                f"{len(failed)} of {len(pks)} dead letter(s) not {done}: {', '.join(failed)}", returncode=FAILED
            )

    def read_payload(self, path: str, pk: int) -> str:
        """The corrected payload in ``path``, checked by the command codec before anything is written."""
        try:
            if path == "-":
                text = sys.stdin.read()
            else:
                with open(path, encoding="utf-8") as file:
                    text = file.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"--payload-file: cannot read {path}: {exc}", returncode=USAGE) from None
        text = text.strip()
        letter = DeadLetter.objects.filter(pk=pk).first()
        if letter is None:
            raise CommandError(f"dead letter {pk} does not exist", returncode=FAILED)
        try:
            dead_letter_check_payload(letter, text)
        except ApplicationError as exc:
            raise CommandError(f"--payload-file: {exc.message}", returncode=USAGE) from None
        return text


def cli_user() -> str:
    return f"cli:{getpass.getuser()}"


def describe(letter: DeadLetter) -> str:
    return f"{letter.pk} ({letter.market or 'task'} {letter.entry_id})"
