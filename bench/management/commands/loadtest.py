"""``python manage.py loadtest``: the real pipeline against the naive one, side by side.

Interface: docs/benchmark.md. The work is in ``bench.loadtest``; this command parses
options, runs, prints the table and writes the JSON and the plot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError, connection
from django.db.migrations.executor import MigrationExecutor

from bench import loadtest, workload


def _rates(text: str) -> list[float]:
    try:
        rates = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CommandError(f"--sweep-rates takes numbers separated by commas, not {text!r}", returncode=2) from None
    if not rates or any(rate <= 0 for rate in rates):
        raise CommandError("--sweep-rates needs positive rates, e.g. 1000,2000,5000,8000", returncode=2)
    return rates


def _require_migrated() -> None:
    """Stop with a message naming the fix when the database is missing, unreachable or not migrated.

    It does not migrate by itself: which database the environment names is the operator's choice
    (a mistyped ``MYSQL_DATABASE`` must not quietly get a schema), and a migration's time has no
    place in a measurement.
    """
    name = connection.settings_dict["NAME"]
    try:
        executor = MigrationExecutor(connection)
        unapplied = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except OperationalError as exc:
        if exc.args and exc.args[0] == 1049:  # ER_BAD_DB_ERROR: unknown database
            raise CommandError(
                f"the database {name!r} does not exist: create it (CREATE DATABASE {name} CHARACTER SET utf8mb4), "
                "then run `python manage.py migrate`",
                returncode=2,
            ) from None
        raise CommandError(f"cannot use the database {name!r}: {exc}", returncode=2) from None
    if unapplied:
        state = "has no tables" if not connection.introspection.table_names() else "is not up to date"
        raise CommandError(
            f"the database {name!r} {state} ({len(unapplied)} migrations not applied): "
            "run `python manage.py migrate` first",
            returncode=2,
        )


class Command(BaseCommand):
    help = "Measure the matching pipeline (and, with --compare naive, the naive per-order pipeline)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--orders", type=int, default=50_000, help="commands to send (default 50000)")
        parser.add_argument(
            "--rate", type=float, default=0, help="offered commands/s, open loop; 0 = as fast as possible"
        )
        parser.add_argument(
            "--market", default="btc_usdt", help="market whose tick, lot and fees the scratch market copies"
        )
        parser.add_argument("--compare", choices=["naive"], help="also run the naive per-order pipeline")
        parser.add_argument("--json", dest="json_path", help="write the results here (a PNG plot goes next to it)")
        parser.add_argument("--batch-size", type=int, default=settings.MATCHING_BATCH_SIZE, help="matcher batch size")
        parser.add_argument("--sweep-rates", help="comma-separated offered rates: throughput and p99 against rate")
        parser.add_argument("--users", type=int, default=200, help="funded traders (default 200)")
        parser.add_argument("--seed", type=int, default=7, help="workload seed (default 7)")
        parser.add_argument("--resting", type=int, default=0, help="with --measure-rebuild: resting orders to fill in")
        parser.add_argument(
            "--measure-rebuild", action="store_true", help="measure matcher start-up at --resting orders"
        )
        parser.add_argument("--keep", action="store_true", help="keep the scratch markets' data for inspection")
        parser.add_argument(
            "--quiet", action="store_true", help="no progress lines on stderr (by default one every few seconds)"
        )

    def _progress(self, line: str) -> None:
        self.stderr.write(line, style_func=str)  # plain: stderr's default style is the error colour

    def handle(self, *args: Any, **o: Any) -> None:
        if o["orders"] <= 0 or o["users"] <= 0 or o["batch_size"] <= 0:
            raise CommandError("--orders, --users and --batch-size must be positive", returncode=2)
        if o["rate"] < 0:
            raise CommandError("--rate must be 0 (as fast as possible) or positive", returncode=2)
        _require_migrated()
        json_path = Path(o["json_path"]) if o["json_path"] else None
        if json_path:
            json_path.parent.mkdir(parents=True, exist_ok=True)  # the plot is drawn before the JSON is written
        data: dict[str, Any] = {}
        if o["measure_rebuild"]:
            if o["resting"] <= 0:
                raise CommandError("--measure-rebuild needs --resting N (e.g. 1000000)", returncode=2)
            self.stdout.write(f"filling {o['resting']:,} resting orders and starting a matcher ...")
            data["rebuild"] = loadtest.measure_rebuild(o["market"], o["resting"], keep=o["keep"])
            self.stdout.write(", ".join(f"{k}: {v}" for k, v in data["rebuild"].items()))
        else:
            commands = workload.generate(o["orders"], seed=o["seed"], users=o["users"])
            common = {"users": o["users"], "keep": o["keep"], "progress": None if o["quiet"] else self._progress}
            if o["sweep_rates"]:
                points = []
                for rate in _rates(o["sweep_rates"]):
                    result = loadtest.run_pipeline(
                        o["market"], commands, rate=rate, batch_size=o["batch_size"], **common
                    )
                    points.append({"rate": rate, **result.contract()})
                    self.stdout.write(
                        f"offered {rate:>7.0f}/s: {result.throughput:>7.0f}/s, p50 {result.p50_ms:.1f} ms, "
                        f"p99 {result.p99_ms:.1f} ms, invariants {'ok' if result.invariants_ok else 'FAILED'}"
                    )
                data["sweep"] = points
                if json_path:
                    loadtest.plot_sweep(
                        points, json_path.with_suffix(".png"), f"pipeline sweep, batch {o['batch_size']}"
                    )
            else:
                rows = {
                    "pipeline": loadtest.run_pipeline(
                        o["market"], commands, rate=o["rate"], batch_size=o["batch_size"], **common
                    )
                }
                if o["compare"] == "naive":
                    rows["naive"] = loadtest.run_naive(o["market"], commands, rate=o["rate"], **common)
                ratio = None
                if "naive" in rows:
                    naive = rows["naive"]
                    ratio = {
                        "throughput": round(rows["pipeline"].throughput / max(naive.throughput, 1e-9), 2),
                        "p99_ms": round(rows["pipeline"].p99_ms / max(naive.p99_ms, 1e-9), 4),
                    }
                    data["ratio"] = ratio
                data.update({name: r.contract() for name, r in rows.items()})
                self.stdout.write(loadtest.table(rows, ratio))
                if json_path:
                    offered = "as fast as possible" if not o["rate"] else f"{o['rate']:,.0f} orders/s offered"
                    loadtest.plot(
                        rows,
                        json_path.with_suffix(".png"),
                        f"{o['orders']:,} orders, {offered}, batch {o['batch_size']}",
                    )
        data["environment"] = loadtest.environment(o["batch_size"])
        if json_path:
            loadtest.write_json(json_path, data)
            self.stdout.write(
                f"wrote {json_path}" + ("" if o["measure_rebuild"] else f" and {json_path.with_suffix('.png')}")
            )
        failed = [name for name, row in data.items() if isinstance(row, dict) and row.get("invariants_ok") is False]
        if failed or any(not p.get("invariants_ok", True) for p in data.get("sweep", [])):
            raise CommandError(f"end-state invariants failed: {failed or 'sweep'}")
