"""The order queue (FR-IF-001) and its Redis Stream implementation (FR-DS-003).

One stream per market, ``orders:<market>``, read by the consumer group ``MATCHING_CONSUMER_GROUP``
(``matching-engine-group``).
Each entry has one field, ``c``: the command as JSON (``matching.commands``). Delivery counts come
from the stream's pending entries list; the matcher decides when an entry is poison. An entry of any
other shape (another field name, more fields, none left) is delivered with its raw fields, so a dead
letter keeps the evidence.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis
from django.conf import settings

from spot import keys

logger = logging.getLogger(__name__)

CONSUMER = "matcher"  # one writer per market (lease), so one stable name: a restarted matcher owns
# the pending entries of the one it replaces and reads them back with id "0".
FIELD = b"c"

# Push a place command once per order: the marker and the entry live in the same Redis, so they
# are lost together, and a re-push after a lost reply or by the sweeper cannot duplicate an order.
_PUSH_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then
  return redis.call('XADD', KEYS[1], '*', 'c', ARGV[1])
end
return false
"""

# Push a command once per marker, and remember the entry id in the marker: an operator's requeue of
# a dead letter (``orders.deadletters``). Tried again after a crash between this push and the DB
# commit that records it, it returns the entry already pushed instead of pushing a second one. With
# a third key (the order's push-once marker), that is set too, so the sweeper does not push the
# order a second time while the requeued entry waits for the matcher.
_PUSH_ONCE_AS = """
local done = redis.call('GET', KEYS[2])
if done then
  return {0, done}
end
local id = redis.call('XADD', KEYS[1], '*', 'c', ARGV[1])
redis.call('SET', KEYS[2], id, 'EX', ARGV[2])
if KEYS[3] then
  redis.call('SET', KEYS[3], '1', 'EX', ARGV[3])
end
return {1, id}
"""


# Trim acknowledged history: everything before the oldest entry still pending (a poison entry waiting
# for its next delivery keeps its payload for the dead letter queue) or, if none, before ARGV[1].
_TRIM_ACKED = """
local summary = redis.call('XPENDING', KEYS[1], ARGV[2])
local keep = ARGV[1]
if summary[1] > 0 then
  local a_ms, a_seq = string.match(summary[2], '(%d+)-(%d+)')
  local b_ms, b_seq = string.match(keep, '(%d+)-(%d+)')
  if tonumber(a_ms) < tonumber(b_ms) or (a_ms == b_ms and tonumber(a_seq) < tonumber(b_seq)) then
    keep = summary[2]
  end
end
return redis.call('XTRIM', KEYS[1], 'MINID', '~', keep)
"""


@dataclass(frozen=True, slots=True)
class Entry:
    """A delivered stream entry: its id, raw command bytes (field ``c``, empty if it has none) and how
    many times it was delivered. ``fields`` is None for the usual shape, exactly ``{c: ...}``; for
    any other it holds the entry's raw fields as read (empty if the entry was trimmed away)."""

    id: str
    data: bytes
    deliveries: int
    fields: dict[bytes, bytes] | None = None


class OrderQueue(Protocol):
    """FR-IF-001: ``push(order)``, ``pop(batch_size)``, ``ack(ids)``, ``nack(ids)``, ``send_to_dlq(...)``."""

    def push(self, command_json: str, *, order_id: int | None = None) -> str | None: ...

    def pop(self, batch_size: int, block_ms: int | None = None) -> list[Entry]: ...

    def ack(self, ids: list[str]) -> None: ...

    def nack(self, ids: list[str]) -> None: ...

    def send_to_dlq(self, entry_id: str, data: bytes, reason: str, **detail: Any) -> None: ...


def entry_key(entry_id: str | bytes) -> tuple[int, int]:
    """Sortable form of a stream id ``"<ms>-<seq>"``."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class RedisStreamOrderQueue:
    """``OrderQueue`` over one market's Redis Stream.

    ``pop`` first returns this consumer's pending entries when some were left unacknowledged (after a
    restart or a ``nack``), then new ones. ``send_to_dlq`` hands the entry to ``dead_letter_sink``
    (``(market, entry_id, data, reason, **detail)``; the matcher publishes it to the ``dead_letter``
    Celery queue) and only then acknowledges it, so a crash in between delivers it again rather than
    losing it.
    """

    def __init__(
        self,
        client: redis.Redis,
        market: str,
        consumer: str = CONSUMER,
        dead_letter_sink: Callable[..., None] | None = None,
    ) -> None:
        self.client = client
        self.dead_letter_sink = dead_letter_sink
        self.market = market
        self.key = keys.stream(market)
        self.group = settings.MATCHING_CONSUMER_GROUP  # FR-DS-003
        self.consumer = consumer
        self._read_pending = True  # a new reader first takes back what its predecessor left
        self._push_once = client.register_script(_PUSH_ONCE)
        self._push_once_as = client.register_script(_PUSH_ONCE_AS)
        self._trim_acked = client.register_script(_TRIM_ACKED)

    # -- producer side -------------------------------------------------------------------------

    def ensure_group(self) -> None:
        """Create the stream and its consumer group if missing (idempotent)."""
        try:
            self.client.xgroup_create(self.key, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def push(self, command_json: str, *, order_id: int | None = None) -> str | None:
        """Append a command. With ``order_id``, at most once per order: returns None if it was already
        pushed (within ``keys.ENQUEUED_MARKER_TTL_S``)."""
        if order_id is None:
            return self.client.xadd(self.key, {FIELD: command_json}).decode()
        result = self._push_once(
            keys=[self.key, self.enqueued_key(order_id)], args=[command_json, keys.ENQUEUED_MARKER_TTL_S]
        )
        return None if result is None else result.decode()

    def push_many(self, commands: list[tuple[str, int | None]], pipe: Any = None) -> list[str | None]:
        """``push`` for several commands in one round trip. With ``pipe``, queued after what the caller
        already put on that pipeline (executed here); the results returned are the pushes' only."""
        before = 0
        if pipe is None:
            pipe = self.client.pipeline(transaction=False)
        else:
            before = len(pipe)
        for command_json, order_id in commands:
            if order_id is None:
                pipe.xadd(self.key, {FIELD: command_json})
            else:
                self._push_once(
                    keys=[self.key, self.enqueued_key(order_id)],
                    args=[command_json, keys.ENQUEUED_MARKER_TTL_S],
                    client=pipe,
                )
        return [None if r is None else r.decode() for r in pipe.execute()[before:]]

    def push_once_as(
        self, command_json: str, marker: str, ttl_s: int, *, order_id: int | None = None
    ) -> tuple[bool, str]:
        """Append a command unless ``marker`` is set, and set it to the new entry's id, atomically;
        with ``order_id``, the order's push-once marker is set as well (as ``push`` does).

        Returns ``(pushed now, entry id)``: the id of this push, or of the one that set the marker.
        """
        self.ensure_group()
        names, args = [self.key, marker], [command_json, ttl_s]
        if order_id is not None:
            names.append(self.enqueued_key(order_id))
            args.append(keys.ENQUEUED_MARKER_TTL_S)
        pushed, entry_id = self._push_once_as(keys=names, args=args)
        return bool(pushed), entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    def enqueued_key(self, order_id: int) -> str:
        return keys.enqueued(self.market, order_id)

    # -- consumer side -------------------------------------------------------------------------

    def pop(self, batch_size: int, block_ms: int | None = None) -> list[Entry]:
        """Up to ``batch_size`` entries: this consumer's pending ones first, else new ones.

        With ``block_ms``, waits that long for a new entry when none is there (one round trip).
        """
        if self._read_pending:
            entries = self._read("0", batch_size, None)
            if entries:
                return self._with_delivery_counts(entries)
            self._read_pending = False
        return [Entry(i, d, 1, f) for i, d, f in self._read(">", batch_size, block_ms)]

    def ack(self, ids: list[str]) -> None:
        if ids:
            self.client.xack(self.key, self.group, *ids)

    def nack(self, ids: list[str]) -> None:
        """Leave entries pending; the next ``pop`` delivers them again (and counts the delivery)."""
        if ids:
            self._read_pending = True

    def send_to_dlq(self, entry_id: str, data: bytes, reason: str, **detail: Any) -> None:
        """FR-IF-001: hand the entry to ``dead_letter_sink`` (which logs it), then acknowledge it. A sink
        that raises leaves the entry pending."""
        if self.dead_letter_sink is not None:
            self.dead_letter_sink(self.market, entry_id, data, reason, **detail)
        else:
            logger.error("dead-lettering %s entry %s (no sink): %s", self.market, entry_id, reason)
        self.ack([entry_id])

    def trim(self, acked_up_to: str, pipe: Any = None) -> None:
        """Drop entries older than ``acked_up_to`` (approximately, by whole stream nodes) and older than
        every pending entry. With ``pipe``, queued on it."""
        self._trim_acked(keys=[self.key], args=[acked_up_to, self.group], client=pipe or self.client)

    def reclaim_idle(self, min_idle_ms: int, count: int = 100) -> int:
        """FR-DS-003: take over entries another consumer left pending for ``min_idle_ms``."""
        # With JUSTID, redis-py returns only the list of claimed ids (not the cursor triple).
        claimed = self.client.xautoclaim(
            self.key, self.group, self.consumer, min_idle_ms, "0-0", count=count, justid=True
        )
        if claimed:
            self._read_pending = True
        return len(claimed)

    def depth(self) -> int:
        """Entries not yet delivered to the group (the lag), or the stream length if unknown."""
        for group in self.client.xinfo_groups(self.key):
            if group["name"] in (self.group, self.group.encode()):
                lag = group.get("lag")
                if lag is not None:
                    return int(lag)
        return int(self.client.xlen(self.key))

    def settled(self) -> bool:
        """Every entry of the stream was delivered to the group and acknowledged."""
        if not self.client.exists(self.key):
            return False
        for group in self.client.xinfo_groups(self.key):
            if group["name"] in (self.group, self.group.encode()):
                return int(group["pending"]) == 0 and group.get("lag") == 0
        return False

    def _read(self, start: str, count: int, block_ms: int | None) -> list[tuple[str, bytes, dict[bytes, bytes] | None]]:
        reply = self.client.xreadgroup(self.group, self.consumer, {self.key: start}, count=count, block=block_ms)
        if not reply:
            return []
        _, messages = reply[0]
        # The usual entry, exactly {c: command}, costs a length test and a lookup, no extra object.
        # Any other shape keeps its raw fields for the dead letter queue; a pending id whose entry was
        # trimmed comes back with no fields, handed on as empty data so that the caller dead-letters
        # it instead of looping on it.
        return [
            (mid.decode(), fields[FIELD], None)
            if fields and len(fields) == 1 and FIELD in fields
            else (mid.decode(), (fields or {}).get(FIELD, b""), fields or {})
            for mid, fields in messages
        ]

    def _with_delivery_counts(self, entries: list[tuple[str, bytes, dict[bytes, bytes] | None]]) -> list[Entry]:
        first, last = entries[0][0], entries[-1][0]
        details = self.client.xpending_range(
            self.key, self.group, min=first, max=last, count=len(entries), consumername=self.consumer
        )
        counts = {d["message_id"].decode(): int(d["times_delivered"]) for d in details}
        return [Entry(i, d, counts.get(i, 1), f) for i, d, f in entries]
