"""Health checks (FR-RL-004): ``GET /health/live`` and ``GET /health/ready``.

``/health/live`` answers 200 ``{"status": "ok"}`` while the process answers; it checks nothing else,
so a prober restarts the process only when the process itself is stuck. ``/health/ready`` checks what
the web needs to serve orders and answers 503 when any of it fails::

    {"status": "ready" | "not_ready",
     "checks": {"database": {"status": "ok" | "fail", "detail": null | "...", "latency_ms": 0.4},
                "redis":    {"status": "ok" | "fail", "detail": null | "...", "latency_ms": 0.2},
                "matchers": {"btc_usdt": {"status": "ok" | "stale" | "missing" | "unknown",
                                          "heartbeat_age_s": 0.3 | null}}}}

When the database does not answer, the markets cannot be listed: ``matchers`` is then
``{"status": "unknown", "detail": "..."}``. A matcher is ``stale`` when its heartbeat (the unix time
of its last drain, ``spot.keys.heartbeat(market)``, 60 s TTL) is older than
``MATCHER_HEARTBEAT_STALE_S`` (30 s), ``missing`` when there is none.

Each dependency is reached through a connection of the probe's own with ``HEALTH_CHECK_TIMEOUT_S``
(1 s) connect and read timeouts: the process's usual DB connection has no read timeout and its Redis
client retries, so a dead dependency would hang the probe instead of failing it. The heartbeats are read
(``matching.worker.registry.heartbeat_age``) only after Redis answered the probe's ``PING``. A healthy
check costs a ``SELECT 1``, the market list, a ``PING`` and a ``GET`` a market: about a millisecond. Bodies never carry
a stack trace; the only 5xx is the 503 of the contract.

The probe intervals FR-RL-004 names (liveness every 10 s, readiness every 5 s, the database every
30 s) are the prober's settings (``deploy/``, docs/OBSERVABILITY.md); readiness checks the database
on every call, so it is checked at least that often.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from redis.backoff import NoBackoff
from redis.retry import Retry

from matching.worker import registry
from orders.selectors import market_list

logger = logging.getLogger(__name__)

OK, FAIL = "ok", "fail"
STALE, MISSING, UNKNOWN = "stale", "missing", "unknown"

_local = threading.local()  # one probe DB connection per thread: Django's wrappers are not shared


def _timeout() -> float:
    return float(settings.HEALTH_CHECK_TIMEOUT_S)


def _error(exc: BaseException) -> str:
    """What went wrong, in one line and without a traceback."""
    return f"{type(exc).__name__}: {exc}"[:300]


def _timed(check: Callable[[], Any]) -> tuple[dict[str, Any], Any]:
    """Run ``check``; returns its report (status, detail, latency_ms) and its value (None on failure)."""
    started = time.perf_counter()
    try:
        value = check()
    except Exception as exc:  # noqa: BLE001 - any failure of a dependency is a failed check, never a 500
        report = {"status": FAIL, "detail": _error(exc)}
        value = None
    else:
        report = {"status": OK, "detail": None}
    report["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return report, value


# -- database --------------------------------------------------------------------------------------


def _probe_database() -> BaseDatabaseWrapper:
    """This thread's probe connection: Django's default database settings with short timeouts."""
    probe = getattr(_local, "database", None)
    if probe is None:
        default = connections[DEFAULT_DB_ALIAS]
        params = copy.deepcopy(default.settings_dict)
        seconds = max(1, math.ceil(_timeout()))  # the client library counts whole seconds
        params["OPTIONS"] = {
            **params.get("OPTIONS", {}),
            "connect_timeout": seconds,
            "read_timeout": seconds,
            "write_timeout": seconds,
        }
        probe = type(default)(params, alias="health")
        _local.database = probe
    return probe


def _drop_probe_database() -> None:
    probe = getattr(_local, "database", None)
    _local.database = None
    if probe is not None:
        try:
            probe.close()
        except Exception:  # a broken connection may fail to close; it is dropped either way
            logger.debug("closing the health probe's DB connection", exc_info=True)


def _query(sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
    """Run ``sql`` on the probe connection. A kept connection that fails (the server closed it
    while idle, or restarted) is replaced once, so only a database that does not answer fails."""
    for attempt in (1, 2):
        fresh = getattr(_local, "database", None) is None
        try:
            with _probe_database().cursor() as cursor:
                cursor.execute(sql, list(params))
                return list(cursor.fetchall())
        except Exception:
            _drop_probe_database()
            if fresh or attempt == 2:
                raise
    raise AssertionError("unreachable")


def _enabled_markets() -> list[str]:
    """Codes of the enabled markets, read through the probe connection (``orders.selectors``)."""
    queryset = market_list().values_list("coin", "currency")
    sql, params = queryset.query.get_compiler(connection=_probe_database()).as_sql()
    return [f"{coin}_{currency}" for coin, currency in _query(sql, params)]


def check_database() -> tuple[dict[str, Any], list[str] | None]:
    """``SELECT 1`` and the enabled markets; returns the report and the market codes (None on failure)."""

    def check() -> list[str]:
        _query("SELECT 1")
        return _enabled_markets()

    return _timed(check)


# -- redis -----------------------------------------------------------------------------------------


@functools.cache
def _probe_redis_client(url: str, timeout: float) -> redis.Redis:
    # No retries: redis-py retries connection errors 3 times with backoff by default, which turns a
    # 1 s timeout into several seconds.
    return redis.Redis.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


def probe_redis() -> redis.Redis:
    """A client for ``MATCHING_REDIS_URL`` that gives up after ``HEALTH_CHECK_TIMEOUT_S``."""
    return _probe_redis_client(settings.MATCHING_REDIS_URL, _timeout())


def check_redis() -> dict[str, Any]:
    report, _ = _timed(probe_redis().ping)
    return report


# -- matchers --------------------------------------------------------------------------------------


def heartbeat_ages(markets: list[str]) -> dict[str, float | None]:
    """Seconds since each market's matcher last drained (None: no heartbeat within its TTL)."""
    return {market: registry.heartbeat_age(market) for market in markets}


def check_matchers(markets: list[str] | None, redis_ok: bool) -> dict[str, Any]:
    if markets is None:
        return {"status": UNKNOWN, "detail": "the markets cannot be listed: the database does not answer"}
    if not redis_ok:
        return {market: {"status": UNKNOWN, "heartbeat_age_s": None} for market in markets}
    try:
        ages = heartbeat_ages(markets)
    except Exception as exc:  # noqa: BLE001 - Redis went away between the PING and the read; logged
        logger.warning("reading matcher heartbeats failed: %s", _error(exc))
        return {market: {"status": UNKNOWN, "heartbeat_age_s": None} for market in markets}
    stale_after = float(settings.MATCHER_HEARTBEAT_STALE_S)
    report = {}
    for market, age in ages.items():
        status = MISSING if age is None else (STALE if age > stale_after else OK)
        report[market] = {"status": status, "heartbeat_age_s": None if age is None else round(age, 3)}
    return report


# -- readiness and the views -----------------------------------------------------------------------


def readiness() -> tuple[bool, dict[str, Any]]:
    """Check every dependency; returns whether the process is ready and the checks' report."""
    database, markets = check_database()
    redis_report = check_redis()
    matchers = check_matchers(markets, redis_report["status"] == OK)
    matchers_ok = markets is not None and all(entry["status"] == OK for entry in matchers.values())
    ready = database["status"] == OK and redis_report["status"] == OK and matchers_ok
    return ready, {"database": database, "redis": redis_report, "matchers": matchers}


def head_without_body(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """HEAD gets GET's status and headers without the body. Django leaves that to the server, and
    gunicorn drops the body itself but logs a warning for every such probe."""

    @functools.wraps(view)
    def answer(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if request.method == "HEAD":
            response.content = b""
        return response

    return answer


@never_cache
@require_safe
@head_without_body
def live(request: HttpRequest) -> JsonResponse:
    """FR-RL-004 liveness: 200 while the process answers."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
@head_without_body
def ready(request: HttpRequest) -> JsonResponse:
    """FR-RL-004 readiness: 200 when the database, Redis and every enabled market's matcher answer."""
    is_ready, checks = readiness()
    if not is_ready:
        logger.warning("not ready: %s", _failures(checks))
    body = {"status": "ready" if is_ready else "not_ready", "checks": checks}
    return JsonResponse(body, status=200 if is_ready else 503)


def _failures(checks: dict[str, Any]) -> str:
    failed = [f"{name} {report['status']}" for name, report in checks.items() if report.get("status", OK) != OK]
    matchers = checks["matchers"]
    if "status" not in matchers:
        failed += [f"matcher {market} {entry['status']}" for market, entry in matchers.items() if entry["status"] != OK]
    return ", ".join(failed)
