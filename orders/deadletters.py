"""The dead letter queue (FR-RL-003, US-002): record, requeue, discard, purge, and its metrics.

A dead letter reaches the DB through the Celery queue ``dead_letter`` (``spot.celery.publish_dead_letter``,
recorded by the task ``orders.tasks.record_dead_letter``), so a matcher or a task can dead-letter while
the DB is down. Here are the writes an operator's tools (the admin, ``manage.py dlq``) call:

- ``dead_letter_record``: one row per (market, entry id), whatever how often the message arrives;
- ``dead_letter_requeue``: the entry back on its market's stream as a fresh entry (or the task sent
  again), at most once, whoever clicks how often;
- ``dead_letter_discard``: given up; a place command's order still ``new`` is rejected and its hold
  released, so every accepted order ends in one known state (invariant 1);
- ``dead_letter_purge``: handled letters older than the retention; ``dead`` ones stay.

``DeadLetterCollector`` exports the queue to Prometheus from the data (the workers that record
letters are not scraped): ``spot_dead_letters_total{market, reason}`` and ``spot_dead_letters_dead{market}``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Count, F
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from matching.commands import Command, MalformedCommand, PlaceCommand, decode
from matching.queue import RedisStreamOrderQueue
from orders.cache import cache_orders
from orders.errors import DeadLetterNotFound, DeadLetterNotRequeueable, InvalidInput, ServiceUnavailable
from orders.models import (
    Balance,
    DeadLetter,
    DeadLetterKind,
    DeadLetterReason,
    DeadLetterStatus,
    Market,
    Order,
    OrderStatus,
    Side,
)
from orders.outbox import order_command
from spot import keys
from spot.celery import app
from spot.redis import redis_client

logger = logging.getLogger(__name__)

__all__ = [
    "DeadLetterCollector",
    "dead_letter_check_payload",
    "dead_letter_collector",
    "dead_letter_discard",
    "dead_letter_purge",
    "dead_letter_record",
    "dead_letter_requeue",
    "dead_letters_dead_count",
]

# A place command's fields that must say what the order row says: the matcher trusts them (``held``
# is released exactly, the price and quantity go on the book that a rebuild reads from the rows).
_ORDER_FIELDS = ("user", "side", "type", "quantity", "price", "tif", "quote_budget", "held")


# -- recording ---------------------------------------------------------------------------------


def dead_letter_record(
    *,
    market: str,
    entry_id: str,
    reason: str,
    correlation_id: str = "",
    kind: str = DeadLetterKind.STREAM,
    reason_kind: str | None = None,
    fields: dict[str, str] | None = None,
    payload: str = "",
    exception: str = "",
    traceback: str = "",
    deliveries: int = 0,
    failed_at: str | datetime | None = None,
    task_name: str = "",
    task_args: list[Any] | None = None,
    task_kwargs: dict[str, Any] | None = None,
) -> tuple[DeadLetter, bool]:
    """Record one dead letter; returns ``(letter, created)``.

    Idempotent per (market, entry id): the same message delivered again (the broker restores an
    unacknowledged message after a worker died) or published twice (a matcher died between the
    publish and the acknowledgment) updates ``last_failed_at`` and ``deliveries`` of the one row and
    never changes its status, so a handled letter is not brought back. Each letter counts once in
    ``spot_dead_letters_total``, also when the worker died between the commit and the count (the
    message comes back and counts it then). Raises the DB's and Redis's errors (the task retries them).
    """
    failed = _when(failed_at)
    if reason_kind is None:
        reason_kind = DeadLetterReason.TASK if kind == DeadLetterKind.TASK else DeadLetterReason.ERROR
    market, entry_id = market[:32], entry_id[:64]
    created = False
    with transaction.atomic():
        letter = DeadLetter.objects.select_for_update().filter(market=market, entry_id=entry_id).first()
        if letter is None:
            try:
                with transaction.atomic():  # a savepoint: a concurrent record of the same entry wins
                    letter = DeadLetter.objects.create(
                        kind=kind,
                        market=market,
                        entry_id=entry_id,
                        order_id=_order_id(payload),
                        fields=dict(fields or {}),
                        payload=payload,
                        original_payload=payload,
                        reason=reason,
                        reason_kind=reason_kind,
                        exception=exception,
                        traceback=traceback,
                        deliveries=max(deliveries, 0),
                        correlation_id=correlation_id[:64],
                        task_name=task_name[:200],
                        task_args=list(task_args or []),
                        task_kwargs=dict(task_kwargs or {}),
                        first_failed_at=failed,
                        last_failed_at=failed,
                    )
                created = True
            except IntegrityError:
                letter = DeadLetter.objects.select_for_update().get(market=market, entry_id=entry_id)
        if not created:
            letter.last_failed_at = max(letter.last_failed_at, failed)
            letter.deliveries = max(letter.deliveries, deliveries)
            letter.save(update_fields=["last_failed_at", "deliveries"])
    _count_once(letter.pk, market, letter.reason_kind)
    return letter, created


# Count a letter at most once: its marker and the counter live in the same Redis, so they are kept or
# lost together. Run for every delivery of the record task, not only the one that created the row: a
# worker killed between the commit and the count leaves the count to the redelivered message.
_COUNT_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  return redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
end
return false
"""


def _count_once(letter_id: int, market: str, reason_kind: str) -> None:
    """``spot_dead_letters_total``: a Redis hash, so it survives restarts and purges."""
    client = redis_client()
    client.eval(
        _COUNT_ONCE,
        2,
        keys.dead_letter_counted(letter_id),
        keys.dead_letter_counts(),
        f"{market}\t{reason_kind}",
        keys.DEAD_LETTER_COUNTED_TTL_S,
    )


def _when(value: str | datetime | None) -> datetime:
    if isinstance(value, datetime):
        return value
    parsed = parse_datetime(value) if value else None
    if parsed is None:
        return timezone.now()
    return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=UTC)


def _order_id(payload: str) -> int | None:
    """The command's ``id`` (a place's order, or the order a cancel names), if the payload says one."""
    if not payload:
        return None
    try:
        return decode(payload).id
    except MalformedCommand:
        pass
    try:  # not a valid command: its "id" may still be readable
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return value if type(value) is int and 0 < value < 2**63 else None


# -- validating a payload ----------------------------------------------------------------------


def dead_letter_check_payload(dead_letter: DeadLetter, payload: str) -> Command:
    """The command ``payload`` holds, if the matcher would apply it for this dead letter's market.

    Checks, in order: the command codec (``matching.commands.decode``); the matcher's own rules
    (``MatchingEngine._decode``: the market is this letter's market; a place says what it holds); for
    a place, the order id is the original's when the original had one, the order exists, is still
    ``new`` and the command says what its row says (user, side, type, amounts, time in force, held).
    Raises ``InvalidInput`` (field ``payload``) naming the first problem. Reads, writes nothing.
    """
    text = payload.strip()
    if dead_letter.kind != DeadLetterKind.STREAM:
        raise InvalidInput("a task's dead letter has no payload to correct", field="payload")
    if not text:
        raise InvalidInput("payload: empty; give the command to requeue as JSON", field="payload")
    try:
        command = decode(text)
    except MalformedCommand as exc:
        raise InvalidInput(f"payload: {exc}", field="payload") from None
    if command.market is not None and command.market != dead_letter.market:
        raise InvalidInput(
            f"payload: market {command.market!r} is not this dead letter's market {dead_letter.market!r}",
            field="payload",
        )
    if isinstance(command, PlaceCommand):
        _check_place(dead_letter, command)
    return command


def _check_place(dead_letter: DeadLetter, command: PlaceCommand) -> None:
    original = _order_id(dead_letter.original_payload) or dead_letter.order_id
    if original is not None and command.id != original:
        raise InvalidInput(f"payload: order id {command.id} is not the original entry's ({original})", field="payload")
    if command.held is None:
        raise InvalidInput(f"payload: order {command.id}: the command must say what the order holds", field="payload")
    order = Order.objects.filter(pk=command.id).first()
    if order is None:
        raise InvalidInput(f"payload: order {command.id} does not exist", field="payload")
    if order.market_code != dead_letter.market:
        raise InvalidInput(
            f"payload: order {command.id} belongs to {order.market_code}, not {dead_letter.market}", field="payload"
        )
    if order.status != OrderStatus.NEW:
        raise InvalidInput(
            f"payload: order {command.id} is {order.status}, not new: the matcher already settled it", field="payload"
        )
    expected = order_command(order, "")
    for name in _ORDER_FIELDS:
        given, wanted = getattr(command, name), getattr(expected, name)
        if given != wanted:
            raise InvalidInput(
                f"payload: {name} is {_shown(given)} but order {order.id} has {_shown(wanted)}", field="payload"
            )


def _shown(value: object) -> str:
    if value is None:
        return "missing"
    return str(value.value if hasattr(value, "value") else value)


# -- requeue -----------------------------------------------------------------------------------


def dead_letter_requeue(dead_letter_id: int, *, by: str, payload: str | None = None) -> DeadLetter:
    """Put a ``dead`` letter back: a stream entry as a fresh entry on its market's stream (field ``c``
    = the payload, corrected by ``payload`` if given), a task sent again with its arguments. Marks it
    ``requeued`` with who, when and ``requeued_as`` (the new entry id or task id).

    At most once: the row is locked (``select_for_update``) for the whole requeue and must be ``dead``,
    so a second click or a second operator waits, then is refused; the push sets a Redis marker in the
    same atomic step (``RedisStreamOrderQueue.push_once_as``), so a requeue whose commit failed after
    its push finds the entry already pushed and records that one instead of pushing again.

    Raises ``DeadLetterNotFound``, ``DeadLetterNotRequeueable`` (not ``dead``), ``InvalidInput`` (the
    payload would not be applied; nothing changes), ``ServiceUnavailable`` (Redis down; nothing changes).
    """
    with transaction.atomic():
        letter = _locked(dead_letter_id)
        if letter.status != DeadLetterStatus.DEAD:
            raise DeadLetterNotRequeueable(f"dead letter {letter.pk} is already {letter.status}; nothing was done")
        marker = keys.dead_letter_requeued(letter.pk)
        try:
            if letter.kind == DeadLetterKind.TASK:
                if payload is not None:
                    raise InvalidInput("a task's dead letter has no payload to correct", field="payload")
                requeued_as = _send_task_once(letter, marker)
            else:
                text = letter.payload if payload is None else payload.strip()
                command = dead_letter_check_payload(letter, text)
                letter.payload = text
                letter.order_id = letter.order_id or command.id
                queue = RedisStreamOrderQueue(redis_client(), letter.market)
                placed = command.id if isinstance(command, PlaceCommand) else None
                pushed, requeued_as = queue.push_once_as(text, marker, keys.DEAD_LETTER_REQUEUED_TTL_S, order_id=placed)
                if not pushed:
                    logger.warning(
                        "dead letter %s was pushed before as %s (that requeue did not commit); not pushed again",
                        letter.pk,
                        requeued_as,
                        extra={"correlation_id": letter.correlation_id or "-"},
                    )
        except redis.RedisError as exc:
            raise ServiceUnavailable(f"Redis is unavailable ({exc}); dead letter {letter.pk} was not requeued") from exc
        letter.status = DeadLetterStatus.REQUEUED
        letter.handled_by = by[:150]
        letter.handled_at = timezone.now()
        letter.requeued_as = requeued_as
        letter.save(update_fields=["payload", "order_id", "status", "handled_by", "handled_at", "requeued_as"])
    logger.warning(
        "dead letter %s (%s %s) requeued as %s by %s",
        letter.pk,
        letter.market or letter.task_name,
        letter.entry_id,
        requeued_as,
        by,
        extra={"correlation_id": letter.correlation_id or "-"},
    )
    return letter


def _send_task_once(letter: DeadLetter, marker: str) -> str:
    """Send a failed task again under a new id, once: the marker is taken before the send. A crash
    between the two leaves the marker without a sent task; trying again then records the marker's id
    and does not send (at most once, as for stream entries; the log says so)."""
    task_id = str(uuid.uuid4())
    client = redis_client()
    if not client.set(marker, task_id, nx=True, ex=keys.DEAD_LETTER_REQUEUED_TTL_S):
        earlier = client.get(marker)
        task_id = earlier.decode() if isinstance(earlier, bytes) else str(earlier)
        logger.warning(
            "dead letter %s: task %s was already sent as %s, or a crash stopped that send; not sent again",
            letter.pk,
            letter.task_name,
            task_id,
            extra={"correlation_id": letter.correlation_id or "-"},
        )
        return task_id
    app.send_task(letter.task_name, args=letter.task_args, kwargs=letter.task_kwargs, task_id=task_id)
    return task_id


# -- discard -----------------------------------------------------------------------------------


def dead_letter_discard(dead_letter_id: int, *, by: str, note: str = "") -> DeadLetter:
    """Give a ``dead`` letter up: ``discarded`` with who, when and ``note``.

    If it is a place command whose order is still ``new`` (the matcher never applied it), the order
    ends in a known state in the same transaction: ``rejected`` ("dead letter discarded by <by>") and
    its hold released (the balance row locked as ``orders.balances`` orders them); its cache entry is
    refreshed after the commit. Raises ``DeadLetterNotFound``, ``DeadLetterNotRequeueable``.
    """
    released: Order | None = None
    with transaction.atomic():
        letter = _locked(dead_letter_id)
        if letter.status != DeadLetterStatus.DEAD:
            raise DeadLetterNotRequeueable(f"dead letter {letter.pk} is already {letter.status}; nothing was done")
        order_id = letter.placed_order_id
        if order_id is not None:
            released = _reject_new_order(order_id, f"dead letter discarded by {by}"[:200])
        letter.status = DeadLetterStatus.DISCARDED
        letter.handled_by = by[:150]
        letter.handled_at = timezone.now()
        letter.handled_note = note
        letter.save(update_fields=["status", "handled_by", "handled_at", "handled_note"])
    if released is not None:
        _refresh_cache(released)
    logger.warning(
        "dead letter %s (%s %s) discarded by %s%s%s",
        letter.pk,
        letter.market or letter.task_name,
        letter.entry_id,
        by,
        f"; order {released.id} rejected and its hold released" if released else "",
        f": {note}" if note else "",
        extra={"correlation_id": letter.correlation_id or "-"},
    )
    return letter


def _reject_new_order(order_id: int, reason: str) -> Order | None:
    order = Order.objects.select_for_update().filter(pk=order_id, status=OrderStatus.NEW).first()
    if order is None:
        return None  # settled by the matcher after all, or never accepted: nothing is held for it
    asset = order.currency if order.trade_type == Side.BUY else order.coin
    # One balance row: the (user, asset) lock order holds trivially. A `new` order has consumed
    # nothing, so it still holds exactly ``held``.
    Balance.objects.select_for_update().get(user_id=order.user_id, asset=asset)
    Balance.objects.filter(user_id=order.user_id, asset=asset).update(held=F("held") - order.held)
    order.status = OrderStatus.REJECTED
    order.reject_reason = reason
    order.save(update_fields=["status", "reject_reason", "updated_at"])
    return order


def _refresh_cache(order: Order) -> None:
    order.refresh_from_db()
    try:
        pipe = redis_client().pipeline(transaction=False)
        cache_orders(pipe, [order])
        pipe.execute()
    except redis.RedisError:
        # The entry may still say `new` until its TTL (ORDER_CACHE_TTL); the DB says `rejected`.
        logger.warning("order %s rejected but its cache entry not refreshed: Redis unavailable", order.id)


# -- purge and counts --------------------------------------------------------------------------


def dead_letter_purge(*, older_than: timedelta) -> int:
    """Delete ``requeued`` and ``discarded`` letters handled more than ``older_than`` ago (FR-RL-003
    keeps them 7 days); ``dead`` ones stay until someone handles them. Returns how many went."""
    cutoff = timezone.now() - older_than
    deleted, _ = DeadLetter.objects.filter(  # idx_dead_letters_status (status, handled_at)
        status__in=[DeadLetterStatus.REQUEUED, DeadLetterStatus.DISCARDED], handled_at__lt=cutoff
    ).delete()
    if deleted:
        logger.info("purged %s handled dead letters older than %s", deleted, older_than)
    return deleted


def dead_letters_dead_count(market: str | None = None) -> int:
    """Letters waiting for an operator (status ``dead``), of one market or all."""
    letters = DeadLetter.objects.filter(status=DeadLetterStatus.DEAD)
    if market is not None:
        letters = letters.filter(market=market)
    return letters.count()


# -- metrics -----------------------------------------------------------------------------------


class DeadLetterCollector(Collector):
    """Prometheus collector of the dead letter queue, read from the data at each scrape:

    - ``spot_dead_letters_total{market, reason}``: letters recorded, by reason kind (a Redis hash the
      record task increments once per new letter; it survives restarts and purges). Task letters have
      ``market=""`` and ``reason="task"``.
    - ``spot_dead_letters_dead{market}``: letters ``dead`` now (one indexed GROUP BY).

    Every enabled market has samples from the start (0). A source that does not answer leaves its
    samples out and is logged; the scrape itself does not fail.
    """

    def collect(self) -> Iterator[Any]:
        totals = CounterMetricFamily(
            "spot_dead_letters",
            "Dead letters recorded, by market and reason kind (FR-RL-003).",
            labels=["market", "reason"],
        )
        dead = GaugeMetricFamily(
            "spot_dead_letters_dead",
            "Dead letters waiting for an operator (status dead), by market.",
            labels=["market"],
        )
        try:
            markets = [m.code for m in Market.objects.filter(enabled=True)]
            waiting = {code: 0 for code in markets}
            rows = (
                DeadLetter.objects.filter(status=DeadLetterStatus.DEAD)
                .values_list("market")
                .annotate(n=Count("id"))
                .order_by()
            )
            waiting.update({code: n for code, n in rows})
        except DatabaseError:
            logger.warning("dead letter gauge: the DB did not answer", exc_info=True)
            markets, waiting = [], {}
        counts: dict[tuple[str, str], float] = {
            (code, kind): 0.0 for code in markets for kind in (DeadLetterReason.MALFORMED, DeadLetterReason.ERROR)
        }
        try:
            for field, value in redis_client().hgetall(keys.dead_letter_counts()).items():
                code, _, kind = field.decode().partition("\t")
                counts[(code, kind)] = float(value)
        except redis.RedisError:
            logger.warning("dead letter counter: Redis did not answer", exc_info=True)
        for (code, kind), value in sorted(counts.items()):
            totals.add_metric([code, str(kind)], value)
        for code, n in sorted(waiting.items()):
            dead.add_metric([code], float(n))
        yield totals
        yield dead

    def describe(self) -> Iterator[Any]:
        # The names only, so registering the collector neither queries the DB nor needs it up.
        yield CounterMetricFamily("spot_dead_letters", "", labels=["market", "reason"])
        yield GaugeMetricFamily("spot_dead_letters_dead", "", labels=["market"])


def dead_letter_collector() -> DeadLetterCollector:
    """The collector for a registry: ``registry.register(dead_letter_collector())``."""
    return DeadLetterCollector()


def _locked(dead_letter_id: int) -> DeadLetter:
    letter = DeadLetter.objects.select_for_update().filter(pk=dead_letter_id).first()
    if letter is None:
        raise DeadLetterNotFound(f"no dead letter with id {dead_letter_id}")
    return letter
