"""The fault suite: the pipeline in real processes (matchers, the default worker, gunicorn), one fault at
a time: processes killed with kill -9, connections cut or slowed by a TCP proxy. Every test ends with the
full end-state check of ``orders/invariants.py``. docs/RELIABILITY.md describes each fault and its
measured recovery.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from bench import feed, workload
from orders import invariants
from orders.models import Order, OrderStatus
from tests.pipeline.conftest import matchers, stream_settled, wait_until  # noqa: F401 - fixtures and helpers

ROOT = Path(__file__).resolve().parent.parent.parent


def accept(market, traders, redis_client, count: int, seed: int) -> list[tuple[str, int | None]]:
    """``count`` workload commands accepted by intake (orders `new`, funds held), not yet pushed:
    ``(command_json, order_id)`` in stream order."""
    feed.publish_reference(redis_client, market, Decimal("30000.20"))
    commands = workload.generate(count, seed=seed, users=len(traders))
    return feed.accept(market, [u.id for u in traders], commands)


def assert_end_state(market, commands: list[str], totals_before) -> None:
    """Every order final, trades and book equal to the replay of ``commands``, holds, fees, no crossed
    book, no duplicate trade, every asset conserved."""
    assert not Order.objects.filter(status=OrderStatus.NEW).exists()
    assert invariants.end_state(market, commands, totals_before) == []


class Process:
    """A process of the exchange started as the Procfile starts it, in its own session (so kill -9
    reaches a prefork pool's children too), with this test's settings, database and Redis."""

    def __init__(self, command: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        from django.conf import settings

        full_env = dict(os.environ)
        full_env.update(
            DJANGO_SETTINGS_MODULE=settings.SETTINGS_MODULE,
            MYSQL_DATABASE=settings.DATABASES["default"]["NAME"],
            PYTHONUNBUFFERED="1",
            **(env or {}),
        )
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            command, cwd=ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """kill -9 of the process and its children: nothing runs a shutdown handler."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


@pytest.fixture
def processes(tmp_path):
    """Start the default worker (``default_worker()``) or anything else of the Procfile; all are stopped
    at the end of the test."""
    started: list[Process] = []
    bin_dir = Path(sys.executable).parent

    class Starter:
        def default_worker(self, env: dict[str, str] | None = None) -> Process:
            """The Procfile's default worker: prefork pool of 2 on ``default,dead_letter``."""
            n = len(started)
            command = [str(bin_dir / "celery"), "-A", "spot", "worker", "-Q", "default,dead_letter"]
            command += ["-P", "prefork", "-c", "2", "-n", f"default-{n}@%h", "-l", "info"]
            process = Process(command, tmp_path / f"default-{n}.log", env)
            started.append(process)
            return process

        def start(self, command: list[str], name: str, env: dict[str, str] | None = None) -> Process:
            process = Process(command, tmp_path / f"{name}-{len(started)}.log", env)
            started.append(process)
            return process

    yield Starter()
    for process in started:
        process.stop()
