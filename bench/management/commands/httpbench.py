"""``python manage.py httpbench``: orders placed over HTTP with signed requests against gunicorn as the
Procfile runs it, a real matcher behind it (``bench.httpbench``). Prints a table, writes JSON.

    python manage.py httpbench --rates 500,0 --duration 20 --profile --json var/httpbench.json
    python manage.py httpbench --open-loop --rates 500 --json docs/bench/http-e2e.json --plot docs/bench/http-e2e.png

``--rates`` lists offered rates in requests/s (0: as fast as the web answers). Needs Node.js and npm
(the load tool is autocannon, installed into bench/http/node_modules on first use).

``--open-loop``: requests sent on a fixed schedule whatever the answers (``bench/http/openloop.js``,
Node's keep-alive HTTP agent), and per order the HTTP latency (due -> answer) and the end-to-end
latency (due -> the commit of the matcher's batch that placed it, which the matcher records with
``MATCHING_RECORD_LATENCY``); rates must be > 0. With ``--batch N`` both modes post batches of N.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from bench import httpbench
from bench.loadtest import environment
from bench.management.commands.loadtest import _require_migrated


def _rates(text: str) -> list[float]:
    try:
        rates = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CommandError(f"--rates takes numbers separated by commas, not {text!r}", returncode=2) from None
    if not rates or any(rate < 0 for rate in rates):
        raise CommandError("--rates needs rates >= 0 (0: as fast as the web answers), e.g. 500,0", returncode=2)
    return rates


class Command(BaseCommand):
    help = (
        "Place orders over HTTP (signed, many traders) against gunicorn and a matcher; report throughput and latency."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--rates", type=_rates, default=[500.0, 0.0], help="offered requests/s, comma-separated; 0 = max"
        )
        parser.add_argument("--duration", type=float, default=20.0, help="seconds per rate (default 20)")
        parser.add_argument("--connections", type=int, default=32, help="HTTP connections (default 32)")
        parser.add_argument("--traders", type=int, default=100, help="traders, one API key each (default 100)")
        parser.add_argument("--web-workers", type=int, default=2, help="gunicorn workers (default 2, as the Procfile)")
        parser.add_argument(
            "--batch", type=int, default=0, help="orders per POST to /api/orders/batch (default 0: single orders)"
        )
        parser.add_argument("--market", default="btc_usdt", help="market whose grid the scratch market copies")
        parser.add_argument("--profile", action="store_true", help="also a max-rate run sampled by py-spy")
        parser.add_argument("--keep", action="store_true", help="keep the scratch market and its traders")
        parser.add_argument("--json", type=Path, default=None, help="write the results here")
        parser.add_argument(
            "--open-loop",
            action="store_true",
            help="send on schedule whatever the answers; report HTTP and end-to-end (commit) latency per order",
        )
        parser.add_argument("--plot", type=Path, default=None, help="open loop: latency plot (.png or .svg)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["duration"] <= 0 or options["connections"] < 1 or options["traders"] < 1:
            raise CommandError("--duration, --connections and --traders must be positive", returncode=2)
        if not 0 <= options["batch"] <= 50:
            raise CommandError("--batch must be between 0 and 50 (the API's batch limit)", returncode=2)
        open_loop = options["open_loop"]
        if open_loop and any(rate <= 0 for rate in options["rates"]):
            raise CommandError("--open-loop needs rates > 0 (requests are sent on a schedule)", returncode=2)
        _require_migrated()
        common = {
            name: options[name]
            for name in ("rates", "duration", "connections", "traders", "web_workers", "batch", "keep")
        }
        if open_loop:
            results = httpbench.run_open_loop(options["market"], **common)
        else:
            results = httpbench.run(options["market"], profile=options["profile"], **common)
        results["environment"] = environment(0)
        samples = results.pop("samples", None)
        self.stdout.write(open_loop_table(results) if open_loop else table(results))
        if open_loop and options["plot"]:
            options["plot"].parent.mkdir(parents=True, exist_ok=True)
            what = f"batches of {options['batch']}" if options["batch"] else "single orders"
            title = f"Signed POSTs, open loop, {what}: latency per order ({results['environment']['commit']})"
            httpbench.plot_open_loop({**results, "samples": samples}, options["plot"], title)
        if options["json"]:
            options["json"].parent.mkdir(parents=True, exist_ok=True)
            options["json"].write_text(json.dumps(results, indent=2) + "\n")
        if any(run["problems"] for run in results["runs"]):
            raise CommandError("the end state has problems (see above)", returncode=1)


def open_loop_table(results: dict[str, Any]) -> str:
    lines = [
        f"{'offered/s':>10} {'batch':>5} {'accepted orders/s':>18} {'HTTP p50':>9} {'p99':>7} {'max':>7}"
        f" {'e2e p50':>8} {'p99':>7} {'max':>7}  statuses (ms)",
    ]
    for run in results["runs"]:
        http, e2e = run["http_ms"], run["e2e_ms"]
        statuses = ", ".join(f"{code}: {count}" for code, count in sorted(run["status_counts"].items()))
        lines.append(
            f"{run['offered_rate']:>10.0f} {run['batch']:>5} {run['accepted_per_s']:>18.0f} {http['p50']:>9.1f}"
            f" {http['p99']:>7.1f} {http['max']:>7.1f} {e2e['p50']:>8.1f} {e2e['p99']:>7.1f} {e2e['max']:>7.1f}"
            f"  {statuses}"
        )
        for problem in run.get("problems", []):
            lines.append(f"    PROBLEM: {problem}")
    return "\n".join(lines) + "\n"


def table(results: dict[str, Any]) -> str:
    lines = [
        f"{'offered/s':>10} {'accepted orders/s':>18} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7}  statuses",
    ]
    runs = list(results["runs"])
    if results.get("profile"):
        runs.append(results["profile"]["run"])
    for run in runs:
        latency = run["latency_ms"]
        offered = f"{run['offered_rate']:.0f}" if run["offered_rate"] else "max"
        statuses = ", ".join(f"{code}: {count}" for code, count in sorted(run["status_counts"].items()))
        lines.append(
            f"{offered:>10} {run['accepted_per_s']:>18.0f} {latency['p50']:>7.1f} {latency['p90']:>7.1f} "
            f"{latency['p99']:>7.1f} {latency['max']:>7.1f}  {statuses}"
            + (f"  errors {run['errors']}" if run["errors"] else "")
        )
        for problem in run.get("problems", []):
            lines.append(f"    PROBLEM: {problem}")
    if results.get("profile"):
        shares = results["profile"]["share_percent"]
        lines.append(f"profile ({results['profile']['samples']} samples of request handling, py-spy):")
        lines += [f"    {name:<26} {share:5.1f} %" for name, share in shares.items()]
    return "\n".join(lines) + "\n"
