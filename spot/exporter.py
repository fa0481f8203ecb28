"""The web's ``GET /metrics`` (FR-OB-001): one scrape that tells the truth under several workers.

Under gunicorn every worker is a process of its own. With ``PROMETHEUS_MULTIPROC_DIR`` set (by
``deploy/gunicorn.conf.py``, for the web processes only) prometheus_client writes each worker's
values to files there, and this view reads them all through a fresh ``MultiProcessCollector``: a
counter reads the same whichever worker answers the scrape, and keeps counting across worker
restarts. Without it (``runserver``, tests) the view serves this process's default registry.

Two collectors compute their samples at scrape time, because the processes that know the values
are not the web's:

- ``spot_matcher_heartbeat_age_seconds{market}``: seconds since each enabled market's matcher last
  drained (``+Inf`` when it has no heartbeat), from Redis;
- ``spot_dead_letters_total{market, reason}`` and ``spot_dead_letters_dead{market}``:
  ``orders.deadletters.DeadLetterCollector``.

They run only after the DB and Redis answered the health checks' short-timeout probes
(``spot.health``). A collector whose source does not answer leaves its samples out (and says so in
``spot_exporter_collector_up``); the scrape itself never fails or hangs for it.

django-prometheus's ``ExportToDjangoView`` does the multiprocess part but cannot add collectors of
our own to the registry it builds, hence this view.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from orders.deadletters import dead_letter_collector
from spot import health

logger = logging.getLogger(__name__)


def multiprocess_dir() -> str | None:
    """The directory of the web workers' metric files, or None when this process is on its own."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class MatcherHeartbeatCollector(Collector):
    """``spot_matcher_heartbeat_age_seconds{market}`` for the given markets, read at scrape time."""

    def __init__(self, markets: list[str]) -> None:
        self.markets = markets

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "spot_matcher_heartbeat_age_seconds",
            "Seconds since the market's matcher last drained its stream (+Inf: no heartbeat).",
            labels=["market"],
        )
        for market, age in sorted(health.heartbeat_ages(self.markets).items()):
            family.add_metric([market], float("inf") if age is None else age)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("spot_matcher_heartbeat_age_seconds", "", labels=["market"])


class _ScrapeTime(Collector):
    """The collectors that read the DB and Redis during the scrape. They run only when both answer the
    health checks' short-timeout probes (so a hung dependency cannot hang the scrape); one that cannot
    run, or fails, yields nothing and reads 0 in ``spot_exporter_collector_up``."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "spot_exporter_collector_up",
            "1 when the scrape-time collector could read its sources (the DB, Redis) during this scrape.",
            labels=["collector"],
        )
        database, markets = health.check_database()
        redis_report = health.check_redis()
        down = [
            f"{name}: {report['detail']}"
            for name, report in (("DB", database), ("Redis", redis_report))
            if report["status"] != health.OK
        ]
        if down:
            logger.warning("metrics read at scrape time left out: %s", "; ".join(down))
        collectors = {
            "matcher_heartbeats": MatcherHeartbeatCollector(markets or []),
            "dead_letters": dead_letter_collector(),
        }
        for name, collector in collectors.items():
            if down:
                up.add_metric([name], 0.0)
                continue
            try:
                families = list(collector.collect())
            except Exception as exc:  # noqa: BLE001 - a scrape must not fail because one source is down; logged
                logger.warning("metrics collector %s failed: %s: %s", name, type(exc).__name__, exc)
                up.add_metric([name], 0.0)
                continue
            up.add_metric([name], 1.0)
            yield from families
        yield up

    def describe(self) -> Iterable[Metric]:
        yield from MatcherHeartbeatCollector([]).describe()
        yield from dead_letter_collector().describe()
        yield GaugeMetricFamily("spot_exporter_collector_up", "", labels=["collector"])


class _ThisProcess(Collector):
    """The default registry's metrics, as a collector of another registry."""

    def collect(self) -> Iterator[Metric]:
        return REGISTRY.collect()


def scrape_registry() -> CollectorRegistry:
    """A registry for one scrape: every web worker's metrics (or this process's), and the collectors
    that read Redis and the DB."""
    registry = CollectorRegistry()
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(_ScrapeTime())
    return registry


def on_metrics_listener(request: HttpRequest) -> bool:
    """Whether the request came in on ``WEB_METRICS_BIND``'s port. gunicorn sets ``SERVER_PORT`` from the
    socket that accepted the connection (the Host header does not change it for TCP listeners)."""
    bind = settings.WEB_METRICS_BIND
    return bool(bind) and request.META.get("SERVER_PORT") == bind.rpartition(":")[2]


@never_cache
@require_safe
@health.head_without_body
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text (or OpenMetrics when the scraper asks for it), on the metrics listener only: the
    API's port answers 404, so the public never sees the live intake per market."""
    if not on_metrics_listener(request):
        return JsonResponse({"message": "not found"}, status=404)
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(scrape_registry()), content_type=content_type)
