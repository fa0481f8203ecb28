"""A real web process for the tests of the health endpoints and of ``/metrics``: gunicorn with the
Procfile's configuration (``deploy/gunicorn.conf.py``), this test's settings and database."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


class WebServer:
    """``gunicorn -c deploy/gunicorn.conf.py`` on a free port of 127.0.0.1 with ``workers`` workers."""

    def __init__(self, tmp_path: Path, *, workers: int = 2, env: dict[str, str] | None = None) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.metrics_port = free_port()  # deploy/gunicorn.conf.py adds the listener; /metrics only there
        self.metrics_dir = tmp_path / "prometheus-web"
        self.access_log = tmp_path / "access.log"
        self.error_log = tmp_path / "error.log"
        environ = dict(os.environ)
        environ.update(
            DJANGO_SETTINGS_MODULE=settings.SETTINGS_MODULE,
            MYSQL_DATABASE=settings.DATABASES["default"]["NAME"],  # the test database
            PROMETHEUS_MULTIPROC_DIR=str(self.metrics_dir),
            PYTHONUNBUFFERED="1",
            WEB_METRICS_BIND=f"127.0.0.1:{self.metrics_port}",
            **(env or {}),
        )
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        command = [gunicorn, "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{self.port}"]
        command += ["--workers", str(workers), "--access-logfile", str(self.access_log)]
        command += ["--error-logfile", str(self.error_log), "spot.wsgi"]
        self.proc = subprocess.Popen(command, cwd=ROOT, env=environ)
        self.wait_until(lambda: self.get("/health/live").status == 200, "the web to answer")
        self.startup_probes = 1  # the request above that answered (refused connections never reached Django)

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, port: int | None = None
    ) -> Response:
        connection = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=30)
        try:
            connection.request(method, path, headers=headers or {})
            response = connection.getresponse()
            return Response(response.status, dict(response.getheaders()), response.read())
        finally:
            connection.close()

    def get(self, path: str, headers: dict[str, str] | None = None, port: int | None = None) -> Response:
        return self.request("GET", path, headers, port)

    def wait_until(self, predicate: Any, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({self.proc.returncode}) waiting for {what}: {self.errors()}")
            try:
                if predicate():
                    return
            except OSError:
                pass  # not listening yet, or a worker being replaced
            time.sleep(0.05)
        raise RuntimeError(f"timed out waiting for {what}: {self.errors()}")

    def worker_pids(self) -> set[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return {int(pid) for pid in children}

    def access_lines(self) -> list[str]:
        return self.access_log.read_text().splitlines() if self.access_log.exists() else []

    def errors(self) -> str:
        return self.error_log.read_text()[-3000:] if self.error_log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def web_server(tmp_path) -> Iterator[Any]:
    """Starts web processes: ``web_server(workers=2, env={...})``; all stopped after the test."""
    started: list[WebServer] = []

    def start(**kwargs: Any) -> WebServer:
        server = WebServer(tmp_path / f"web{len(started)}", **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
