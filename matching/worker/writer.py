"""The writer: commits batch N in one transaction, then acknowledges and publishes it, on a thread of its
own while the engine matches batch N + 1, so the DB's work overlaps Python's.

After the commit, one Redis round trip writes the order cache through (FR-DS-002), acknowledges the
entries, publishes the top of book when due and counts the batch. A failure anywhere surfaces as
``WriteFailed`` at the engine's next hand-over; the engine then recovers (``MatchingEngine._recover``).
Entries that come back although they committed (a crash or a Redis failure after the commit) are
acknowledged without being applied again, and the cache of every order they changed is refreshed
from the DB first (``MatchStore.changed_orders``): the cache never outlives the truth.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import redis
from django.conf import settings

from matching.queue import RedisStreamOrderQueue, entry_key
from matching.worker.batch import Batch
from matching.worker.settlement import MarketSpec
from matching.worker.store import MatchStore, StoredOrder
from orders.cache import MutableWriter
from spot import keys, metrics
from spot.resilience import CircuitBreaker

logger = logging.getLogger(__name__)

T = TypeVar("T")

TRIM_EVERY_BATCHES = 100  # acknowledged entries are dropped from the stream this often


class WriteFailed(Exception):
    """A batch's write (or what follows its commit) failed; ``cause`` says why."""

    def __init__(self, batch: Batch, cause: Exception) -> None:
        super().__init__(repr(cause))
        self.batch = batch
        self.cause = cause


class BatchWriter:
    """The only user of ``store`` while the engine runs: batches and dead letters go through its thread."""

    def __init__(
        self,
        spec: MarketSpec,
        *,
        redis_client: redis.Redis,
        store: MatchStore,
        queue: RedisStreamOrderQueue,
        breaker: CircuitBreaker,
        clock: Callable[[], float],
    ) -> None:
        self.spec = spec
        self.redis = redis_client
        self.store = store
        self.queue = queue
        self.breaker = breaker
        self.clock = clock
        self.batches = 0
        self._cache = MutableWriter(redis_client)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"writer-{spec.code}")
        self._inflight: Future[None] | None = None
        self._statements_reported = 0

    def submit(self, batch: Batch, epoch: int) -> None:
        """Hand a batch over; the previous one must have been flushed."""
        assert self._inflight is None, "flush() the batch in flight first"
        self._inflight = self._thread.submit(self._write, batch, epoch)

    def flush(self) -> None:
        """Wait for the batch in flight; raises ``WriteFailed`` if its write failed."""
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            inflight.result()

    def discard(self) -> None:
        """Wait until idle, ignoring what the write raised (the caller rebuilds its book anyway)."""
        try:
            self.flush()
        except WriteFailed as failure:
            logger.warning("matcher %s: discarded a failed write: %r", self.spec.code, failure.cause)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the writer's thread, after the batch it may be writing (the store is not
        thread-safe)."""
        return self._thread.submit(fn).result()

    # -- the writer's thread -------------------------------------------------------------------

    def _write(self, batch: Batch, epoch: int) -> None:
        try:
            self.breaker.call(lambda: self.store.write_batch(batch, epoch=epoch))
            # A Redis failure here (after the commit) takes the same path: the book is rebuilt, the
            # unacknowledged entries are delivered again and acknowledged by the checkpoint, and their
            # orders' cache entries are refreshed from the DB then (``Batch.refresh``), so the cache
            # never keeps a state older than the DB's. Read after this batch's commit: the newest.
            refreshed = self.breaker.call(lambda: self.store.changed_orders(batch.refresh)) if batch.refresh else ()
            self._publish(batch, epoch, refreshed)
        except Exception as exc:
            raise WriteFailed(batch, exc) from exc

    def _publish(self, batch: Batch, epoch: int, refreshed: Sequence[StoredOrder] = ()) -> None:
        """Write the order cache through, ack, publish the book and stats: one Redis round trip."""
        market, to_ack = self.spec.code, batch.to_ack
        now = self.clock()
        stamp = f"{now:.6f}"
        pipe = self.redis.pipeline(transaction=False)
        # The cache before the acknowledgement: Redis runs a pipeline's commands in order, so if the
        # connection breaks halfway, an entry is never acknowledged while its cache write was lost.
        if refreshed:
            self._cache.write(pipe, refreshed, stamp)
        self._cache.write(pipe, list(batch.effects.orders.values()), stamp)
        if to_ack:
            pipe.xack(self.queue.key, self.queue.group, *to_ack)
        if batch.snapshot is not None:
            pipe.set(keys.book(market), batch.snapshot)
        stats = keys.matcher_stats(market)
        pipe.hset(stats, mapping={"statements": self.store.statements, "epoch": epoch})
        pipe.hincrby(stats, "commands", len(batch.entries))
        pipe.hincrby(stats, "batches", 1)
        pipe.hincrby(stats, "trades", len(batch.effects.trades))
        if settings.MATCHING_RECORD_LATENCY and to_ack:
            ms = int(now * 1000)
            pipe.rpush(keys.matcher_latency(market), *(f"{t}:{ms - t}" for t in (entry_key(i)[0] for i in to_ack)))
        if settings.MATCHING_RECORD_LATENCY and batch.effects.orders:
            # The batch is committed (``now`` is read after the commit): the HTTP benchmark joins these
            # to the order ids its requests were answered with, for the end-to-end latency.
            us = int(now * 1_000_000)
            pipe.rpush(keys.matcher_commits(market), *(f"{order_id}:{us}" for order_id in batch.effects.orders))
        if to_ack and self.batches % TRIM_EVERY_BATCHES == 0:
            self.queue.trim(to_ack[-1], pipe)
        pipe.execute()
        if batch.retry:
            self.queue.nack(batch.retry)
        self.batches += 1
        metrics.BATCH_SIZE.labels(market).observe(len(batch.entries))
        metrics.DB_STATEMENTS.labels(market).inc(self.store.statements - self._statements_reported)
        self._statements_reported = self.store.statements
        latency = metrics.ORDER_LATENCY.labels(market)
        for entry_id in to_ack:
            latency.observe(max(0.0, now - entry_key(entry_id)[0] / 1000))
