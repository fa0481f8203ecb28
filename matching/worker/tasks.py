"""Celery tasks of the matcher. Thin: they pick the engine and call it.

``drain(market, chain, turn)`` matches for a time slice, then sends the next ``drain`` message of its chain:
one Celery message per slice (many batches when busy, one blocking read when idle), never one per
order. An idle matcher waits in a blocking stream read, so a new order is matched within
milliseconds, not on a timer tick.

Chains are per process (``matching.worker.registry``): a matcher worker starts one per market of its
queues when it is ready, on its private queue, and only that process runs it. ``drain(market)``
without a chain is a kick, sent to the market's shared match queue by the watchdog
(``ensure_matchers``) or an operator (``celery -A spot call matching.drain --args='["btc_usdt"]'
--queue match_btc``): the process that receives it starts a new chain unless its own is running.
A process without the market's lease stands by: it tries again every ``STANDBY_RETRY_S``, says so
once, and takes over when the owner's lease expires.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from celery import signals
from django.conf import settings
from kombu import Exchange, Queue

from matching.worker import registry
from matching.worker.errors import NotOwner
from matching.worker.registry import engine_count, engine_for, queue_for, record_heartbeat
from orders.models import Market
from spot import keys
from spot.celery import app
from spot.correlation import bind, new_correlation_id, unbind
from spot.redis import redis_client
from spot.resilience import CircuitOpen, is_transient
from spot.worker import is_match_queue

logger = logging.getLogger(__name__)

SLICE_S = 0.25  # matching time per Celery message; short enough to share a worker between markets
STANDBY_RETRY_S = 2.0  # how often a worker without the market's lease checks again
# The watchdog kicks a market whose heartbeat is older than this (the owner drains at least once a
# second), and a process adopts a kick only when its own chain of the market has not run for as long.
KICK_AFTER_S = 5.0
# A private chain queue left by a killed process empties itself (kombu's x-expires on Redis); the
# living process pops its queue within milliseconds, and a retry's countdown (<= RETRY_CAP_S) is held
# by the worker, not in the queue.
PRIVATE_QUEUE_EXPIRES_S = 300.0


def _idle_block_ms() -> int:
    # A worker serving several markets must not sit on one market's stream while another's fills.
    return settings.MATCHING_IDLE_BLOCK_MS if engine_count() <= 1 else 50


def send_drain(market: str, chain: str, countdown: float | None = None) -> None:
    """The chain's next slice, on this process's private queue (the shared queue outside a matcher)."""
    queue = registry.private_queue() or queue_for(market)
    drain.apply_async((market, chain, registry.chain_turn(market)), queue=queue, countdown=countdown)


def send_kick(market: str) -> None:
    """Ask the market's matchers to make sure a chain runs (the kick expires if none is there)."""
    drain.apply_async((market,), queue=queue_for(market), expires=keys.KICK_TTL_S)


# - max_retries=None: the drain chain retries transient faults (SpotTask's autoretry_for, FR-RL-002
#   backoff) without end: orders wait in the stream and must be matched as soon as the DB or Redis is
#   back. (Celery's retry(max_retries=None) would mean "the task's default", 3.)
# - send_events=False: an idle matcher runs a slice a second per market, which buried Flower's task
#   list (431 drains in 3 minutes); the matcher's activity is in its metrics and /health instead.
# - acks_late=False: a slice is a turn of this process's chain, not work to redo; its work waits in
#   the stream for whoever owns the market next. A message restored after a crash could only land in
#   the dead process's private queue.
@app.task(
    bind=True,
    acks_late=False,
    ignore_result=True,
    name="matching.drain",
    max_retries=None,
    send_events=False,
)
def drain(self: Any, market: str, chain: str | None = None, turn: int | None = None) -> int:
    """Match ``market``'s queued commands for up to ``SLICE_S``; returns how many were handled.

    Without ``chain`` (a kick), start this process's chain of the market unless it runs. A message of
    another chain, or of a turn that already ran (a duplicate), does nothing."""
    if chain is None:
        idle = registry.chain_idle_s(market)
        if idle is not None and idle < KICK_AFTER_S:
            logger.debug("kick for %s ignored: this process's chain of it ran %.1f s ago", market, idle)
            return 0
        # The first slice goes through the private queue too, so that its retries stay there.
        send_drain(market, registry.chain_start(market))
        logger.info("matcher %s: drain chain started (kick)", market)
        return 0
    if not registry.chain_is_current(market, chain, turn):
        logger.debug("drain of %s: chain %s turn %s is not this process's next; dropped", market, chain, turn)
        return 0
    token = bind(new_correlation_id())
    try:
        # Inside the try: these touch Redis and the DB too, and an outage must retry the chain, not end it.
        redis_client().hincrby(keys.matcher_stats(market), "tasks", 1)
        handled = engine_for(market).drain(max_seconds=SLICE_S, block_ms=_idle_block_ms())
        record_heartbeat(market)  # only the owner gets here
    except NotOwner as exc:
        # Not an error: another matcher holds the lease. Ask again later, on this process's own chain.
        _stand_by(market, exc)
        send_drain(market, chain, countdown=STANDBY_RETRY_S)
        return 0
    except Exception as exc:
        registry.chain_ran(market, error=exc)
        if is_transient(exc) or isinstance(exc, CircuitOpen):
            logger.warning("matcher %s waits: %r", market, exc)  # SpotTask retries it
        else:
            logger.exception("matcher %s failed", market)  # dead-lettered; the watchdog kicks a new chain
        raise
    finally:
        unbind(token)
    if registry.chain_ran(market, role="owner") == "standby":
        logger.warning("matcher %s took over market %s", _node(), market)
    send_drain(market, chain)
    return handled


def _stand_by(market: str, exc: NotOwner) -> None:
    """Say once that this process stands by for the market, then only at DEBUG until it takes over."""
    if registry.chain_ran(market, role="standby") == "standby":
        logger.debug("matcher %s still stands by for %s: %s", _node(), market, exc)
        return
    try:
        owner = engine_for(market).lease.owner() or "nobody (the lease is free)"
    except Exception as lookup:  # noqa: BLE001 - the message matters more than the owner's name
        owner = f"an owner not known ({lookup!r})"
    logger.warning("matcher %s stands by (market %s is matched by %s)", _node(), market, owner)


def _node() -> str:
    return _worker_state.get("nodename") or f"pid {os.getpid()}"


# send_events=False: beat runs it every 2 s, which would be 30 rows a minute in Flower's task list.
@app.task(ignore_result=True, name="matching.ensure_matchers", send_events=False)
def ensure_matchers() -> int:
    """Beat: kick every enabled market whose owner's heartbeat is older than ``KICK_AFTER_S`` (or gone).

    One kick per market per ``keys.KICK_TTL_S``, and each expires as fast, so kicks do not pile up on
    a queue no matcher consumes. Returns how many markets were kicked."""
    kicked = 0
    client = redis_client()
    for code in (market.code for market in Market.objects.filter(enabled=True).only("coin", "currency")):
        age = registry.heartbeat_age(code)
        if age is not None and age <= KICK_AFTER_S:
            continue
        if client.set(keys.kick(code), "1", nx=True, ex=keys.KICK_TTL_S):
            send_kick(code)
            kicked += 1
    return kicked


# -- the matcher worker's life: private queue, port, chains ----------------------------------------

_worker_state: dict[str, Any] = {}


def _match_queues(worker_app: Any) -> list[str]:
    """The match queues this worker consumes; empty unless all it consumes are (``spot.worker``)."""
    consumed = sorted(worker_app.amqp.queues.consume_from or {})
    return consumed if consumed and all(is_match_queue(name) for name in consumed) else []


@signals.celeryd_after_setup.connect
def _add_private_queue(sender: str = "", instance: Any = None, **_: object) -> None:
    """A matcher worker also consumes a queue of its own, for its drain chains."""
    if instance is None:
        return
    queues = _match_queues(instance.app)
    if not queues:
        return
    name = registry.private_queue_name(queues, sender or instance.hostname)
    instance.app.amqp.queues.select_add(
        Queue(name, Exchange(name, type="direct"), routing_key=name, expires=PRIVATE_QUEUE_EXPIRES_S)
    )
    registry.set_private_queue(name)
    _worker_state.update(nodename=sender or instance.hostname, queues=queues)


@signals.worker_ready.connect
def _start(sender: object = None, **_: object) -> None:
    """A matcher worker serves its port and starts a chain for each market of its queues."""
    queues = _worker_state.get("queues")
    if not queues:
        return
    try:
        _drop_dead_private_queues(queues)
    except Exception:
        logger.warning("matcher %s: left-over private queues not dropped", queues, exc_info=True)
    try:
        _serve_port(queues)
    except Exception:
        logger.exception("matcher %s: /metrics and /health not served", ",".join(queues))
    try:
        markets = registry.markets_for_queues(set(queues))
    except Exception:
        logger.exception("matcher %s: markets not read; the watchdog's kicks will start the chains", queues)
        return
    for market in markets:
        send_drain(market, registry.chain_start(market))
        logger.info("matcher for %s starting on %s", market, queue_for(market))


def _drop_dead_private_queues(queues: list[str]) -> None:
    """Delete the private queues of this host's killed matchers of the same queues.

    A slice's message is acknowledged only after it ran (the solo pool acks through the event loop),
    so a matcher killed mid-slice leaves it unacknowledged, and the broker puts it back on the dead
    process's private queue after the visibility timeout, where nobody reads it (and x-expires does
    not reach it). Only queues of this host are judged: their pid is checked here."""
    prefix = registry.private_queue_prefix(queues)
    host = socket.gethostname()
    with app.connection_for_write() as connection:
        client = connection.default_channel.client
        for raw in client.scan_iter(match=f"{prefix}.*", count=1000):
            key = raw.decode(errors="replace")
            name = key.split("\x06\x16", 1)[0]  # kombu's priority suffix
            node, _, pid = name.removeprefix(f"{prefix}.").rpartition(".")
            if node.partition("@")[2] != host or not pid.isdigit() or _alive(int(pid)):
                continue
            client.delete(key)
            logger.info("matcher: dropped %s, the private queue of a matcher that is gone", key)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _serve_port(queues: list[str]) -> None:
    from matching.worker import server

    host = settings.MATCHER_METRICS_HOST
    if settings.MATCHER_METRICS_PORT < 0:
        return
    if settings.MATCHER_METRICS_PORT > 0:
        port, reserved = settings.MATCHER_METRICS_PORT, set()
    else:
        listed = settings.MATCHER_METRICS_PORTS
        try:
            ranked = registry.queues_in_market_order()
        except Exception:
            if not all(q in listed for q in queues):
                raise
            ranked = []  # the DB is not up yet; the listed ports need none
            logger.warning("matcher %s: markets not read; other queues' ports unknown", queues, exc_info=True)
        # A queue no market routes to yet comes after those that markets do.
        ports = server.ports_by_queue([*ranked, *queues], listed, settings.MATCHER_METRICS_BASE_PORT)
        port = ports[queues[0]]
        reserved = {p for q, p in ports.items() if q not in queues}
    _worker_state["server"] = server.serve(
        host,
        port,
        reserved=reserved,
        health=registry.chains_health,
        queue=",".join(queues),
        stale_after_s=settings.MATCHER_HEARTBEAT_STALE_S,  # FR-RL-004: as readiness calls a heartbeat stale
    )


@signals.worker_shutdown.connect
def _release_markets(**_: object) -> None:
    """Release the leases (a standby takes over at once), stop the port, drop the private queue."""
    registry.forget_engines()
    http = _worker_state.pop("server", None)
    if http is not None:
        http.close()
    name = registry.private_queue()
    if name is None:
        return
    registry.set_private_queue(None)
    try:
        with app.connection_for_write() as connection:
            queue = Queue(name, Exchange(name, type="direct"), routing_key=name, expires=PRIVATE_QUEUE_EXPIRES_S)
            bound = queue(connection.default_channel)
            bound.declare()  # known to this channel, so that delete() finds its binding
            bound.delete()
    except Exception:
        logger.warning("matcher: could not delete its private queue %s; it expires by itself", name, exc_info=True)
