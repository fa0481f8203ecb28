"""Real Celery worker processes of this project, started and stopped from Python: the loadtest's
matcher and naive workers, and the test suite's matchers (which kill them with ``kill -9``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


class Worker:
    """A Celery worker process of this project on one queue (solo pool, one task at a time), with this
    process's settings module and database; the loadtest and the process tests start matchers so.

    ``typed=True`` starts it as an operator types it, ``celery -A spot worker -Q <queue>`` and the log
    level, nothing else: no pool, concurrency or node name (``spot.worker`` makes it a matcher)."""

    def __init__(
        self,
        queue: str,
        extra_env: dict[str, str],
        args: Sequence[str] = (),
        *,
        log_path: Path | None = None,
        loglevel: str = "warning",
        name: str | None = None,
        typed: bool = False,
    ) -> None:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE=settings.SETTINGS_MODULE,  # the workers use this process's settings
            MYSQL_DATABASE=settings.DATABASES["default"]["NAME"],
            PYTHONUNBUFFERED="1",
            **extra_env,
        )
        if log_path is None:
            (ROOT / "var").mkdir(exist_ok=True)
            log_path = ROOT / "var" / f"loadtest-{queue}.log"
        self.log_path = log_path
        self._log = open(self.log_path, "ab")
        celery = str(Path(sys.executable).parent / "celery")
        command = [celery, "-A", "spot", "worker", "-Q", queue, "-l", loglevel]
        if not typed:
            command += ["-P", "solo", "-c", "1", "--without-gossip", "--without-mingle", "--without-heartbeat"]
            command += ["-n", f"{name or queue}@%h"]
        command += args
        self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def rss_mib(self) -> float:
        """Resident memory of the worker process, from /proc."""
        with open(f"/proc/{self.proc.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def children(self) -> list[int]:
        """Pids of the worker's child processes (a prefork pool has some; a matcher none), from /proc."""
        found: list[int] = []
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            found += [int(pid) for pid in (task / "children").read_text(encoding="ascii").split()]
        return found

    def kill(self) -> None:
        """kill -9: no shutdown handler runs; the market's lease stays until it expires."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def wait_for(predicate: Any, timeout: float, what: str, worker: Worker | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if worker is not None and not worker.alive():
            raise RuntimeError(f"the worker died while waiting for {what}; see {worker.log_path}")
        time.sleep(0.01)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
