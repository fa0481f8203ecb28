"""Dead letters (FR-RL-003): a stream entry that failed ``MATCHING_MAX_DELIVERIES`` deliveries is stored
as a ``DeadLetter`` row with its reason, payload and correlation id, then acknowledged, so the orders
behind it keep flowing. Before that, a failing entry is left pending and delivered again.
"""

from __future__ import annotations

import json
import logging

from django.conf import settings

from matching.queue import Entry, RedisStreamOrderQueue
from matching.worker.store import MatchStore
from matching.worker.writer import BatchWriter
from spot import metrics
from spot.resilience import CircuitBreaker

logger = logging.getLogger(__name__)


class DeadLetters:
    """Decides when a failing entry is dead and stores it through the writer's thread."""

    def __init__(
        self, market: str, *, queue: RedisStreamOrderQueue, writer: BatchWriter, breaker: CircuitBreaker
    ) -> None:
        self.market = market
        self.queue = queue
        self.writer = writer
        self.breaker = breaker

    def poison(self, entry: Entry, reason: str, retry: list[str]) -> None:
        """An entry that cannot be applied: dead-lettered at its last delivery, else added to ``retry``
        (left pending, delivered again)."""
        metrics.ERRORS.labels(self.market, "poison").inc()
        if entry.deliveries >= settings.MATCHING_MAX_DELIVERIES:
            self.queue.send_to_dlq(entry.id, entry.data, reason)
        else:
            logger.warning(
                "matcher %s: entry %s delivery %s failed: %s", self.market, entry.id, entry.deliveries, reason
            )
            retry.append(entry.id)

    def store(self, market: str, entry_id: str, data: bytes, reason: str) -> None:
        """The queue's dead letter sink: one row per (market, entry), written before the entry is acked."""
        text = data.decode("utf-8", errors="replace")
        try:
            cid = str(json.loads(text).get("cid") or "")
        except (ValueError, AttributeError):
            cid = ""
        deliveries = settings.MATCHING_MAX_DELIVERIES
        store: MatchStore = self.writer.store
        self.writer.call(
            lambda: self.breaker.call(lambda: store.write_dead_letter(market, entry_id, text, reason, cid, deliveries))
        )
        metrics.DEAD_LETTERS.labels(market).inc()
