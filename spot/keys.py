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
| ``matcher:kick:<market>``        | string | ``KICK_TTL_S``               | watchdog (beat)         | watchdog (one kick a TTL) |
| ``matcher:heartbeat:<market>``   | string | ``HEARTBEAT_TTL_S``          | the lease owner's drain | watchdog, readiness       |
| ``matcher:stats:<market>``       | hash   | none                         | matcher                 | loadtest, operators       |
| ``matcher:latency:<market>``     | list   | none (loadtest only)         | matcher, when recording | loadtest                  |
| ``matcher:commits:<market>``     | list   | none (httpbench only)        | matcher, when recording | httpbench                 |
| ``dlq:requeued:<dead letter id>`` | string | ``DEAD_LETTER_REQUEUED_TTL_S`` | a dead letter's requeue | the requeue (at most once) |
| ``dlq:counts``                   | hash   | none (a counter)             | the dead letter record task | the web's ``/metrics`` |
| ``dlq:counted:<dead letter id>`` | string | ``DEAD_LETTER_COUNTED_TTL_S`` | the dead letter record task | the same task (count once) |
| ``ratelimit:<limit>:<who>``      | string | until the limit is unused again (at most its period) | ``spot.ratelimit``, web | ``spot.ratelimit``, every web worker |
| ``apikey:<key id>``              | string | ``orders.apikeys.CACHE_TTL_S`` | a key's first use, its revoke | ``orders.authentication``, every web worker |
| ``apikey:seen:<key id>:<signature>`` | string | 2 x ``API_RECV_WINDOW_MS`` | ``orders.authentication`` | the same (a replay is refused) |
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
DEAD_LETTER_COUNTED_TTL_S = 8 * 24 * 3600  # longer than a letter can be delivered again
# The owner writes its unix time after every drain slice (at least once a second); the key outlives a
# stalled owner long enough for the watchdog (kicks after 5 s) and readiness (stale after 30 s) to
# read how stale it is, rather than nothing.
HEARTBEAT_TTL_S = 60
KICK_TTL_S = 10  # the watchdog sends a market at most one kick this often (a kick expires as fast)


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


def kick(market: str) -> str:
    """Present while a watchdog kick for the market may still be waiting on its match queue."""
    return f"matcher:kick:{market}"


def heartbeat(market: str) -> str:
    """The unix time (a float string) of the market's owner's last drain slice."""
    return f"matcher:heartbeat:{market}"


def matcher_stats(market: str) -> str:
    """Counters and start-up figures of the market's matcher."""
    return f"matcher:stats:{market}"


def matcher_latency(market: str) -> str:
    """``"<entered ms>:<latency ms>"`` per command, when ``MATCHING_RECORD_LATENCY`` is on."""
    return f"matcher:latency:{market}"


def matcher_commits(market: str) -> str:
    """``"<order id>:<commit time, us since the epoch>"`` per order a batch changed, after the batch's
    commit, when ``MATCHING_RECORD_LATENCY`` is on; an order's first record is its placement's commit."""
    return f"matcher:commits:{market}"


def naive_stats(market: str) -> str:
    return f"naive:stats:{market}"


def naive_latency(market: str) -> str:
    return f"naive:latency:{market}"


def naive_ready(market: str) -> str:
    return f"naive:ready:{market}"


def dead_letter_requeued(dead_letter_id: int) -> str:
    """The new stream entry id (or task id) a dead letter was requeued as; set once, with the push."""
    return f"dlq:requeued:{dead_letter_id}"


def dead_letter_counted(dead_letter_id: int) -> str:
    """Set when the letter was counted in ``dead_letter_counts`` (at most once per letter)."""
    return f"dlq:counted:{dead_letter_id}"


def dead_letter_counts() -> str:
    """Dead letters recorded, per ``"<market>\t<reason kind>"`` (``spot_dead_letters_total``)."""
    return "dlq:counts"


def rate_limit(scope: str, who: str) -> str:
    """A rate limit's state for one client (``trade``/``read`` and ``key:<id>`` or ``user:<id>``;
    ``anon``/``auth_failures`` and ``ip:<address>``): the time its allowance is next full (GCRA)."""
    return f"ratelimit:{scope}:{who}"


def api_key(key_id: str) -> str:
    """An API key's cached lookup (user, scopes, allowlist, the encrypted secret), or ``-`` once it is
    revoked or unknown (``orders.apikeys``)."""
    return f"apikey:{key_id}"


def api_key_seen(key_id: str, signature: str) -> str:
    """Present while a signed request's signature may not be used again (replay protection)."""
    return f"apikey:seen:{key_id}:{signature}"
