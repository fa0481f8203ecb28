"""Gunicorn settings of the web process: ``gunicorn -c deploy/gunicorn.conf.py spot.wsgi`` (the Procfile's
``web:`` line, which also gives the bind address and the number of workers).

Metrics (FR-OB-001): the web runs several worker processes, and a scrape reaches one of them. So the
web runs prometheus_client in multiprocess mode: each worker writes its metric values to files in
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` (``spot.exporter``) sums them all. The directory is set
here, for the web processes only (the matchers are single processes and keep the default registry);
it is emptied when the master starts, so counters start from zero with the web and never mix with a
former run's, and a worker that exits is marked dead, so the ``live*`` gauges drop its values while
the counters keep them (a counter never goes back when a worker is replaced).

``/metrics`` is not served on the API's port: this file adds a listener of its own,
``WEB_METRICS_BIND`` (default ``127.0.0.1:9100``, reachable from the host only), to whatever ``--bind``
gives, and ``spot.exporter`` answers ``/metrics`` on that listener only (404 on the others).
Health checks stay on the API port.

Access log lines carry the request's correlation id (the ``X-Correlation-ID`` response header,
FR-OB-002) and the worker's pid.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Set before any worker imports prometheus_client (it picks its value store at import). An operator
# may point it elsewhere (a tmpfs, say); the default keeps it with the repository's other run files.
METRICS_DIR = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(ROOT / "var" / "prometheus-web"))

# Read by spot.exporter through the settings too (settings/base.py); "" serves /metrics nowhere.
METRICS_BIND = os.environ.setdefault("WEB_METRICS_BIND", "127.0.0.1:9100")

wsgi_app = "spot.wsgi:application"
bind = ["127.0.0.1:8000"]
workers = 2
# Threads, not one request at a time per process: most of an order's time in the web is spent waiting
# for MariaDB and Redis (docs/BENCHMARKS.md, the HTTP profile), and a sync worker also closes the
# connection after each response, so every request of a bot paid a new TCP connection. Django keeps a
# DB connection per thread; the project's process-wide state (the order id allocator, the breakers) is
# locked. Measured on 2 cores: 138 -> 194 orders/s, p50 3.1 s -> 97 ms at the same 16 connections.
worker_class = "gthread"
threads = 4
# Seconds an idle keep-alive connection stays open (gunicorn's default is 2): a bot that places an
# order every few seconds keeps its connection instead of paying a new TCP handshake each time.
keepalive = 5
accesslog = "-"
# Combined log format, then the duration in ms, the worker's pid and the correlation id.
access_log_format = (
    '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms %(p)s [%({x-correlation-id}o)s]'
)
loglevel = "warning"


def on_starting(server):
    """Master start, before the listeners open: the metrics listener joins the binds, and the metrics
    directory is emptied (only the metric files: the directory may be shared)."""
    if METRICS_BIND and METRICS_BIND not in server.cfg.bind:
        server.cfg.set("bind", [*server.cfg.bind, METRICS_BIND])
    os.makedirs(METRICS_DIR, exist_ok=True)
    for path in glob.glob(os.path.join(METRICS_DIR, "*.db")):
        os.remove(path)


def child_exit(server, worker):
    """A worker exited (or was killed): its ``live*`` gauge values leave the sums."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, METRICS_DIR)
