"""The one retry policy (FR-RL-002) and the one circuit breaker (FR-RL-001) of the project.

Both take their clock and random source as arguments, so tests drive them without sleeping.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

import MySQLdb
import redis
from django.conf import settings
from django.db import InterfaceError, OperationalError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# What is worth retrying: the database or Redis went away or is busy. Everything else is a bug or bad
# input, and retrying it only delays the dead letter queue.
# The raw MySQLdb errors too: the matcher's store has its own connection, outside Django's wrapping,
# and SpotTask's autoretry_for is this tuple.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    MySQLdb.OperationalError,
    MySQLdb.InterfaceError,
    redis.ConnectionError,
    redis.TimeoutError,
    redis.BusyLoadingError,
    ConnectionError,
    TimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a passing fault of the DB or Redis (also the raw MySQLdb errors)."""
    return isinstance(exc, TRANSIENT_ERRORS)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: ``base * 2**attempt`` capped at ``cap``, plus up to ``jitter`` of it.

    FR-RL-002 defaults: 3 retries, 100 ms base, x2 each attempt, 30 s cap, jitter up to 10 %.
    """

    max_retries: int = 3
    base: float = 0.1
    cap: float = 30.0
    jitter: float = 0.1

    @classmethod
    def from_settings(cls) -> RetryPolicy:
        return cls(settings.RETRY_MAX_RETRIES, settings.RETRY_BASE_S, settings.RETRY_CAP_S, settings.RETRY_JITTER)

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``attempt`` (0 for the first retry)."""
        backoff = min(self.cap, self.base * (2**attempt))
        return min(self.cap, backoff * (1 + self.jitter * rand()))


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpen(Exception):
    """The breaker is open: the protected resource is not called. ``retry_after`` is in seconds."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"circuit {name!r} is open; next probe in {retry_after:.1f} s")
        self.retry_after = retry_after


@dataclass
class CircuitBreaker:
    """FR-RL-001: opens after ``threshold`` consecutive failures, lets ``half_open_calls`` trial calls
    through after ``reset_after`` seconds, and closes again when they all succeed.

    Use ``before_call()`` / ``record_success()`` / ``record_failure()`` around the protected call, or
    ``call(fn)``. Thread-safe.
    """

    name: str
    threshold: int = 5
    reset_after: float = 30.0
    half_open_calls: int = 3
    clock: Callable[[], float] = time.monotonic
    on_change: Callable[[str, BreakerState], None] | None = None
    _state: BreakerState = field(default=BreakerState.CLOSED, init=False)
    _failures: int = field(default=0, init=False)
    _opened_at: float = field(default=0.0, init=False)
    _trials_left: int = field(default=0, init=False)
    _trial_successes: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        # FR-OB-001: the breaker's state has a sample from its creation (0, closed), not only from
        # its first change, so an alert on it and a dashboard see the breaker before it ever opens.
        if self.on_change is not None:
            self.on_change(self.name, self._state)

    @classmethod
    def from_settings(cls, name: str, **kwargs: object) -> CircuitBreaker:
        return cls(
            name,
            settings.BREAKER_FAILURE_THRESHOLD,
            settings.BREAKER_RESET_S,
            settings.BREAKER_HALF_OPEN_CALLS,
            **kwargs,  # type: ignore[arg-type]
        )

    @property
    def state(self) -> BreakerState:
        with self._lock:
            self._maybe_half_open()
            return self._state

    def before_call(self) -> None:
        """Raises ``CircuitOpen`` when the call must not be made now."""
        with self._lock:
            self._maybe_half_open()
            if self._state is BreakerState.OPEN:
                raise CircuitOpen(self.name, self._opened_at + self.reset_after - self.clock())
            if self._state is BreakerState.HALF_OPEN:
                if self._trials_left <= 0:
                    raise CircuitOpen(self.name, 0.1)
                self._trials_left -= 1

    def record_success(self) -> None:
        with self._lock:
            if self._state is BreakerState.HALF_OPEN:
                self._trial_successes += 1
                if self._trial_successes >= self.half_open_calls:
                    self._set(BreakerState.CLOSED)
            elif self._state is BreakerState.CLOSED:
                self._failures = 0

    def record_failure(self) -> None:
        with self._lock:
            if self._state is BreakerState.HALF_OPEN:
                self._open()
                return
            self._failures += 1
            if self._state is BreakerState.CLOSED and self._failures >= self.threshold:
                self._open()

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` through the breaker; transient failures count, other exceptions do not."""
        self.before_call()
        try:
            result = fn()
        except BaseException as exc:
            if is_transient(exc):
                self.record_failure()
            raise
        self.record_success()
        return result

    def _open(self) -> None:
        self._opened_at = self.clock()
        self._set(BreakerState.OPEN)

    def _maybe_half_open(self) -> None:
        if self._state is BreakerState.OPEN and self.clock() - self._opened_at >= self.reset_after:
            self._trials_left = self.half_open_calls
            self._trial_successes = 0
            self._set(BreakerState.HALF_OPEN)

    def _set(self, state: BreakerState) -> None:
        if state is self._state:
            return
        logger.warning("circuit %s: %s -> %s", self.name, self._state, state)
        self._state = state
        self._failures = 0
        if self.on_change is not None:
            self.on_change(self.name, state)
