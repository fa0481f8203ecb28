"""Real processes of this project, started and stopped from Python: Celery workers (the loadtest's
matcher and naive workers, the test suite's matchers, which it kills with ``kill -9``) and the web
(gunicorn, for the HTTP benchmark and the tests that need a real web)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
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


def free_port() -> int:
    """A TCP port of 127.0.0.1 nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Web:
    """gunicorn as the Procfile's ``web:`` line runs it (``-c deploy/gunicorn.conf.py``, ``workers``
    workers), on free ports of 127.0.0.1 for the API and for the metrics listener, with this process's
    settings and database; ``env`` adds or overrides variables. Its logs go to ``log_dir``. Starting
    does not wait: ``live()`` says when it answers."""

    def __init__(self, log_dir: Path, *, workers: int = 2, env: dict[str, str] | None = None) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.metrics_port = free_port()  # deploy/gunicorn.conf.py adds the listener; /metrics only there
        self.url = f"http://127.0.0.1:{self.port}"
        self.access_log = log_dir / "access.log"
        self.error_log = log_dir / "error.log"
        environ = dict(os.environ)
        environ.update(
            DJANGO_SETTINGS_MODULE=settings.SETTINGS_MODULE,
            MYSQL_DATABASE=settings.DATABASES["default"]["NAME"],
            PROMETHEUS_MULTIPROC_DIR=str(log_dir / "prometheus-web"),
            PYTHONUNBUFFERED="1",
            WEB_METRICS_BIND=f"127.0.0.1:{self.metrics_port}",
            **(env or {}),
        )
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        command = [gunicorn, "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{self.port}"]
        command += ["--workers", str(workers), "--access-logfile", str(self.access_log)]
        command += ["--error-logfile", str(self.error_log), "spot.wsgi"]
        self.proc = subprocess.Popen(command, cwd=ROOT, env=environ)

    def errors(self) -> str:
        """The end of gunicorn's error log."""
        return self.error_log.read_text()[-3000:] if self.error_log.exists() else ""

    def live(self) -> bool:
        """Whether ``/health/live`` answers 200; raises if gunicorn exited."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited ({self.proc.returncode}): {self.errors()}")
        try:
            with urllib.request.urlopen(f"{self.url}/health/live", timeout=2) as response:  # noqa: S310 - 127.0.0.1
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
