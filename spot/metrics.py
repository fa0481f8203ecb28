"""Prometheus metrics (FR-OB-001). Web processes expose them at ``/metrics`` (``spot.exporter``);
each matcher worker serves its own on its metrics port.

The web runs several gunicorn workers: there prometheus_client's multiprocess mode is on
(``PROMETHEUS_MULTIPROC_DIR``, set by ``deploy/gunicorn.conf.py`` for the web only), each worker
writes its values to files and a scrape sums them, so a counter reads the same through any worker.
A gauge says how its values from several processes combine (``multiprocess_mode``; ignored by the
single-process matchers, which keep the default registry). Gauges computed at scrape time from Redis
or the DB (matcher heartbeat age, dead letters) are collectors in ``spot.exporter`` and
``orders.deadletters``, not here.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# FR-OB-001 buckets: 1, 5, 10, 25, 50, 100, 250, 500, 1000 ms.
LATENCY_BUCKETS = (0.001, 0.005, 0.010, 0.025, 0.050, 0.100, 0.250, 0.500, 1.0)

ORDER_LATENCY = Histogram(
    "spot_order_latency_seconds",
    "From the order entering its market's stream to its batch committed and acknowledged.",
    ["market"],
    buckets=LATENCY_BUCKETS,
)
ORDERS = Counter("spot_orders_total", "Commands applied by the matcher, by outcome.", ["market", "outcome"])
TRADES = Counter("spot_trades_total", "Trades made by the matcher.", ["market"])
ERRORS = Counter("spot_errors_total", "Errors by type.", ["market", "type"])
QUEUE_DEPTH = Gauge(
    "spot_queue_depth",
    "Entries waiting in the market's stream (not yet delivered).",
    ["market"],
    multiprocess_mode="livemostrecent",  # the latest measurement of a live process
)
BATCH_SIZE = Histogram(
    "spot_batch_commands", "Commands per matcher batch.", ["market"], buckets=(1, 5, 10, 25, 50, 100, 250, 500)
)
DB_STATEMENTS = Counter("spot_matcher_db_statements_total", "SQL statements the matcher sent.", ["market"])
BREAKER_STATE = Gauge(
    "spot_circuit_open",
    "1 while the named circuit breaker is open or half-open.",
    ["circuit"],
    multiprocess_mode="livemax",  # open in any live process reads 1
)


def breaker_changed(name: str, state: object) -> None:
    """A circuit breaker's ``on_change`` (also called when the breaker is created, so the gauge has a
    sample, 0, from the start): the gauge reads 1 unless the breaker is closed."""
    BREAKER_STATE.labels(name).set(0 if str(state) == "closed" else 1)


INTAKE = Counter("spot_intake_orders_total", "Orders accepted by intake.", ["market"])
INTAKE_LOCK_RETRIES = Counter(
    "spot_intake_lock_retries_total",
    "Intake's hold transactions run again after a deadlock or lock-wait timeout, by error.",
    ["market", "error"],
)
RATE_LIMITED = Counter(
    "spot_rate_limited_total", "Requests refused with 429 by a rate limit (spot.ratelimit), by limit.", ["scope"]
)
RATE_LIMIT_UNCHECKED = Counter(
    "spot_rate_limit_unchecked_total",
    "Requests let through without a rate limit check because the limits' Redis failed (fail-open), by limit.",
    ["scope"],
)
