"""Every Redis key the project writes: its name, its lifetime, who writes it and who reads it.

One place, so that a key is spelled once and an operator can tell from here what a key in Redis is.
Redis holds the order streams, the order cache, leases and live statistics; the DB stays the source of
truth, so losing any of these loses no accepted order (``new`` orders are pushed again by the sweeper).

| key                              | type   | lifetime                     | written by              | read by                   |
|----------------------------------|--------|------------------------------|-------------------------|---------------------------|
| ``orders:<market>``              | stream | trimmed after acknowledgment | intake, sweeper         | the market's matcher      |
| ``enqueued:<market>:<order id>`` | string | ``ENQUEUED_MARKER_TTL_S``    | intake, sweeper (once)  | the push-once script      |
| ``order:<id>``                   | hash   | ``settings.ORDER_CACHE_TTL`` | intake, matcher, reads  | order reads (FR-DS-002)   |
| ``book:<market>``                | string | none (rewritten ~10/s)       | matcher                 | book API, market buys     |
| ``lease:<market>``               | string | ``MATCHING_LEASE_TTL_MS``    | matcher (lease)         | other matchers            |
| ``matcher:chain:<market>``       | string | none                         | worker start, watchdog  | drain tasks               |
| ``matcher:heartbeat:<market>``   | string | ``HEARTBEAT_TTL_S``          | drain tasks             | watchdog (beat)           |
| ``matcher:stats:<market>``       | hash   | none                         | matcher                 | loadtest, operators       |
| ``matcher:latency:<market>``     | list   | none (loadtest only)         | matcher, when recording | loadtest                  |
| ``dlq:requeued:<dead letter id>`` | string | ``DEAD_LETTER_REQUEUED_TTL_S`` | a dead letter's requeue | the requeue (at most once) |
| ``dlq:counts``                   | hash   | none (a counter)             | the dead letter record task | the web's ``/metrics`` |
| ``naive:stats:<market>``         | hash   | none (benchmark only)        | the naive pipeline      | loadtest                  |
| ``naive:latency:<market>``       | list   | none (benchmark only)        | the naive pipeline      | loadtest                  |
| ``naive:ready:<market>``         | string | while its worker runs        | the naive worker        | loadtest                  |

Celery's broker uses its own Redis database (``CELERY_BROKER_URL``); its keys are Celery's.
"""

from __future__ import annotations

ENQUEUED_MARKER_TTL_S = 7 * 24 * 3600  # as long as dead letters are kept (FR-RL-003)
# Longer than dead letters are kept (FR-RL-003, 7 days): a requeue that pushed and then failed to
# commit finds its marker whenever it is tried again, and never pushes twice.
DEAD_LETTER_REQUEUED_TTL_S = 8 * 24 * 3600
HEARTBEAT_TTL_S = 5  # a drain task runs at least every slice (0.25 s) or blocking read (1 s)


def stream(market: str) -> str:
    """The market's command stream (FR-DS-003)."""
    return f"orders:{market}"


def enqueued(market: str, order_id: int) -> str:
    """Marks an order as pushed to its stream, so a second push is refused."""
    return f"enqueued:{market}:{order_id}"


def order(order_id: int) -> str:
    """The order cache entry (FR-DS-002)."""
    return f"order:{order_id}"


def book(market: str) -> str:
    """The matcher's last published top of book (JSON, ``BOOK_DEPTH_LEVELS`` a side)."""
    return f"book:{market}"


def lease(market: str) -> str:
    """The token of the matcher that owns the market."""
    return f"lease:{market}"


def chain(market: str) -> str:
    """The id of the market's current drain chain."""
    return f"matcher:chain:{market}"


def heartbeat(market: str) -> str:
    """Present while the market's drain chain runs."""
    return f"matcher:heartbeat:{market}"


def matcher_stats(market: str) -> str:
    """Counters and start-up figures of the market's matcher."""
    return f"matcher:stats:{market}"


def matcher_latency(market: str) -> str:
    """``"<entered ms>:<latency ms>"`` per command, when ``MATCHING_RECORD_LATENCY`` is on."""
    return f"matcher:latency:{market}"


def naive_stats(market: str) -> str:
    return f"naive:stats:{market}"


def naive_latency(market: str) -> str:
    return f"naive:latency:{market}"


def naive_ready(market: str) -> str:
    return f"naive:ready:{market}"


def dead_letter_requeued(dead_letter_id: int) -> str:
    """The new stream entry id (or task id) a dead letter was requeued as; set once, with the push."""
    return f"dlq:requeued:{dead_letter_id}"


def dead_letter_counts() -> str:
    """Dead letters recorded, per ``"<market>\t<reason kind>"`` (``spot_dead_letters_total``)."""
    return "dlq:counts"
