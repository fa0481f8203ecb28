"""Prometheus metrics (FR-OB-001). Web processes expose them at ``/metrics`` (django-prometheus);
each matcher worker serves its own on ``MATCHER_METRICS_PORT``.
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
QUEUE_DEPTH = Gauge("spot_queue_depth", "Entries waiting in the market's stream (not yet delivered).", ["market"])
BATCH_SIZE = Histogram(
    "spot_batch_commands", "Commands per matcher batch.", ["market"], buckets=(1, 5, 10, 25, 50, 100, 250, 500)
)
DB_STATEMENTS = Counter("spot_matcher_db_statements_total", "SQL statements the matcher sent.", ["market"])
BREAKER_STATE = Gauge("spot_circuit_open", "1 while the named circuit breaker is open or half-open.", ["circuit"])


def breaker_changed(name: str, state: object) -> None:
    """A circuit breaker's ``on_change``: the gauge reads 1 unless the breaker is closed."""
    BREAKER_STATE.labels(name).set(0 if str(state) == "closed" else 1)


INTAKE = Counter("spot_intake_orders_total", "Orders accepted by intake.", ["market"])
