"""The Celery app ``spot``: configuration from Django settings (``CELERY_*``), tasks from the apps.

Every task of the project is a ``SpotTask`` (the app's ``task_cls``): it retries the transient faults
(``autoretry_for``) with FR-RL-002's backoff, and a task that still fails is dead-lettered: published
as a ``deadletters.record`` task on the ``dead_letter`` queue, which the default worker records.
"""

from __future__ import annotations

import logging
import os
import traceback
from datetime import UTC, datetime
from typing import Any

from celery import Celery, Task
from kombu.utils.objects import cached_property

from spot.correlation import current
from spot.resilience import TRANSIENT_ERRORS, CircuitOpen, RetryPolicy

# Production unless told otherwise, as in spot/wsgi.py: a worker started without DJANGO_SETTINGS_MODULE
# refuses to run half-configured instead of running with development settings.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.prod")

logger = logging.getLogger(__name__)

DEAD_LETTER_QUEUE = "dead_letter"  # FR-RL-003: consumed by the Procfile's default worker
RECORD_DEAD_LETTER = "deadletters.record"  # the task that records one dead letter (orders.tasks)


def publish_dead_letter(market: str, entry_id: str, reason: str, correlation_id: str, **detail: Any) -> None:
    """Send one dead letter to the ``dead_letter`` queue (the broker, not the DB: this works while the
    DB is down; the record task waits for it). ``detail`` carries the evidence (see ``orders.tasks``)."""
    detail.setdefault("failed_at", datetime.now(UTC).isoformat())
    app.send_task(
        RECORD_DEAD_LETTER, args=(market, entry_id, reason, correlation_id), kwargs=detail, queue=DEAD_LETTER_QUEUE
    )


class SpotTask(Task):  # type: ignore[misc]
    """The project's task base class.

    - ``autoretry_for`` the transient faults: DB operational errors, Redis connection errors, an open
      circuit breaker (``spot.resilience``).
    - FR-RL-002 backoff: 100 ms base, doubling, 30 s cap, jitter; ``RETRY_MAX_RETRIES`` (3) retries.
      Celery's own ``retry_backoff`` cannot go below one second (it takes ``int(max(1.0, factor))``),
      so ``retry()`` computes the countdown from ``RetryPolicy`` instead. An open breaker is waited out.
      A task that declares ``max_retries=None`` retries without end.
    - A task that fails for good (retries exhausted, or a bug) is dead-lettered with its name,
      arguments, exception and traceback, unless it sets ``dead_letter = False``.
    """

    autoretry_for = (*TRANSIENT_ERRORS, CircuitOpen)
    retry_backoff = False
    max_retries = 3
    dead_letter = True

    def retry(  # type: ignore[override]
        self,
        args: Any = None,
        kwargs: Any = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: Any = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Any:
        policy = RetryPolicy.from_settings()
        if max_retries is None and self.max_retries is not None:
            max_retries = policy.max_retries
        if eta is None and countdown is None:
            if isinstance(exc, CircuitOpen):
                countdown = max(exc.retry_after, policy.base)
            else:
                countdown = policy.delay(min(self.request.retries, 16))
        return super().retry(
            args=args,
            kwargs=kwargs,
            exc=exc,
            throw=throw,
            eta=eta,
            countdown=countdown,
            max_retries=max_retries,
            **options,
        )

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if not self.dead_letter:
            return
        try:
            publish_dead_letter(
                "",
                task_id,
                f"task {self.name} failed: {type(exc).__name__}: {exc}",
                current() if current() != "-" else "",
                kind="task",
                task_name=self.name,
                task_args=list(args or ()),
                task_kwargs=dict(kwargs or {}),
                exception=f"{type(exc).__name__}: {exc}",
                traceback=str(einfo) if einfo is not None else "".join(traceback.format_exception(exc)),
                deliveries=self.request.retries + 1,
            )
        except Exception:
            logger.exception("task %s[%s] failed and could not be dead-lettered", self.name, task_id)


class SpotCelery(Celery):  # type: ignore[misc]
    """The app, with the project's ``celery worker`` program (``spot.worker.Worker``: a worker on match
    queues runs as a single-process matcher). Celery takes no worker class argument, so ``Worker`` is
    overridden as Celery defines it; the string keeps ``spot.worker`` unimported until a worker starts."""

    @cached_property
    def Worker(self) -> Any:
        return self.subclass_with_self("spot.worker:Worker")


app = SpotCelery("spot", task_cls=SpotTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
