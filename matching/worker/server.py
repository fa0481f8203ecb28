"""The matcher's HTTP port: ``GET /metrics`` (Prometheus text) and ``GET /health`` (JSON), nothing else.

prometheus_client's ``start_http_server`` answers every path with the metrics, so a probe of ``/health``
or ``/`` passes whatever the matcher does; this small WSGI app routes two paths and answers 404
elsewhere. It runs in a daemon thread of the worker (prometheus_client's threading WSGI server, the one
``start_http_server`` uses), bound to ``MATCHER_METRICS_HOST`` (127.0.0.1 by default).

Which port (FR-OB-001: each matcher on its own port, no clash between matchers of different queues):

1. ``MATCHER_METRICS_PORT`` > 0 is used as is (an explicit override for one process); < 0 serves none.
2. Else the queue's port in ``MATCHER_METRICS_PORTS`` (default ``match_btc=9101,match_eth=9102``).
3. Else ``MATCHER_METRICS_BASE_PORT`` (9100) + the queue's rank among the unlisted match queues,
   ordered by their first market's id, skipping the listed ports: with the defaults a third queue
   gets 9103, a fourth 9104; a queue keeps its port as markets are added.

A second matcher of the same queue on the same host finds its port taken: it serves on the next free
port that no other queue's mapping claims, and says so once.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

logger = logging.getLogger(__name__)

PORT_SEARCH = 100  # ports tried above the derived one when it is taken

Health = Callable[[], dict[str, dict[str, object]]]
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def ports_by_queue(queues_in_order: Iterable[str], listed: dict[str, int], base: int) -> dict[str, int]:
    """Each queue's port: ``listed`` first, then ``base`` + rank for the others, skipping listed ports."""
    ports = dict(listed)
    taken = set(listed.values())
    candidate = base
    for queue in queues_in_order:
        if queue in ports:
            continue
        candidate += 1
        while candidate in taken:
            candidate += 1
        ports[queue] = candidate
        taken.add(candidate)
    return ports


def health_report(chains: dict[str, dict[str, object]], stale_after_s: float) -> tuple[int, dict[str, object]]:
    """``(HTTP status, body)`` of ``/health`` from this process's chains (``registry.chains_health``).

    ``stale`` (503) when a market's drain loop has not run for ``stale_after_s`` or the process runs
    none; else ``ok`` when it owns a market, ``standby`` when it only waits for a lease (200)."""
    stale = not chains or any(float(str(c["last_drain_age_s"])) > stale_after_s for c in chains.values())
    if stale:
        status = "stale"
    elif any(c["owner"] for c in chains.values()):
        status = "ok"
    else:
        status = "standby"
    return (503 if stale else 200), {"status": status, "markets": chains}


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape on the worker's stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def make_app(
    health: Health, *, stale_after_s: float = 30.0, registry: CollectorRegistry = REGISTRY
) -> Callable[..., Iterable[bytes]]:
    """The WSGI app: ``GET /metrics``, ``GET /health``; 405 for another method there, 404 elsewhere."""
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path not in ("/metrics", "/health"):
            return _json(start_response, 404, {"error": f"not found: {path}; this port serves /metrics and /health"})
        if method not in ("GET", "HEAD"):
            return _json(start_response, 405, {"error": f"{method} not allowed; use GET"}, [("Allow", "GET, HEAD")])
        if path == "/metrics":
            return metrics_app(environ, start_response)
        try:
            status, body = health_report(health(), stale_after_s)
        except Exception as exc:
            logger.exception("matcher /health failed")
            status, body = 503, {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
        return _json(start_response, status, body)

    return app


def _json(
    start_response: StartResponse, status: int, body: dict[str, object], headers: list[tuple[str, str]] = ()
) -> list[bytes]:
    reasons = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
    data = json.dumps(body).encode()
    start_response(
        f"{status} {reasons[status]}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *headers],
    )
    return [data]


class MetricsServer:
    """The port's server in a daemon thread; ``port`` is where it listens."""

    def __init__(self, host: str, port: int, app: Callable[..., Iterable[bytes]]) -> None:
        self.httpd = make_server(host, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
        self.host = host
        self.port = self.httpd.server_port
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="matcher-metrics", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def serve(
    host: str, port: int, *, reserved: set[int], health: Health, queue: str, stale_after_s: float = 30.0
) -> MetricsServer:
    """Serve on ``port``, or when it is taken (another matcher of ``queue`` on this host) on the next
    free port not in ``reserved`` (other queues' ports). Raises ``OSError`` when none is free."""
    app = make_app(health, stale_after_s=stale_after_s)
    last_error: OSError | None = None
    for candidate in range(port, port + PORT_SEARCH + 1):
        if candidate != port and candidate in reserved:
            continue
        try:
            server = MetricsServer(host, candidate, app)
        except OSError as exc:
            last_error = exc
            continue
        if candidate != port:
            logger.warning(
                "matcher %s: metrics port %s:%s is taken (another matcher of %s on this host?); "
                "serving /metrics and /health on port %s",
                queue,
                host,
                port,
                queue,
                candidate,
            )
        else:
            logger.info("matcher %s: /metrics and /health on %s:%s", queue, host, candidate)
        return server
    raise OSError(f"no free port in {port}..{port + PORT_SEARCH} on {host}") from last_error
