"""A real web process for the tests of the health endpoints and of ``/metrics``: gunicorn with the
Procfile's configuration (``deploy/gunicorn.conf.py``), this test's settings and database."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.processes import Web


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


class WebServer(Web):
    """The web (``bench.processes.Web``), waited for, with what the tests read of it: requests to either
    port, its workers, its access log."""

    def __init__(self, tmp_path: Path, *, workers: int = 2, env: dict[str, str] | None = None) -> None:
        super().__init__(tmp_path, workers=workers, env=env)
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
