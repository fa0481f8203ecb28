"""The web tier under HTTP load (``manage.py httpbench``): orders placed through signed ``POST``s, as a
trader's bot places them, against gunicorn as the Procfile runs it, with a real matcher behind it.

One run:

1. a scratch market with ``traders`` funded, active traders, each with a ``trade``-scoped API key;
2. gunicorn (``-c deploy/gunicorn.conf.py``, the Procfile's workers) and the market's matcher
   (``celery -A spot worker -Q match_<coin>``), both with this process's settings and database;
   the web with DEBUG off;
3. the load: autocannon (``bench/http/load.js``, installed into ``bench/http/node_modules`` with npm on
   first use), each request signed with one of the keys in turn: at an offered rate (open loop, latencies
   corrected for coordinated omission) or as fast as the web answers (``rate`` 0);
4. the matcher drains what was accepted; the end state is checked (every accepted order left ``new``,
   holds, crossed book, duplicate trades, executed quantities, fees, conservation);
5. optionally (``profile``) a second run under ``py-spy record`` of every web worker: where a request's
   CPU time goes, and authentication's share of it.

The scratch market and its traders are deleted afterwards (unless ``keep``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model

from bench.loadtest import Scratch, scratch_market
from bench.processes import ROOT, Web, Worker, wait_for
from matching.queue import RedisStreamOrderQueue
from matching.worker.registry import queue_for
from orders import invariants
from orders.apikeys import api_key_create
from orders.models import Order, OrderStatus, Trade
from spot import keys as spot_keys
from spot.redis import redis_client

LOAD_DIR = ROOT / "bench" / "http"

# Where a web worker's time goes. Each sampled stack is charged to its innermost frame of project code
# (py-spy's "function (file:line)" frames, walked from the leaf up), by the first pattern below that
# matches that frame; library code under it (Django's ORM, redis-py, MySQLdb waiting for the server)
# is charged to the project code that called it. A stack with no project frame is the framework's own
# work (gunicorn, Django's handler and middleware, DRF's dispatch, rendering).
PROFILE_PARTS: list[tuple[str, re.Pattern[str]]] = [
    ("authentication (key lookup, HMAC)", re.compile(r"\((orders/authentication|orders/apikeys)\.py")),
    ("rate limits", re.compile(r"\(spot/ratelimit\.py")),
    ("market lookup", re.compile(r"(market_find|market_by_code) \(")),
    ("hold transaction (DB)", re.compile(r"\((orders/services|orders/balances|orders/ids)\.py")),
    ("push to the stream (Redis)", re.compile(r"\((orders/outbox|matching/queue)\.py")),
    ("input validation", re.compile(r"\(orders/api\.py")),
    ("HTTP edge checks and the Django middleware under them", re.compile(r"\(spot/http\.py")),
    ("correlation ids and metrics", re.compile(r"\((spot/correlation|spot/metrics)\.py")),
]
_PROJECT_FRAME = re.compile(r"\((orders|spot|matching)/")


@dataclass
class HttpRun:
    """One load run's figures (latencies in ms, as the load tool measured them)."""

    offered_rate: float
    duration_s: float
    connections: int
    batch: int
    requests: int
    status_counts: dict[str, int]
    errors: int
    timeouts: int
    accepted_orders: int
    accepted_per_s: float
    latency_ms: dict[str, float]
    orders_left_new: int = 0
    in_flight_at_end: int = 0
    trades: int = 0
    problems: list[str] = field(default_factory=list)


def ensure_load_tool() -> Path:
    """``bench/http/node_modules`` (autocannon, pinned by package-lock.json), installed with npm if missing."""
    if not (LOAD_DIR / "node_modules" / "autocannon").exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("the HTTP load needs Node.js and npm (Debian packages nodejs and npm)")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=LOAD_DIR, check=True)
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("the HTTP load needs Node.js (Debian package nodejs)")
    return Path(node)


def _activate_with_keys(scratch: Scratch) -> list[dict[str, str]]:
    """The scratch traders made active, each with a trade-scoped key; the secrets stay in memory."""
    User = get_user_model()
    User.objects.filter(id__in=scratch.user_ids).update(is_active=True)
    keys = []
    for user in User.objects.filter(id__in=scratch.user_ids):
        key, secret = api_key_create(user=user, label="httpbench", scopes=["trade"])
        keys.append({"key": key.key_id, "secret": secret})
    return keys


def _decimals(step: Decimal) -> int:
    exponent = step.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _load(
    node: Path,
    web: Web,
    scratch: Scratch,
    keys: list[dict[str, str]],
    *,
    rate: float,
    duration: float,
    connections: int,
    batch: int,
    seed: int,
    work: Path,
) -> dict[str, Any]:
    market = scratch.market
    config = {
        "url": web.url,
        "path": "/api/orders/batch" if batch else "/api/orders",
        "connections": connections,
        "duration": duration,
        "rate": rate,
        "keys": keys,
        "batch": batch,
        "seed": seed,
        "market": {
            "code": market.code,
            "tick": float(market.tick_size),  # the script computes prices in whole ticks, then formats
            "lot": float(market.lot_size),
            "mid": 30000,
            "decimals": {"tick": _decimals(market.tick_size), "lot": _decimals(market.lot_size)},
        },
    }
    config_path = work / f"load-{seed}.json"
    config_path.write_text(json.dumps(config))
    result = subprocess.run(
        [str(node), str(LOAD_DIR / "load.js"), str(config_path)], capture_output=True, text=True, check=True
    )
    return dict(json.loads(result.stdout))


def _figures(raw: dict[str, Any], *, rate: float, duration: float, connections: int, batch: int) -> HttpRun:
    statuses = {str(code): int(stats["count"]) for code, stats in (raw.get("statusCodeStats") or {}).items()}
    accepted_requests = statuses.get("201", 0)
    accepted_orders = accepted_requests * (batch or 1)
    latency = raw["latency"]
    return HttpRun(
        offered_rate=rate,
        duration_s=duration,
        connections=connections,
        batch=batch,
        requests=sum(statuses.values()),
        status_counts=statuses,
        errors=int(raw.get("errors", 0)),
        timeouts=int(raw.get("timeouts", 0)),
        accepted_orders=accepted_orders,
        accepted_per_s=accepted_orders / duration,
        latency_ms={name: float(latency[name]) for name in ("p50", "p90", "p99", "max", "mean")},
    )


def _settle_and_check(
    scratch: Scratch, run: HttpRun, totals: dict[str, Decimal], worker: Worker, orders_before: int
) -> None:
    market = scratch.market
    queue = RedisStreamOrderQueue(redis_client(), market.code)
    orders = Order.objects.filter(coin=market.coin, currency=market.currency)
    unmatched = orders.filter(status=OrderStatus.NEW).exists

    def quiet() -> bool:
        # Requests still in flight when the load stopped finish after it (their answers are not
        # counted), and the checks below read orders and balances in separate queries: wait until no
        # order arrives for a second and the matcher has taken every one.
        count = orders.count()
        time.sleep(1.0)
        return bool(queue.settled()) and not unmatched() and orders.count() == count

    try:
        wait_for(quiet, 300, "the web and the matcher to finish every accepted order", worker)
    except RuntimeError as exc:
        run.problems.append(str(exc))
    run.orders_left_new = orders.filter(status=OrderStatus.NEW).count()
    run.trades = Trade.objects.filter(coin=market.coin, currency=market.currency).count()
    # The load tool counts the answers it received; an order whose answer was still on its way when the
    # run ended is in the DB too (at most one a connection).
    in_db = orders.count() - orders_before
    run.in_flight_at_end = in_db - run.accepted_orders
    if not 0 <= run.in_flight_at_end <= run.connections * (run.batch or 1):
        run.problems.append(f"{in_db} orders in the DB, {run.accepted_orders} answered 201")
    if run.orders_left_new:
        run.problems.append(f"{run.orders_left_new} accepted orders never reached the matcher")
    after = invariants.asset_totals([market.coin, market.currency])
    for check in (
        invariants.holds,
        invariants.crossed_book,
        invariants.duplicate_trades,
        invariants.executed_quantities,
        invariants.fees,
    ):
        run.problems += check(market)
    run.problems += invariants.conservation(totals, after)


def profile_shares(collapsed: str) -> dict[str, Any]:
    """Shares of the sampled request-handling stacks (py-spy's raw format: ``frame;frame;... count``)."""
    parts: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if "handle_request" not in stack or not count_text.isdigit():
            continue  # the worker's idle loop, the master
        count = int(count_text)
        total += count
        frame = next((f for f in reversed(stack.split(";")) if _PROJECT_FRAME.search(f)), None)
        if frame is None:
            part = "framework (gunicorn, Django, DRF)"
        else:
            part = next((name for name, pattern in PROFILE_PARTS if pattern.search(frame)), "other project code")
        parts[part] += count
    shares = {name: round(100 * n / total, 1) for name, n in parts.most_common()} if total else {}
    return {"samples": total, "share_percent": shares}


def run(
    template: str,
    *,
    rates: list[float],
    duration: float,
    connections: int,
    traders: int,
    web_workers: int,
    batch: int = 0,
    profile: bool = False,
    keep: bool = False,
    seed: int = 7,
) -> dict[str, Any]:
    """Each offered rate in turn against one web and one matcher; then the profile run if asked."""
    node = ensure_load_tool()
    work = Path(tempfile.mkdtemp(prefix="httpbench-"))
    results: dict[str, Any] = {"runs": [], "profile": None, "work_dir": str(work)}
    with scratch_market(template, traders, keep=keep) as scratch:
        keys = _activate_with_keys(scratch)
        worker = Worker(queue_for(scratch.market.code), {}, log_path=work / "matcher.log")
        # DEBUG off (settings.dev honours DJANGO_DEBUG): a benchmark with DEBUG on measures DEBUG.
        web = Web(work, workers=web_workers, env={"DJANGO_DEBUG": "0"})
        try:
            wait_for(web.live, 60, "the web to answer /health/live")
            stats = spot_keys.matcher_stats(scratch.market.code)
            wait_for(lambda: redis_client().hexists(stats, "started_at"), 60, "the matcher to start", worker)
            for index, rate in enumerate(rates):
                totals = invariants.asset_totals([scratch.market.coin, scratch.market.currency])
                before = Order.objects.filter(coin=scratch.market.coin, currency=scratch.market.currency).count()
                raw = _load(
                    node,
                    web,
                    scratch,
                    keys,
                    rate=rate,
                    duration=duration,
                    connections=connections,
                    batch=batch,
                    seed=seed + index,
                    work=work,
                )
                figures = _figures(raw, rate=rate, duration=duration, connections=connections, batch=batch)
                _settle_and_check(scratch, figures, totals, worker, before)
                results["runs"].append(asdict(figures))
            if profile:
                results["profile"] = _profile(
                    node,
                    web,
                    scratch,
                    keys,
                    duration=duration,
                    connections=connections,
                    batch=batch,
                    seed=seed + 100,
                    work=work,
                )
        finally:
            web.stop()
            worker.stop()
    return results


def _profile(
    node: Path,
    web: Web,
    scratch: Scratch,
    keys: list[dict[str, str]],
    *,
    duration: float,
    connections: int,
    batch: int,
    seed: int,
    work: Path,
) -> dict[str, Any]:
    """A load run as fast as the web answers, with py-spy sampling every web worker."""
    py_spy = Path(sys.executable).parent / "py-spy"
    output = work / "profile.txt"
    sampler = subprocess.Popen(
        [
            str(py_spy),
            "record",
            "--pid",
            str(web.proc.pid),
            "--subprocesses",
            "--nonblocking",
            "--format",
            "raw",
            "--rate",
            "200",
            "--duration",
            str(int(duration) + 2),
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # py-spy attaches
    raw = _load(
        node, web, scratch, keys, rate=0, duration=duration, connections=connections, batch=batch, seed=seed, work=work
    )
    sampler.wait(int(duration) + 60)
    figures = _figures(raw, rate=0, duration=duration, connections=connections, batch=batch)
    shares = profile_shares(output.read_text()) if output.exists() else {"samples": 0, "share_percent": {}}
    return {"run": asdict(figures), **shares, "collapsed_stacks": str(output)}
