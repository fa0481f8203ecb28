"""Dead letters, the matcher's side (FR-RL-003).

A stream entry that fails ``MATCHING_MAX_DELIVERIES`` deliveries is published to the Celery queue
``dead_letter`` (``spot.celery.publish_dead_letter``) with its raw fields, reason, exception and
traceback, delivery count and correlation id, and only then acknowledged, so the orders behind it
keep flowing. It goes to the broker, not the DB: dead-lettering works while the DB is down, and the
default worker records it when it can (``orders.tasks.record_dead_letter``). A crash between the
publish and the acknowledgment delivers the entry again: it is published again and recorded once
(the record is idempotent per market and entry id). Before its last delivery, a failing entry is
left pending and delivered again.
"""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

from django.conf import settings

from matching.queue import Entry, RedisStreamOrderQueue
from orders.models import DeadLetterReason
from spot import metrics
from spot.celery import publish_dead_letter

logger = logging.getLogger(__name__)


def entry_correlation_id(entry: Entry) -> str:
    """The entry's correlation id (its command's ``cid``), or ``-``; for log lines and the letter."""
    try:
        cid = json.loads(entry.data).get("cid")
    except (ValueError, AttributeError, RecursionError):
        return "-"
    return cid if isinstance(cid, str) and cid else "-"


class DeadLetters:
    """Decides when a failing entry is dead and publishes it (the queue's ``dead_letter_sink``)."""

    def __init__(self, market: str, *, queue: RedisStreamOrderQueue) -> None:
        self.market = market
        self.queue = queue

    def poison(
        self,
        entry: Entry,
        reason: str,
        retry: list[str],
        *,
        reason_kind: str = DeadLetterReason.MALFORMED,
        exc: BaseException | None = None,
    ) -> None:
        """An entry that cannot be applied: dead-lettered at its last delivery, else added to ``retry``
        (left pending, delivered again). One that the broker refuses is left pending too."""
        metrics.ERRORS.labels(self.market, "poison").inc()
        if entry.deliveries >= settings.MATCHING_MAX_DELIVERIES and self.send(entry, reason, reason_kind, exc):
            return
        logger.warning(
            "matcher %s: entry %s delivery %s failed: %s",
            self.market,
            entry.id,
            entry.deliveries,
            reason,
            extra={"correlation_id": entry_correlation_id(entry)},
        )
        retry.append(entry.id)

    def send(self, entry: Entry, reason: str, reason_kind: str, exc: BaseException | None = None) -> bool:
        """Publish the entry as a dead letter, then acknowledge it. Returns False, the entry left
        pending, when the broker (or Redis, for the acknowledgment) did not answer."""
        detail: dict[str, Any] = {
            "kind": "stream",
            "reason_kind": str(reason_kind),
            "fields": _raw_fields(entry),
            "payload": entry.data.decode("utf-8", errors="replace"),
            "deliveries": entry.deliveries,
        }
        if exc is not None:
            detail["exception"] = f"{type(exc).__name__}: {exc}"
            detail["traceback"] = "".join(traceback.format_exception(exc))
        try:
            self.queue.send_to_dlq(entry.id, entry.data, reason, **detail)
        except Exception:  # the broker's errors are kombu's, Redis's or the OS's
            logger.exception(
                "matcher %s: entry %s could not be dead-lettered; it stays pending and is tried again",
                self.market,
                entry.id,
                extra={"correlation_id": entry_correlation_id(entry)},
            )
            return False
        return True

    def publish(self, market: str, entry_id: str, data: bytes, reason: str, **detail: Any) -> None:
        """The queue's dead letter sink: one ``deadletters.record`` task on the ``dead_letter`` queue."""
        cid = entry_correlation_id(Entry(entry_id, data, 0))
        publish_dead_letter(market, entry_id, reason, "" if cid == "-" else cid, **detail)
        logger.error(
            "matcher %s: entry %s dead-lettered after %s deliveries: %s",
            market,
            entry_id,
            detail.get("deliveries", "?"),
            reason,
            extra={"correlation_id": cid},
        )


def _raw_fields(entry: Entry) -> dict[str, str]:
    """The entry's fields as read, whatever their names (decoded, undecodable bytes replaced)."""
    if entry.fields is None:
        return {"c": entry.data.decode("utf-8", errors="replace")}
    return {
        key.decode("utf-8", errors="replace"): value.decode("utf-8", errors="replace")
        for key, value in entry.fields.items()
    }
