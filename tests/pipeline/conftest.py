"""Fixtures for the pipeline: a funded market on the real test database and Redis.

Pipeline tests use ``transaction=True``: the matcher writes through its own connection (and, in the
process tests, its own process), so the data it reads must be committed.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from matching import service
from orders.models import Market
from orders.services import balance_deposit
from tests.factories import MarketFactory, UserFactory


@pytest.fixture
def market(redis_client) -> Market:
    return MarketFactory(coin="btc", currency="usdt")


@pytest.fixture
def traders(market) -> list:
    users = [UserFactory() for _ in range(6)]
    for user in users:
        balance_deposit(user=user, asset="usdt", amount=Decimal("1000000"))
        balance_deposit(user=user, asset="btc", amount=Decimal("100"))
    return users


@pytest.fixture
def engine(market, traders) -> Iterator:
    """The market's engine in this process, started (lease, epoch, book rebuilt)."""
    engine = service.engine_for(market.code)
    engine.start()
    yield engine
    service.forget_engines()


class MatcherProcess:
    """A real ``celery -A spot worker -Q match_btc -P solo`` process on the test database."""

    def __init__(self, queue: str, log_path: str) -> None:
        import os
        import subprocess
        import sys
        from pathlib import Path

        from django.conf import settings

        root = Path(__file__).resolve().parents[2]
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="settings.test",
            MYSQL_DATABASE=settings.DATABASES["default"]["NAME"],  # the test database
            PYTHONUNBUFFERED="1",
        )
        self.log_path = log_path
        self._log = open(log_path, "ab")
        celery = str(Path(sys.executable).parent / "celery")
        self.proc = subprocess.Popen(
            [
                celery,
                "-A",
                "spot",
                "worker",
                "-Q",
                queue,
                "-P",
                "solo",
                "-c",
                "1",
                "-l",
                "info",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"{queue}-{os.getpid()}-{id(self)}@%h",
            ],
            cwd=root,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        """kill -9: no shutdown handler runs, the lease stays until it expires."""
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except Exception:  # noqa: BLE001 - a worker that will not stop is killed
                self.kill()
        self._log.close()

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()


@pytest.fixture
def matchers(tmp_path, redis_client):
    """Start matcher workers with ``matchers.start()``; all are stopped at the end of the test."""
    import redis as redis_lib
    from django.conf import settings

    redis_lib.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()  # no stale messages from other tests
    started: list[MatcherProcess] = []

    class Starter:
        def start(self, queue: str = "match_btc") -> MatcherProcess:
            process = MatcherProcess(queue, str(tmp_path / f"matcher-{len(started)}.log"))
            started.append(process)
            return process

    yield Starter()
    for process in started:
        process.stop()
    service.forget_engines()


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
