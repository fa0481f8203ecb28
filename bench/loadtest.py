"""The pipeline benchmark (``python manage.py loadtest``; interface: docs/benchmark.md).

Each run works on a scratch market with its own assets and users, created here and dropped at the
end, so it can run against a development database while the demo runs. The real pipeline: orders are
accepted through ``order_place_many`` (holds, rows), then offered to the market's stream on an
open-loop schedule, and a real ``celery -A spot worker -Q match_<coin> -P solo`` process (started
and stopped here) matches them. Latency of an order: stream entry -> its batch committed and
acknowledged, as the matcher records it. Statements are counted by the matcher's DB driver wrapper.
"""

from __future__ import annotations

import json
import math
import os
import platform
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis
from django.contrib.auth import get_user_model
from django.db import connection, connections

from bench import feed, workload
from bench.processes import Worker, wait_for
from matching.queue import RedisStreamOrderQueue
from matching.worker.registry import queue_for
from orders import invariants
from orders.balances import balance_deposit
from orders.models import Balance, DeadLetter, Market, MatcherCheckpoint, Order, Trade
from spot import keys
from spot.redis import redis_client

ROOT = Path(__file__).resolve().parent.parent
QUOTE_FUNDING = Decimal("100000000")
BASE_FUNDING = Decimal("100000")
PROGRESS_EVERY_S = 5.0  # a long run says how far it got this often (a 50,000-order run takes minutes)

Write = Callable[[str], object]  # where progress lines go (the command passes its stderr), or None: quiet


@dataclass
class RunResult:
    """One pipeline's figures, in the JSON keys of docs/benchmark.md (plus what the plot and the table need)."""

    orders: int
    seconds: float
    throughput: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    db_statements_per_order: float
    trades: int
    dead_lettered: int
    invariants_ok: bool
    problems: list[str] = field(default_factory=list)
    offered_rate: float = 0
    intake_seconds: float = 0
    samples: list[tuple[int, int]] = field(default_factory=list, repr=False)  # (entered ms, latency ms)

    def contract(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("samples")
        for key in ("seconds", "throughput", "p50_ms", "p99_ms", "max_ms", "intake_seconds"):
            data[key] = round(data[key], 3 if key == "seconds" else 1)
        data["db_statements_per_order"] = round(self.db_statements_per_order, 4)
        return data


def percentile(sorted_values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values) - 1, max(0, math.ceil(share * len(sorted_values)) - 1))
    return float(sorted_values[rank])


# -- progress ----------------------------------------------------------------------------------


class Progress:
    """While a phase runs, a line every ``every_s`` seconds: how many of ``total`` are done (and sent,
    given ``sent``), the rate and the time elapsed; a last line when the phase ends. ``done`` and
    ``sent`` are called on a thread of their own (they read Redis or the DB; a Django connection
    opened there is closed with the thread). With ``write=None`` (``--quiet``) it prints nothing.

        with Progress(self.stderr.write, "pipeline", "settled", len(items), settled_count):
            wait_for(queue.settled, ...)
    """

    def __init__(
        self,
        write: Write | None,
        what: str,
        verb: str,
        total: int,
        done: Callable[[], int],
        *,
        sent: Callable[[], int] | None = None,
        every_s: float = PROGRESS_EVERY_S,
    ) -> None:
        self.write, self.what, self.verb, self.total = write, what, verb, total
        self.done, self.sent, self.every_s = done, sent, every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    def __enter__(self) -> Progress:
        self._started = time.perf_counter()
        if self.write is not None:
            self._thread = threading.Thread(target=self._run, name=f"progress {self.what}", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        if exc_type is None:
            self._line(self.total, None, last=True)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.every_s):
                try:
                    done, sent = self.done(), None if self.sent is None else self.sent()
                except Exception as exc:  # noqa: BLE001 - a progress line must never end the run
                    self._say(f"{self.what}: progress unavailable ({exc!r})")
                    continue
                self._line(done, sent)
        finally:
            connections.close_all()  # this thread's own, if a count used the ORM

    def _line(self, done: int, sent: int | None, *, last: bool = False) -> None:
        elapsed = time.perf_counter() - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        line = f"{self.what}: {done:,} of {self.total:,} {self.verb} {'in' if last else 'after'} {elapsed:.1f} s"
        line += f" ({rate:,.0f}/s)" + ("" if sent is None else f", {sent:,} sent")
        self._say(line)

    def _say(self, line: str) -> None:
        write = self.write
        assert write is not None
        write(line)


# -- scratch markets ---------------------------------------------------------------------------


@dataclass
class Scratch:
    market: Market
    user_ids: list[int]


def template_market(code: str) -> dict[str, Any]:
    """Tick, lot, minimums and fees of ``code`` if it exists, else BTC/USDT-like defaults."""
    coin, _, currency = code.partition("_")
    market = Market.objects.filter(coin=coin, currency=currency).first()
    if market is None:
        return {
            "tick_size": Decimal("0.01"),
            "lot_size": Decimal("0.0001"),
            "min_quantity": Decimal("0.0001"),
            "min_notional": Decimal("0"),
            "maker_fee_rate": Decimal("0.001"),
            "taker_fee_rate": Decimal("0.002"),
        }
    fields = ("tick_size", "lot_size", "min_quantity", "maker_fee_rate", "taker_fee_rate")
    return {name: getattr(market, name) for name in fields} | {"min_notional": Decimal("0")}


@contextmanager
def scratch_market(template: str, users: int, *, keep: bool = False) -> Iterator[Scratch]:
    """A market with its own two assets and ``users`` funded traders; dropped afterwards."""
    tag = secrets.token_hex(3)
    market = Market.objects.create(coin=f"lb{tag}", currency=f"lq{tag}", **template_market(template))
    User = get_user_model()
    created = User.objects.bulk_create([User(username=f"loadtest-{tag}-{n}", is_active=False) for n in range(users)])
    user_ids = list(User.objects.filter(username__startswith=f"loadtest-{tag}-").values_list("id", flat=True))
    assert len(user_ids) == len(created)
    for user_id in user_ids:
        balance_deposit(user=user_id, asset=market.currency, amount=QUOTE_FUNDING)
        balance_deposit(user=user_id, asset=market.coin, amount=BASE_FUNDING)
    try:
        yield Scratch(market, user_ids)
    finally:
        if not keep:
            drop_market(market, user_ids)


def drop_market(market: Market, user_ids: list[int]) -> None:
    """Delete everything a scratch market made: rows of its assets, its orders' cache entries and its
    Redis keys."""
    coin, currency = market.coin, market.currency
    client = redis_client()
    order_ids = Order.objects.filter(coin=coin, currency=currency).values_list("id", flat=True)
    _unlink(client, (keys.order(order_id) for order_id in order_ids.iterator(chunk_size=10_000)))
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM trades WHERE coin = %s AND currency = %s", [coin, currency])
        cursor.execute("DELETE FROM orders WHERE coin = %s AND currency = %s", [coin, currency])
    Balance.objects.filter(asset__in=[coin, currency]).delete()
    DeadLetter.objects.filter(market=market.code).delete()
    MatcherCheckpoint.objects.filter(market=market).delete()
    get_user_model().objects.filter(id__in=user_ids).delete()
    market.delete()
    _unlink(client, client.scan_iter(match=f"*{market.code}*", count=10_000))


def _unlink(client: redis.Redis, keys: Iterator[Any]) -> None:
    batch: list[Any] = []
    for key in keys:
        batch.append(key)
        if len(batch) == 10_000:
            client.unlink(*batch)
            batch = []
    if batch:
        client.unlink(*batch)


# -- the real pipeline -------------------------------------------------------------------------


def run_pipeline(
    template: str,
    commands: Sequence[workload.Command],
    *,
    rate: float,
    users: int,
    batch_size: int,
    keep: bool = False,
    mid: Decimal = Decimal("30000"),
    progress: Write | None = None,
) -> RunResult:
    """Run ``commands`` through the real pipeline on a scratch market; progress lines go to ``progress``."""
    client = redis_client()
    with scratch_market(template, users, keep=keep) as scratch:
        market = scratch.market
        items, intake_seconds, totals = _accept(client, scratch, commands, mid, "pipeline", progress)
        stats_key = keys.matcher_stats(market.code)
        queue = RedisStreamOrderQueue(client, market.code)
        if not rate:
            # Drain throughput: the whole stream waits before the matcher starts, so the feeder's speed
            # is not what is measured; the clock starts when the matcher has rebuilt its book.
            feed.push(client, market, items)
        worker = Worker(
            queue_for(market.code), {"MATCHING_RECORD_LATENCY": "1", "MATCHING_BATCH_SIZE": str(batch_size)}
        )
        try:
            wait_for(lambda: client.hexists(stats_key, "started_at"), 60, "the matcher to start", worker)
            statements_before = int(client.hget(stats_key, "statements") or 0)
            started_ms = int(float(client.hget(stats_key, "started_at")) * 1000)

            def settled() -> int:  # commands in committed and acknowledged batches
                return int(client.hget(stats_key, "commands") or 0)

            with Progress(progress, "pipeline", "settled", len(items), settled, sent=lambda: _sent(client, queue)):
                if rate:
                    feed.push(client, market, items, rate=rate)
                wait_for(queue.settled, 120 + len(items) / 500, "the stream to be drained", worker)
            statements = int(client.hget(stats_key, "statements") or 0) - statements_before
        finally:
            worker.stop()
        samples = [tuple(map(int, raw.split(b":"))) for raw in client.lrange(keys.matcher_latency(market.code), 0, -1)]
        result = _result(samples, len(items), statements, rate, None if rate else started_ms)
        return _checked(result, market, items, totals, intake_seconds)


def _accept(
    client: redis.Redis,
    scratch: Scratch,
    commands: Sequence[workload.Command],
    mid: Decimal,
    what: str,
    progress: Write | None,
) -> tuple[list[tuple[str, int | None]], float, dict[str, Decimal]]:
    """Accept the stream through intake; returns its stream items, the seconds it took, and the
    per-asset totals the end state must still have."""
    market = scratch.market
    feed.publish_reference(client, market, mid + 20 * market.tick_size)
    places = sum(1 for command in commands if isinstance(command, workload.Place))
    accepted = Order.objects.filter(coin=market.coin, currency=market.currency).count  # idx_orders_currency_coin_status
    started = time.perf_counter()
    with Progress(progress, f"{what} intake", "orders accepted", places, accepted):
        items = feed.accept(market, scratch.user_ids, commands)
    return items, time.perf_counter() - started, invariants.asset_totals([market.coin, market.currency])


def _sent(client: redis.Redis, queue: RedisStreamOrderQueue) -> int:
    """Entries ever added to the market's stream (Redis 7's ``entries-added``; trimming does not
    lower it)."""
    return int(client.xinfo_stream(queue.key).get("entries-added", 0))


def _checked(
    result: RunResult, market: Market, items: list[tuple[str, int | None]], totals: dict[str, Decimal], intake: float
) -> RunResult:
    result.intake_seconds = intake
    result.trades = Trade.objects.filter(coin=market.coin, currency=market.currency).count()
    result.dead_lettered = DeadLetter.objects.filter(market=market.code).count()
    result.problems = invariants.end_state(market, [j for j, _ in items], totals)
    result.invariants_ok = not result.problems
    return result


def _result(
    samples: list[tuple[int, int]], orders: int, statements: int, rate: float, started_ms: int | None = None
) -> RunResult:
    """Figures from ``(entered ms, latency ms)`` samples. The run's clock starts at the first entry,
    or at ``started_ms`` when the whole stream was waiting before the matcher started."""
    latencies = sorted(lat for _, lat in samples)
    first = started_ms or min((entered for entered, _ in samples), default=0)
    last = max((entered + lat for entered, lat in samples), default=0)
    seconds = max((last - first) / 1000, 1e-3)
    return RunResult(
        orders=orders,
        seconds=seconds,
        throughput=len(samples) / seconds,
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        max_ms=float(latencies[-1]) if latencies else 0.0,
        db_statements_per_order=statements / max(orders, 1),
        trades=0,
        dead_lettered=0,
        invariants_ok=False,
        offered_rate=rate,
        samples=samples,
    )


# -- the naive pipeline ------------------------------------------------------------------------


def run_naive(
    template: str,
    commands: Sequence[workload.Command],
    *,
    rate: float,
    users: int,
    keep: bool = False,
    mid: Decimal = Decimal("30000"),
    progress: Write | None = None,
) -> RunResult:
    """Run ``commands`` through the naive per-order pipeline on a scratch market."""
    from bench import naive

    client = redis_client()
    with scratch_market(template, users, keep=keep) as scratch:
        market = scratch.market
        items, intake_seconds, totals = _accept(client, scratch, commands, mid, "naive", progress)
        worker = Worker(naive.queue_name(market.code), {}, naive.WORKER_ARGS)
        try:
            wait_for(lambda: naive.ready(market.code), 60, "the naive worker to start", worker)
            with Progress(progress, "naive", "processed", len(items), lambda: naive.processed(market.code)):
                naive.send_naive(market.code, items, rate)
                wait_for(
                    lambda: naive.processed(market.code) >= len(items),
                    300 + len(items) / 100,
                    "the naive worker",
                    worker,
                )
        finally:
            worker.stop()
        samples = naive.samples(market.code)
        result = _result(samples, len(items), naive.statements(market.code), rate)
        return _checked(result, market, items, totals, intake_seconds)


# -- rebuild at scale --------------------------------------------------------------------------


def measure_rebuild(template: str, resting: int, *, keep: bool = False) -> dict[str, Any]:
    """Fill a scratch market with ``resting`` non-crossing resting orders (bulk SQL, holds included),
    start a matcher, and measure its rebuild time and resident memory."""
    client = redis_client()
    with scratch_market(template, 200, keep=keep) as scratch:
        market = scratch.market
        started = time.perf_counter()
        _insert_resting(market, scratch.user_ids, resting)
        fill_seconds = time.perf_counter() - started
        worker = Worker(queue_for(market.code), {})
        stats_key = keys.matcher_stats(market.code)
        launched = time.perf_counter()
        try:
            wait_for(lambda: client.hexists(stats_key, "rebuild_seconds"), 600, "the rebuild", worker)
            ready_seconds = time.perf_counter() - launched
            rss = worker.rss_mib()
        finally:
            worker.stop()
        return {
            "resting_orders": int(client.hget(stats_key, "resting") or 0),
            "rebuild_seconds": float(client.hget(stats_key, "rebuild_seconds") or 0),
            "worker_start_to_ready_seconds": round(ready_seconds, 2),
            "matcher_rss_mib": round(rss, 1),
            "fill_seconds": round(fill_seconds, 1),
        }


def _insert_resting(market: Market, user_ids: list[int], count: int) -> None:
    """``count`` resting limit orders, half bids below and half asks above a mid, 1,000 price levels a
    side, with seq in arrival order and each user's holds equal to what their orders need."""
    from orders.ids import allocator

    tick, lot = market.tick_size, market.lot_size
    mid = 3_000_000  # ticks
    holds: dict[tuple[int, str], Decimal] = {}
    chunk = 5_000
    seq = 0
    with connection.cursor() as cursor:
        for start in range(0, count, chunk):
            n = min(chunk, count - start)
            ids = allocator.take(n)
            rows = []
            for k, order_id in enumerate(ids):
                seq += 1
                index = start + k
                user = user_ids[index % len(user_ids)]
                side = "buy" if index % 2 == 0 else "sell"
                level = 1 + (index // 2) % 1000
                price = (mid - level if side == "buy" else mid + level) * tick
                quantity = (1 + index % 7) * lot
                held = price * quantity if side == "buy" else quantity
                asset = market.currency if side == "buy" else market.coin
                holds[(user, asset)] = holds.get((user, asset), Decimal(0)) + held
                rows.append((order_id, user, side, market.currency, market.coin, price, quantity, held, seq))
            values = ", ".join(
                ["(%s, %s, %s, %s, %s, 'limit', 'gtc', %s, %s, %s, 0, 0, 0, 'pending', '', %s, NOW(6), NOW(6))"] * n
            )
            cursor.execute(
                "INSERT INTO orders (id, user_id, trade_type, currency, coin, type, time_in_force, price, quantity, "
                "held, executed_quantity, executed_quote, fee, status, reject_reason, seq, created_at, updated_at) "
                f"VALUES {values}",
                [value for row in rows for value in row],
            )
        for (user, asset), amount in holds.items():
            cursor.execute(
                "UPDATE balances SET held = held + %s WHERE user_id = %s AND asset = %s", [amount, user, asset]
            )
        cursor.execute(
            "INSERT INTO matcher_checkpoints (market_id, last_entry, last_seq, epoch, updated_at) "
            "VALUES (%s, '0-0', %s, 0, NOW(6))",
            [market.id, seq],
        )


# -- environment, output -----------------------------------------------------------------------


def environment(batch_size: int) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT VERSION()")
        (mysql,) = cursor.fetchone()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    client: redis.Redis = redis_client()
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "mysql": mysql,
        "redis": client.info("server")["redis_version"],
        "batch_size": batch_size,
        "commit": commit or "unknown",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def table(rows: dict[str, RunResult], ratio: dict[str, float] | None) -> str:
    header = f"{'pipeline':<10} {'orders':>7} {'seconds':>8} {'orders/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'stmt/ord':>9} {'trades':>7} {'DLQ':>4}  invariants"
    lines = [header, "-" * len(header)]
    for name, r in rows.items():
        lines.append(
            f"{name:<10} {r.orders:>7} {r.seconds:>8.2f} {r.throughput:>9.0f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} "
            f"{r.max_ms:>8.1f} {r.db_statements_per_order:>9.3f} {r.trades:>7} {r.dead_lettered:>4}  "
            f"{'ok' if r.invariants_ok else 'FAILED: ' + '; '.join(r.problems[:3])}"
        )
    if ratio:
        lines.append(f"{'ratio':<10} {'':>7} {'':>8} {ratio['throughput']:>8.1f}x {'':>8} {ratio['p99_ms']:>8.3f}")
    return "\n".join(lines)


def plot(rows: dict[str, RunResult], path: Path, title: str) -> None:
    """Latency CDF and throughput over time of each pipeline, one PNG."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cdf, over_time) = plt.subplots(1, 2, figsize=(13, 4.8))
    for name, result in rows.items():
        latencies = sorted(max(lat, 0.5) for _, lat in result.samples)
        if not latencies:
            continue
        n = len(latencies)
        cdf.plot(latencies, [(i + 1) / n for i in range(n)], label=f"{name} (p99 {result.p99_ms:.0f} ms)")
        first = min(e for e, _ in result.samples)
        buckets: dict[int, int] = {}
        for entered, lat in result.samples:
            bucket = (entered + lat - first) // 250
            buckets[bucket] = buckets.get(bucket, 0) + 1
        xs = sorted(buckets)
        over_time.plot([x / 4 for x in xs], [buckets[x] * 4 for x in xs], label=f"{name} ({result.throughput:,.0f}/s)")
    cdf.set_xscale("log")
    top = max((lat for r in rows.values() for _, lat in r.samples), default=1)
    # 1-2-5 ticks within three decades; one a decade beyond, so labels never collide.
    steps = (1, 2, 5) if top <= 2000 else (1,)
    ticks = [m * 10**e for e in range(7) for m in steps if m * 10**e <= top * 2]
    cdf.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
    cdf.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    cdf.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    cdf.set_xlabel("latency: stream entry -> committed and acked (ms, log)")
    cdf.set_ylabel("share of orders")
    cdf.axvline(50, color="grey", linestyle=":", linewidth=1)
    cdf.text(52, 0.02, "50 ms (FR-PF-002 p99)", fontsize=8, color="grey")
    cdf.grid(True, which="both", alpha=0.3)
    cdf.legend()
    over_time.set_xlabel("seconds since the first order entered")
    over_time.set_ylabel("orders committed per second")
    over_time.grid(True, alpha=0.3)
    over_time.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_sweep(points: list[dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, left = plt.subplots(figsize=(7.5, 4.8))
    offered = [p["rate"] for p in points]
    left.plot(offered, [p["throughput"] for p in points], "o-", label="throughput (orders/s)")
    left.plot(offered, offered, ":", color="grey", label="offered = served")
    left.set_xlabel("offered rate (orders/s)")
    left.set_ylabel("orders/s")
    right = left.twinx()
    right.plot(offered, [p["p99_ms"] for p in points], "s--", color="tab:red", label="p99 latency (ms)")
    right.set_ylabel("p99 latency (ms)")
    right.set_yscale("log")
    handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    labels = left.get_legend_handles_labels()[1] + right.get_legend_handles_labels()[1]
    left.legend(handles, labels, loc="upper left")
    left.grid(True, alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
