"""Celery tasks of the orders domain. Thin: each calls one service."""

from __future__ import annotations

from orders.outbox import order_sweep_unqueued
from spot.celery import app
from spot.resilience import RetryPolicy, is_transient


@app.task(bind=True, ignore_result=True, name="orders.sweep_unqueued")
def sweep_unqueued(self) -> int:  # type: ignore[no-untyped-def]
    """Beat: push `new` orders that never reached their stream (the order row is the outbox)."""
    try:
        return order_sweep_unqueued()
    except Exception as exc:
        policy = RetryPolicy.from_settings()  # FR-RL-002: 3 retries, then the next beat tries again
        if not is_transient(exc) or self.request.retries >= policy.max_retries:
            raise
        raise self.retry(exc=exc, countdown=policy.delay(self.request.retries), max_retries=policy.max_retries) from exc
