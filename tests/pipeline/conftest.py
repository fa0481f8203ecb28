"""Fixtures for the pipeline (the funded ``market``, ``traders`` and the in-process ``engine`` are in
tests/conftest.py).

Pipeline tests use ``transaction=True``: the matcher writes through its own connection (and, in the
process tests, its own process), so the data it reads must be committed.
"""

from __future__ import annotations

import pytest

from bench.processes import Worker
from matching.worker import registry


@pytest.fixture
def matchers(tmp_path, redis_client):
    """Start matcher workers with ``matchers.start()``; all are stopped at the end of the test."""
    import redis as redis_lib
    from django.conf import settings

    redis_lib.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()  # no stale messages from other tests
    started: list[Worker] = []

    class Starter:
        def start(self, queue: str = "match_btc", env: dict[str, str] | None = None, *, typed: bool = False) -> Worker:
            n = len(started)
            log = tmp_path / f"matcher-{n}.log"
            worker = Worker(queue, env or {}, log_path=log, loglevel="info", name=f"{queue}-{n}", typed=typed)
            started.append(worker)
            return worker

    yield Starter()
    for process in started:
        process.stop()
    registry.forget_engines()


def wait_until(predicate, timeout: float, interval: float = 0.1, message: str = "condition") -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


def stream_settled(redis_client, market) -> bool:
    from matching.queue import RedisStreamOrderQueue

    return RedisStreamOrderQueue(redis_client, market.code).settled()
