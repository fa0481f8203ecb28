"""Celery tasks of the orders domain. Thin: each calls one service.

Retries and dead-lettering come from the project's task base class (``spot.celery.SpotTask``).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings

from orders.deadletters import dead_letter_purge, dead_letter_record
from orders.outbox import order_sweep_unqueued
from spot.celery import RECORD_DEAD_LETTER, app
from spot.correlation import bind, unbind

logger = logging.getLogger(__name__)

# The evidence a dead letter message may carry (spot.celery.publish_dead_letter's ``detail``).
_DETAIL = frozenset(
    {
        "kind",
        "reason_kind",
        "fields",
        "payload",
        "exception",
        "traceback",
        "deliveries",
        "failed_at",
        "task_name",
        "task_args",
        "task_kwargs",
    }
)


# send_events=False: beat runs it every 5 s, which was 12 rows a minute burying the dead letters in
# Flower's task list; what it pushes it logs, and a sweep that fails for good is dead-lettered.
@app.task(ignore_result=True, name="orders.sweep_unqueued", send_events=False)
def sweep_unqueued() -> int:
    """Beat: push `new` orders that never reached their stream (the order row is the outbox).

    FR-RL-002: transient faults are retried 3 times with backoff; then the next beat tries again.
    """
    return order_sweep_unqueued()


# FR-RL-003. max_retries=None: while the DB is down this retries without end (backoff capped at
# RETRY_CAP_S), so the dead letter waits in the broker and is recorded when the DB returns; it is
# never dead-lettered itself (dead_letter=False). acks_late: a worker killed while recording leaves
# the message unacknowledged and the broker delivers it again (CELERY_BROKER_TRANSPORT_OPTIONS);
# recording is idempotent, so that costs no second row.
@app.task(
    bind=True,
    name=RECORD_DEAD_LETTER,
    acks_late=True,
    max_retries=None,
    dead_letter=False,
    ignore_result=True,
)
def record_dead_letter(  # type: ignore[no-untyped-def]
    self, market: str, entry_id: str, reason: str, correlation_id: str, **detail: Any
) -> int:
    """Record one dead letter from the ``dead_letter`` queue; returns its id."""
    token = bind(correlation_id or "-")
    try:
        unknown = sorted(set(detail) - _DETAIL)
        if unknown:
            logger.warning("dead letter %s %s: unknown detail ignored: %s", market, entry_id, ", ".join(unknown))
        letter, created = dead_letter_record(
            market=market,
            entry_id=entry_id,
            reason=reason,
            correlation_id=correlation_id,
            **{name: value for name, value in detail.items() if name in _DETAIL},
        )
        if created:
            logger.warning(
                "dead letter %s recorded: %s %s (%s): %s",
                letter.pk,
                market or letter.task_name,
                entry_id,
                letter.reason_kind,
                reason,
            )
        else:
            logger.info("dead letter %s: %s %s delivered again; recorded once", letter.pk, market, entry_id)
        return int(letter.pk)
    finally:
        unbind(token)


@app.task(ignore_result=True, name="deadletters.purge")
def purge_dead_letters() -> int:
    """Beat, daily: delete handled dead letters older than ``DEAD_LETTER_RETENTION_DAYS`` (FR-RL-003)."""
    return dead_letter_purge(older_than=timedelta(days=settings.DEAD_LETTER_RETENTION_DAYS))
