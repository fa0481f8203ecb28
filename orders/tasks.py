"""Celery tasks of the orders domain. Thin: each calls one service.

Retries and dead-lettering come from the project's task base class (``spot.celery.SpotTask``).
"""

from __future__ import annotations

from orders.outbox import order_sweep_unqueued
from spot.celery import app


@app.task(ignore_result=True, name="orders.sweep_unqueued")
def sweep_unqueued() -> int:
    """Beat: push `new` orders that never reached their stream (the order row is the outbox).

    FR-RL-002: transient faults are retried 3 times with backoff; then the next beat tries again.
    """
    return order_sweep_unqueued()
