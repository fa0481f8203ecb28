"""The matching engine of one market: stream batch -> heap book -> settlement -> the writer.

One engine per market per matcher process, and one matcher per market (``MarketLease``). Starting takes
the lease, bumps the market's epoch (fencing out a former owner), rebuilds the book from the DB
(``matching.worker.rebuild``) and delivers again what was left pending. Draining pops a batch, matches
it in memory, settles it (``matching.worker.settlement``) and hands it to the writer
(``matching.worker.writer``). Entries at or below the checkpoint stored with the last committed batch
are acknowledged without being applied again.

Stop orders (issue 10): a stop that waits gets a ``stopping`` row with its placement seq and moves no
funds; the engine keeps its place command (``stops``), so when the trades of a later command trigger
it, it settles exactly as a placed order holding what intake held for it, its row taking the seq it
triggered with. The stops one command triggers settle after that command, in the order they entered
the book (``PlaceResult.triggered``). ``last_seq`` follows the book's counter, which triggered stops
advance.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import redis
from django.conf import settings

from matching.commands import Command, MalformedCommand, PlaceCommand, decode
from matching.core import CancelResult, OrderStatus, PlaceResult
from matching.lease import MarketLease
from matching.matcher import MarketMatcher, Rejected
from matching.queue import FIELD, Entry, RedisStreamOrderQueue, entry_key
from matching.worker.batch import Batch
from matching.worker.deadletters import DeadLetters, entry_correlation_id
from matching.worker.errors import Fenced, NotOwner
from matching.worker.rebuild import rebuild_book
from matching.worker.settlement import BASE, MarketSpec, OrderState, Settlement
from matching.worker.store import MatchStore
from matching.worker.writer import BatchWriter, WriteFailed
from orders.models import DeadLetterReason
from spot import keys, metrics
from spot.resilience import CircuitBreaker, CircuitOpen, is_transient

logger = logging.getLogger(__name__)

BOOK_PUBLISH_INTERVAL_S = 0.1  # top of book for intake's market-buy reference and the API
BOOK_DEPTH_LEVELS = 20


def _about(command: Command) -> dict[str, str]:
    """Log ``extra`` for a line about one command: its entry's correlation id (FR-OB-002), which the
    record keeps (``spot.correlation.CorrelationIdFilter``) instead of the drain task's own."""
    return {"correlation_id": command.cid or "-"}


class MatchingEngine:
    """Drains one market's stream into its in-memory book and the DB. Not thread-safe."""

    def __init__(
        self,
        spec: MarketSpec,
        *,
        redis_client: redis.Redis,
        store: MatchStore | None = None,
        fee_account_id: int,
        batch_size: int | None = None,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec
        self.market = spec.code
        self.redis = redis_client
        self.fee_account_id = fee_account_id
        self.batch_size = batch_size or settings.MATCHING_BATCH_SIZE
        self.breaker = breaker or CircuitBreaker.from_settings(f"db:{spec.code}", on_change=metrics.breaker_changed)
        self.store = store or MatchStore()
        self.lease = MarketLease(redis_client, spec.code, settings.MATCHING_LEASE_TTL_MS)
        self.queue = RedisStreamOrderQueue(redis_client, spec.code)
        self.writer = BatchWriter(
            spec, redis_client=redis_client, store=self.store, queue=self.queue, breaker=self.breaker, clock=clock
        )
        self.dead_letters = DeadLetters(spec.code, queue=self.queue)
        self.queue.dead_letter_sink = self.dead_letters.publish
        self.matcher: MarketMatcher | None = None  # None until started, and again when the book is stale
        self.epoch = 0
        self.checkpoint = (0, 0)
        self.last_seq = 0
        self.states: dict[int, OrderState] = {}  # per resting order, what its row needs beyond the book's
        self.stops: dict[int, PlaceCommand] = {}  # per waiting stop order, the command it came with
        self._isolate = 0  # after a batch failed for a non-transient reason: this many batches of one
        self._debug = False  # a DEBUG line per command (matched, canceled) with its correlation id
        self._book_published_at = 0.0
        self._reclaimed_at = time.monotonic()

    # -- life cycle ----------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self.matcher is not None

    def start(self) -> None:
        """Take the lease, fence former owners, rebuild the book from the DB and check it.

        Raises ``NotOwner`` when another matcher holds the market.
        """
        self.writer.discard()  # the store is the writer's while a batch is in flight
        if not self.lease.acquire():
            raise NotOwner(f"market {self.market} is matched by {self.lease.owner()}; this worker stands by")
        self.queue.ensure_group()
        # FR-OB-001: the depth has a sample from the start, not only after the first slice (a
        # rebuild of a large book takes seconds).
        metrics.QUEUE_DEPTH.labels(self.market).set(self.queue.depth())
        self.epoch, last_entry, last_seq = self.store.claim_epoch(self.spec.id)
        self.checkpoint = entry_key(last_entry)
        started = time.perf_counter()
        self.matcher, self.states, self.stops = rebuild_book(self.store, self.spec)
        # Sequence numbers continue after the highest ever given, not only the highest resting.
        self.last_seq = max(last_seq, self.matcher.book.next_seq - 1)
        self.queue.nack(["*"])  # deliver again what a predecessor (or a failed batch) left pending
        rebuild_s = time.perf_counter() - started
        resting = len(self.matcher.book)
        self.redis.hset(
            keys.matcher_stats(self.market),
            mapping={
                "rebuild_seconds": f"{rebuild_s:.3f}",
                "resting": resting,
                "stopping": len(self.stops),
                # The start-up's statements (epoch, rebuild) are counted here, so a reader that takes
                # this figure when the matcher has started counts only the batches' statements after it.
                "statements": self.store.statements,
                "started_at": f"{time.time():.6f}",
            },
        )
        logger.info(
            "matcher %s started: epoch %s, %s resting orders and %s waiting stops rebuilt in %.2f s, checkpoint %s",
            self.market,
            self.epoch,
            resting,
            len(self.stops),
            rebuild_s,
            last_entry,
        )

    def stop(self) -> None:
        self.writer.discard()
        self.matcher = None
        self.states = {}
        self.stops = {}
        self.lease.release()
        self.store.close()

    # -- draining ------------------------------------------------------------------------------

    def drain(self, *, max_seconds: float = 0.25, block_ms: int | None = None) -> int:
        """Process batches until the stream is empty or ``max_seconds`` passed; returns commands handled.

        With ``block_ms``, an empty stream is waited on that long first (one blocking read). Returns
        with nothing in flight. Raises ``NotOwner``, ``CircuitOpen`` or a transient DB/Redis error
        (the caller retries; the next call rebuilds the book from the DB).
        """
        if not self.started:
            self.breaker.call(self.start)  # start-up reads the DB too: its failures count (FR-RL-001)
        elif not self.lease.renew_if_due():
            self.stop()
            raise NotOwner(f"market {self.market}: lease lost")
        self._reclaim_if_due()
        deadline = time.monotonic() + max_seconds
        handled = 0
        while True:
            n = self.drain_batch(block_ms=block_ms if handled == 0 else None)
            handled += n
            if n == 0 or time.monotonic() >= deadline:
                self.flush()
                # FR-OB-001 queue depth: once a slice (a few times a second), not per batch.
                metrics.QUEUE_DEPTH.labels(self.market).set(self.queue.depth())
                return handled
            self.lease.renew_if_due()

    def drain_batch(self, block_ms: int | None = None) -> int:
        """One batch: pop, match in memory, settle, hand it to the writer. Returns entries handled.

        A failed write surfaces at the next hand-over (or ``flush``); the book then holds effects that
        were never written, so the engine discards it and rebuilds from the DB, and every
        unacknowledged entry is delivered again (the checkpoint skips those that did commit).
        """
        assert self.matcher is not None, "start() first"
        self._debug = logger.isEnabledFor(logging.DEBUG)  # once a batch: at INFO, no per-command line costs
        entries = self.queue.pop(1 if self._isolate else self.batch_size, block_ms)
        if not entries:
            if self.flush():  # a failed write was recovered: its entries are pending again
                return self.drain_batch()
            return 0
        if self._isolate:
            self._isolate -= 1
        batch = Batch(entries, Settlement(self.spec, self.fee_account_id))
        for entry in entries:
            key = entry_key(entry.id)
            try:
                if key <= self.checkpoint:
                    # Committed before a crash (or a Redis failure) that may have come before its cache
                    # write: acknowledge without applying, and have the writer refresh the cache of the
                    # orders it changed (``Batch.refresh``). A malformed entry was never applied, so it
                    # goes on towards the dead letter queue instead.
                    batch.refresh.append(self._decode(entry).id)
                    batch.to_ack.append(entry.id)
                    continue
                self._apply(self._decode(entry), batch.effects)
            except MalformedCommand as exc:
                self.dead_letters.poison(entry, f"malformed command: {exc}", batch.retry, exc=exc)
                continue
            except Exception as exc:  # noqa: BLE001 - any bug isolates its entry; _abandon logs it
                self._abandon(entries, entry, exc)
                return len(entries)
            batch.to_ack.append(entry.id)
            self.checkpoint = key
            batch.last_entry = entry.id
        batch.last_seq = self.last_seq
        now = time.monotonic()
        if now - self._book_published_at >= BOOK_PUBLISH_INTERVAL_S:
            batch.snapshot = json.dumps(self.book_snapshot(BOOK_DEPTH_LEVELS))  # taken here: the book moves on
            self._book_published_at = now
        self.flush()
        self.writer.submit(batch, self.epoch)
        return len(entries)

    def flush(self) -> bool:
        """Wait for the batch being written. If its write failed, recover and raise: the transient
        error itself, ``NotOwner`` when fenced; a bug isolates its batch instead, and then this returns
        True (its entries are pending again)."""
        try:
            self.writer.flush()
        except WriteFailed as failure:
            self._recover(failure.batch, failure.cause)
            return True
        return False

    def _reclaim_if_due(self) -> None:
        """FR-DS-003: entries another consumer name left pending for ``MATCHING_RECLAIM_IDLE_MS`` are
        taken over (a restarted matcher reads its own pending entries back at once)."""
        idle_ms = settings.MATCHING_RECLAIM_IDLE_MS
        now = time.monotonic()
        if (now - self._reclaimed_at) * 1000 >= idle_ms:
            self._reclaimed_at = now
            if claimed := self.queue.reclaim_idle(idle_ms):
                logger.warning(
                    "matcher %s: reclaimed %s entries left pending by another consumer", self.market, claimed
                )

    # -- recovery ------------------------------------------------------------------------------

    def _recover(self, batch: Batch, exc: Exception) -> None:
        self.matcher = None  # it may hold batches that were not written
        self.queue.nack(["*"])
        if isinstance(exc, Fenced):
            self.stop()
            raise NotOwner(f"market {self.market}: {exc}") from exc
        if is_transient(exc) or isinstance(exc, CircuitOpen):
            raise exc
        culprit = batch.entries[0] if len(batch.entries) == 1 else None
        self._abandon(batch.entries, culprit, exc)

    def _abandon(self, entries: list[Entry], culprit: Entry | None, exc: Exception) -> None:
        """A bug, not a passing fault: nothing of the batch is written, the book is rebuilt from the DB
        and the batch delivered again, one entry at a time, so the entry at fault is isolated and, after
        ``MATCHING_MAX_DELIVERIES``, dead-lettered (with the exception and its traceback) while the
        others flow."""
        cid = entry_correlation_id(culprit) if culprit is not None else "-"
        logger.error(
            "matcher %s: batch of %s failed: %r",
            self.market,
            len(entries),
            exc,
            exc_info=exc,
            extra={"correlation_id": cid},
        )
        metrics.ERRORS.labels(self.market, type(exc).__name__).inc()
        self.matcher = None
        self.writer.discard()
        if culprit is not None and culprit.deliveries >= settings.MATCHING_MAX_DELIVERIES:
            self.dead_letters.send(culprit, f"{type(exc).__name__}: {exc}", DeadLetterReason.ERROR, exc)
        self.queue.nack(["*"])
        self._isolate = len(entries)
        self.start()

    # -- applying one command ------------------------------------------------------------------

    def _decode(self, entry: Entry) -> Command:
        """The entry's command; raises ``MalformedCommand`` for garbage, another market's command or a
        place that does not say what it holds. Runs before the book is touched."""
        if entry.fields is not None and FIELD not in entry.fields:
            names = ", ".join(sorted(name.decode("utf-8", "replace") for name in entry.fields)) or "none: trimmed"
            raise MalformedCommand(f"the entry has no command field 'c' (its fields: {names})")
        command = decode(entry.data)
        if command.market is not None and command.market != self.market:
            raise MalformedCommand(f"market {command.market!r} does not belong to stream {self.market!r}")
        if isinstance(command, PlaceCommand) and (command.held is None or command.held % BASE):
            raise MalformedCommand(f"order {command.id}: the entry does not say exactly what the order holds")
        return command

    def _apply(self, command: Command, effects: Settlement) -> None:
        matcher = self.matcher
        assert matcher is not None
        market = self.market
        if isinstance(command, PlaceCommand):
            if command.id in matcher.book:  # resting or a waiting stop
                logger.warning(
                    "matcher %s: order %s is already in the book; duplicate entry ignored",
                    market,
                    command.id,
                    extra=_about(command),
                )
                return
            self.last_seq += 1
            outcome = matcher.place(command, self.last_seq)
            if isinstance(outcome, Rejected):
                logger.warning(
                    "matcher %s: order %s rejected: %s", market, command.id, outcome.reason, extra=_about(command)
                )
                effects.reject(command, self.last_seq, outcome.reason)
                metrics.ORDERS.labels(market, "rejected").inc()
                return
            # The stops this command triggered took the seqs after its own from the book's counter.
            self.last_seq = max(self.last_seq, matcher.book.next_seq - 1)
            if outcome.status is OrderStatus.STOPPING:
                self.stops[command.id] = command
                effects.wait(command, outcome.seq)
                metrics.ORDERS.labels(market, outcome.status.value).inc()
            else:
                self._settle(command, outcome, effects)
            stops = self.stops
            for result in outcome.triggered:
                self._settle(stops.pop(result.order_id), result, effects)
            return
        result = matcher.cancel(command)
        if isinstance(result, CancelResult):
            if result.stop:
                effects.cancel_stop(result, self.stops.pop(result.order_id))
            else:
                effects.cancel(result, self.states.pop(result.order_id))
            metrics.ORDERS.labels(market, "canceled").inc()
            if self._debug:
                logger.debug("matcher %s: order %s canceled", market, command.id, extra=_about(command))
        else:
            metrics.ORDERS.labels(market, "cancel_rejected").inc()
            if self._debug:
                logger.debug(
                    "matcher %s: cancel of order %s rejected: %s",
                    market,
                    command.id,
                    result.reason,
                    extra=_about(command),
                )

    def _settle(self, command: PlaceCommand, outcome: PlaceResult, effects: Settlement) -> None:
        """Settle an order that entered the book (placed, or a stop that triggered) and keep the
        states of the orders it touched."""
        market = self.market
        states = self.states
        for order_id, state in effects.place(command, outcome, states):
            if state is None:
                states.pop(order_id, None)
            else:
                states[order_id] = state
        if outcome.trades:
            metrics.TRADES.labels(market).inc(len(outcome.trades))
        metrics.ORDERS.labels(market, outcome.status.value).inc()
        if self._debug:
            logger.debug(
                "matcher %s: order %s matched: %s, %s trades%s",
                market,
                command.id,
                outcome.status.value,
                len(outcome.trades),
                "" if outcome.trigger_price is None else f" (stop triggered at {outcome.trigger_price} ticks)",
                extra=_about(command),
            )

    # -- reads ---------------------------------------------------------------------------------

    def book_snapshot(self, levels: int | None = None) -> dict[str, object]:
        """Aggregated depth as decimal strings, best first (the replay's ``book`` event shape), and
        ``at``: when it was taken, in ms (the API's ``updatedAt``)."""
        assert self.matcher is not None
        spec = self.spec
        bids, asks = self.matcher.book.depth(levels)
        return {
            "market": self.market,
            "at": time.time_ns() // 1_000_000,
            "bids": [[str(p * spec.tick_size), str(q * spec.lot_size)] for p, q in bids],
            "asks": [[str(p * spec.tick_size), str(q * spec.lot_size)] for p, q in asks],
        }
