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

from bench.loadtest import Scratch, percentile, scratch_market
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


def _market_config(market: Any) -> dict[str, Any]:
    """The market as both load scripts read it: they compute prices in whole ticks and quantities in
    whole lots, then format them with the market's decimals (so no float reaches an order)."""
    return {
        "currency": market.currency,
        "coin": market.coin,
        "tick": float(market.tick_size),
        "lot": float(market.lot_size),
        "mid": 30000,
        "decimals": {"tick": _decimals(market.tick_size), "lot": _decimals(market.lot_size)},
    }


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
    config = {
        "url": web.url,
        "path": "/api/v1/orders/batch" if batch else "/api/v1/orders",
        "connections": connections,
        "duration": duration,
        "rate": rate,
        "keys": keys,
        "batch": batch,
        "seed": seed,
        "market": _market_config(scratch.market),
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


# -- open loop, end to end -------------------------------------------------------------------------


@dataclass
class OpenLoopRun:
    """One open-loop run: requests sent on schedule whatever the answers (``bench/http/openloop.js``).

    Per order, ``http_ms`` is from the request's due time to its answer, ``e2e_ms`` from the due time
    to the commit of the matcher's batch that first wrote the order (its placement), joined by the
    order id of the answer. ``joined`` counts accepted orders with a commit record (all of them once
    the matcher has drained)."""

    offered_rate: float
    duration_s: float
    connections: int
    batch: int
    requests: int
    status_counts: dict[str, int]
    accepted_orders: int
    accepted_per_s: float
    joined: int
    http_ms: dict[str, float]
    e2e_ms: dict[str, float]
    orders_left_new: int = 0
    in_flight_at_end: int = 0
    trades: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Answer:
    """One request's line of the load's results: due and answered (us since the epoch), the status
    (0: no answer), the ids of the orders the answer carried."""

    due_us: int
    answered_us: int
    status: int
    order_ids: tuple[int, ...]


def read_answers(path: Path) -> list[Answer]:
    """The request lines of an ``openloop.js`` results file (the summary line is skipped)."""
    answers = []
    for line in path.read_text().splitlines():
        item = json.loads(line)
        if isinstance(item, list):
            due, answered, status, ids = item
            answers.append(Answer(int(due), int(answered), int(status), tuple(int(i) for i in ids)))
    return answers


def first_commits(records: list[bytes | str]) -> dict[int, int]:
    """``matcher:commits`` records (``"<order id>:<us>"``, in commit order) -> each order's first
    commit time: its placement's batch (later records are its fills and cancel)."""
    first: dict[int, int] = {}
    for record in records:
        text = record.decode() if isinstance(record, bytes) else record
        order_id, _, us = text.partition(":")
        first.setdefault(int(order_id), int(us))
    return first


def summary_ms(values_us: list[int]) -> dict[str, float]:
    """p50, p99 and max of microsecond values, in ms (nearest rank; zeros for none)."""
    ordered = sorted(values_us)
    return {
        "p50": round(percentile(ordered, 0.50) / 1000, 2),
        "p99": round(percentile(ordered, 0.99) / 1000, 2),
        "max": round(ordered[-1] / 1000, 2) if ordered else 0.0,
    }


def join_latencies(answers: list[Answer], commits: dict[int, int]) -> tuple[list[int], list[int]]:
    """Per accepted order (a 2xx answer's ids): the HTTP latency and, when its commit is recorded, the
    end-to-end latency, both in us from the request's due time. Orders without a commit record are left
    out of the second list (the caller reports how many were joined)."""
    http_us: list[int] = []
    e2e_us: list[int] = []
    for answer in answers:
        if not 200 <= answer.status < 300:
            continue
        for order_id in answer.order_ids:
            http_us.append(answer.answered_us - answer.due_us)
            committed = commits.get(order_id)
            if committed is not None:
                e2e_us.append(committed - answer.due_us)
    return http_us, e2e_us


def open_loop_figures(
    answers: list[Answer], commits: dict[int, int], *, rate: float, duration: float, connections: int, batch: int
) -> OpenLoopRun:
    """The run's figures from its answers and the matcher's commit records."""
    statuses = Counter(str(answer.status) for answer in answers)
    http_us, e2e_us = join_latencies(answers, commits)
    accepted = len(http_us)
    span_s = duration
    if answers:
        # Accepted orders over the time from the first due request to the last answer: a web that
        # falls behind the offered rate takes longer than the run's nominal duration.
        span_s = max(duration, (max(a.answered_us for a in answers) - min(a.due_us for a in answers)) / 1e6)
    return OpenLoopRun(
        offered_rate=rate,
        duration_s=duration,
        connections=connections,
        batch=batch,
        requests=len(answers),
        status_counts=dict(sorted(statuses.items())),
        accepted_orders=accepted,
        accepted_per_s=round(accepted / span_s, 1) if span_s else 0.0,
        joined=len(e2e_us),
        http_ms=summary_ms(http_us),
        e2e_ms=summary_ms(e2e_us),
    )


def _open_loop_load(
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
) -> list[Answer]:
    config = {
        "url": web.url,
        "rate": rate,
        "duration": duration,
        "connections": connections,
        "keys": keys,
        "batch": batch,
        "seed": seed,
        "prefix": f"hb{seed}",  # client order ids: unique within the run's traders
        "market": _market_config(scratch.market),
    }
    config_path = work / f"openloop-{seed}.json"
    results_path = work / f"openloop-{seed}.jsonl"
    config_path.write_text(json.dumps(config))
    subprocess.run([str(node), str(LOAD_DIR / "openloop.js"), str(config_path), str(results_path)], check=True)
    return read_answers(results_path)


def run_open_loop(
    template: str,
    *,
    rates: list[float],
    duration: float,
    connections: int,
    traders: int,
    web_workers: int,
    batch: int = 0,
    keep: bool = False,
    seed: int = 7,
) -> dict[str, Any]:
    """Each offered rate in turn, open loop, against one web and one matcher that records its commits;
    the end state checked after each rate. Returns the runs and, per run, the raw latencies' file."""
    if any(rate <= 0 for rate in rates):
        raise ValueError("an open-loop run needs a rate > 0: requests are sent on a schedule")
    node = ensure_load_tool()
    work = Path(tempfile.mkdtemp(prefix="httpbench-"))
    results: dict[str, Any] = {"runs": [], "mode": "open-loop", "work_dir": str(work), "samples": []}
    with scratch_market(template, traders, keep=keep) as scratch:
        keys = _activate_with_keys(scratch)
        code = scratch.market.code
        commits_key = spot_keys.matcher_commits(code)
        client = redis_client()
        worker = Worker(queue_for(code), {"MATCHING_RECORD_LATENCY": "1"}, log_path=work / "matcher.log")
        web = Web(work, workers=web_workers, env={"DJANGO_DEBUG": "0"})
        try:
            wait_for(web.live, 60, "the web to answer /health/live")
            stats = spot_keys.matcher_stats(code)
            wait_for(lambda: client.hexists(stats, "started_at"), 60, "the matcher to start", worker)
            for index, rate in enumerate(rates):
                client.delete(commits_key)
                totals = invariants.asset_totals([scratch.market.coin, scratch.market.currency])
                orders = Order.objects.filter(coin=scratch.market.coin, currency=scratch.market.currency)
                before = orders.count()
                answers = _open_loop_load(
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
                figures = open_loop_figures(
                    answers, {}, rate=rate, duration=duration, connections=connections, batch=batch
                )
                _settle_open_loop(scratch, figures, totals, worker, before)
                commits = first_commits(client.lrange(commits_key, 0, -1))
                figures = _with_checks(
                    open_loop_figures(
                        answers, commits, rate=rate, duration=duration, connections=connections, batch=batch
                    ),
                    figures,
                )
                if figures.joined != figures.accepted_orders:
                    figures.problems.append(
                        f"{figures.accepted_orders - figures.joined} accepted orders have no commit record"
                    )
                results["runs"].append(asdict(figures))
                results["samples"].append(_samples(answers, commits))
        finally:
            web.stop()
            worker.stop()
            client.delete(commits_key)
    return results


def _with_checks(figures: OpenLoopRun, checked: OpenLoopRun) -> OpenLoopRun:
    figures.orders_left_new = checked.orders_left_new
    figures.in_flight_at_end = checked.in_flight_at_end
    figures.trades = checked.trades
    figures.problems = list(checked.problems)
    return figures


def _settle_open_loop(
    scratch: Scratch, run: OpenLoopRun, totals: dict[str, Decimal], worker: Worker, orders_before: int
) -> None:
    """The end state of an open-loop run: every request was answered (the script waits for each), so
    the orders in the DB are exactly the accepted ones."""
    shim = HttpRun(
        offered_rate=run.offered_rate,
        duration_s=run.duration_s,
        connections=run.connections,
        batch=run.batch,
        requests=run.requests,
        status_counts=run.status_counts,
        errors=0,
        timeouts=0,
        accepted_orders=run.accepted_orders,
        accepted_per_s=run.accepted_per_s,
        latency_ms={},
    )
    _settle_and_check(scratch, shim, totals, worker, orders_before)
    run.orders_left_new, run.in_flight_at_end, run.trades = shim.orders_left_new, shim.in_flight_at_end, shim.trades
    run.problems = shim.problems
    if shim.in_flight_at_end:
        run.problems.append(f"{shim.in_flight_at_end} orders in the DB were never answered")


def _samples(answers: list[Answer], commits: dict[int, int]) -> dict[str, list[float]]:
    """Per accepted order, seconds since the run's first due time and the two latencies in ms (for
    the plot; the end-to-end one is absent for an order without a commit record)."""
    start = min((a.due_us for a in answers), default=0)
    at, http, e2e = [], [], []
    for answer in answers:
        if not 200 <= answer.status < 300:
            continue
        for order_id in answer.order_ids:
            committed = commits.get(order_id)
            at.append(round((answer.due_us - start) / 1e6, 4))
            http.append(round((answer.answered_us - answer.due_us) / 1000, 3))
            e2e.append(round((committed - answer.due_us) / 1000, 3) if committed is not None else -1.0)
    return {"at_s": at, "http_ms": http, "e2e_ms": e2e}


def plot_open_loop(results: dict[str, Any], path: Path, title: str) -> None:
    """Latency CDFs (HTTP and end to end) of each rate, and the end-to-end latency over time: one PNG
    or SVG (by the path's suffix), drawn with matplotlib (no CDN, no browser)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cdf, over_time) = plt.subplots(1, 2, figsize=(13, 4.8))
    for run, samples in zip(results["runs"], results["samples"], strict=True):
        label = f"{run['offered_rate']:.0f}/s" + (f", batches of {run['batch']}" if run["batch"] else "")
        for name, style in (("http_ms", "--"), ("e2e_ms", "-")):
            values = sorted(max(v, 0.1) for v in samples[name] if v >= 0)
            if not values:
                continue
            n = len(values)
            what = "HTTP" if name == "http_ms" else "end to end"
            p99 = run["http_ms" if name == "http_ms" else "e2e_ms"]["p99"]
            cdf.plot(values, [(i + 1) / n for i in range(n)], style, label=f"{label} {what} (p99 {p99:.0f} ms)")
        points = [(t, v) for t, v in zip(samples["at_s"], samples["e2e_ms"], strict=True) if v >= 0]
        over_time.plot([t for t, _ in points], [v for _, v in points], ".", markersize=2, label=label)
    cdf.set_xscale("log")
    cdf.set_xlabel("latency from the request's due time (ms, log)")
    cdf.set_ylabel("share of orders")
    cdf.axvline(50, color="grey", linestyle=":", linewidth=1)
    cdf.text(52, 0.02, "50 ms", fontsize=8, color="grey")
    cdf.grid(True, which="both", alpha=0.3)
    cdf.legend(fontsize=8)
    over_time.set_yscale("log")
    over_time.set_xlabel("seconds since the first request was due")
    over_time.set_ylabel("end-to-end latency (ms, log)")
    over_time.grid(True, which="both", alpha=0.3)
    over_time.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
