"""Celery tasks of the matcher. Thin: they pick the engine and call it.

``drain(market, chain)`` matches for a time slice, then sends the next ``drain`` message for its
market: one Celery message per slice (many batches when busy, one blocking read when idle), never
one per order. An idle matcher waits in a blocking stream read, so a new order is matched within
milliseconds, not on a timer tick. Only the market's current chain continues (``new_chain``), so a
message restored after a crash cannot start a second chain.
"""

from __future__ import annotations

import logging

from celery import signals
from django.conf import settings

from matching.worker.errors import NotOwner
from matching.worker.registry import (
    chain_is_current,
    engine_count,
    engine_for,
    forget_engines,
    heartbeat_fresh,
    markets_for_queues,
    new_chain,
    queue_for,
    record_heartbeat,
)
from orders.models import Market
from spot import keys
from spot.celery import app
from spot.correlation import bind, new_correlation_id, unbind
from spot.redis import redis_client
from spot.resilience import CircuitOpen, RetryPolicy, is_transient

logger = logging.getLogger(__name__)

SLICE_S = 0.25  # matching time per Celery message; short enough to share a worker between markets
STANDBY_RETRY_S = 2.0  # how often a worker without the market's lease checks again


def _idle_block_ms() -> int:
    # A worker serving several markets must not sit on one market's stream while another's fills.
    return settings.MATCHING_IDLE_BLOCK_MS if engine_count() <= 1 else 50


def send_drain(market: str, chain: str, countdown: float | None = None) -> None:
    drain.apply_async((market, chain), queue=queue_for(market), countdown=countdown)


# max_retries=None on the task: Celery's retry(max_retries=None) means "the task's default" (3),
# which ended a market's chain after three DB failures in a row (caught by the outage test).
@app.task(bind=True, acks_late=True, ignore_result=True, name="matching.drain", max_retries=None)
def drain(self, market: str, chain: str) -> int:  # type: ignore[no-untyped-def]
    """Match ``market``'s queued commands for up to ``SLICE_S``; returns how many were handled."""
    token = bind(new_correlation_id())
    try:
        # Inside the try: these touch Redis and the DB too, and an outage must retry the chain, not end it.
        if not chain_is_current(market, chain):
            return 0  # superseded: a newer chain drives this market
        redis_client().hincrby(keys.matcher_stats(market), "tasks", 1)
        record_heartbeat(market)
        handled = engine_for(market).drain(max_seconds=SLICE_S, block_ms=_idle_block_ms())
    except NotOwner as exc:
        logger.warning("%s", exc)
        send_drain(market, chain, countdown=STANDBY_RETRY_S)
        return 0
    except CircuitOpen as exc:
        logger.warning("matcher %s waits: %s", market, exc)
        raise self.retry(countdown=max(exc.retry_after, 0.1)) from exc
    except Exception as exc:
        # Transient faults are retried with FR-RL-002 backoff; the chain never ends on its own, since
        # orders wait in the stream and must be matched as soon as the DB or Redis is back.
        policy = RetryPolicy.from_settings()
        delay = policy.delay(min(self.request.retries, 16))
        if is_transient(exc):
            logger.warning("matcher %s: %r; retry in %.2f s", market, exc, delay)
        else:
            logger.exception("matcher %s failed; retry in %.2f s", market, delay)
        raise self.retry(exc=exc, countdown=delay) from exc
    finally:
        unbind(token)
    send_drain(market, chain)
    return handled


@app.task(ignore_result=True, name="matching.ensure_matchers")
def ensure_matchers() -> int:
    """Beat: start a drain chain for every enabled market whose matcher shows no heartbeat."""
    started = 0
    for market in Market.objects.filter(enabled=True):
        if not heartbeat_fresh(market.code):
            send_drain(market.code, new_chain(market.code))
            started += 1
    return started


@signals.worker_ready.connect
def _start_chains(sender: object = None, **_: object) -> None:
    """A matcher worker starts the chains of the markets its queues serve, superseding old ones."""
    try:
        queues = set(app.amqp.queues.consume_from or {})
    except AttributeError:
        return
    markets = markets_for_queues(queues)
    if markets and settings.MATCHER_METRICS_PORT:
        from prometheus_client import start_http_server

        start_http_server(settings.MATCHER_METRICS_PORT, addr="127.0.0.1")
    for market in markets:
        send_drain(market, new_chain(market))
        logger.info("matcher for %s starting on %s", market, queue_for(market))


@signals.worker_shutdown.connect
def _release_markets(**_: object) -> None:
    forget_engines()
