"""FR-RL-001 and FR-RL-002 with a fake clock and a fixed random source (the system's edges)."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from spot.resilience import BreakerState, CircuitBreaker, CircuitOpen, RetryPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_retry_delays_double_from_100_ms_and_stop_at_30_s():
    policy = RetryPolicy()

    assert [policy.delay(n, rand=lambda: 0.0) for n in range(4)] == [0.1, 0.2, 0.4, 0.8]
    assert policy.delay(20, rand=lambda: 0.0) == 30.0
    assert policy.max_retries == 3


def test_retry_jitter_adds_at_most_ten_percent_and_never_passes_the_cap():
    policy = RetryPolicy()

    assert policy.delay(0, rand=lambda: 1.0) == pytest.approx(0.11)
    assert policy.delay(20, rand=lambda: 1.0) == 30.0


def _fail(breaker: CircuitBreaker) -> None:
    def boom() -> None:
        raise OperationalError("gone")

    with pytest.raises(OperationalError):
        breaker.call(boom)


def test_the_breaker_opens_after_five_consecutive_failures_and_refuses_calls():
    breaker = CircuitBreaker("db", clock=Clock())
    for _ in range(4):
        _fail(breaker)
    assert breaker.state is BreakerState.CLOSED

    _fail(breaker)

    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpen) as refused:
        breaker.call(lambda: "not called")
    assert refused.value.retry_after == pytest.approx(30.0)


def test_a_success_resets_the_count_of_consecutive_failures():
    breaker = CircuitBreaker("db", clock=Clock())
    for _ in range(4):
        _fail(breaker)
    breaker.call(lambda: None)
    for _ in range(4):
        _fail(breaker)

    assert breaker.state is BreakerState.CLOSED


def test_after_30_s_three_trial_calls_close_the_breaker_again():
    clock = Clock()
    breaker = CircuitBreaker("db", clock=clock)
    for _ in range(5):
        _fail(breaker)

    clock.now += 30
    assert breaker.state is BreakerState.HALF_OPEN
    for _ in range(3):
        assert breaker.call(lambda: "ok") == "ok"

    assert breaker.state is BreakerState.CLOSED


def test_a_failed_trial_call_opens_the_breaker_for_another_30_s():
    clock = Clock()
    breaker = CircuitBreaker("db", clock=clock)
    for _ in range(5):
        _fail(breaker)
    clock.now += 30

    _fail(breaker)

    assert breaker.state is BreakerState.OPEN
    clock.now += 29
    assert breaker.state is BreakerState.OPEN


def test_half_open_lets_no_more_than_three_calls_through_at_once():
    clock = Clock()
    breaker = CircuitBreaker("db", clock=clock)
    for _ in range(5):
        _fail(breaker)
    clock.now += 30
    for _ in range(3):
        breaker.before_call()

    with pytest.raises(CircuitOpen):
        breaker.before_call()


def test_errors_that_are_not_transient_do_not_count():
    breaker = CircuitBreaker("db", clock=Clock())

    def bug() -> None:
        raise ValueError("bug")

    for _ in range(10):
        with pytest.raises(ValueError):
            breaker.call(bug)

    assert breaker.state is BreakerState.CLOSED


def test_the_breaker_state_gauge_reads_1_while_open_or_half_open_and_0_once_closed():
    from prometheus_client import REGISTRY

    from spot.metrics import breaker_changed

    clock = Clock()
    breaker = CircuitBreaker("gauge-test", clock=clock, on_change=breaker_changed)

    def gauge() -> float | None:
        return REGISTRY.get_sample_value("spot_circuit_open", {"circuit": "gauge-test"})

    for _ in range(5):
        _fail(breaker)
    assert gauge() == 1
    clock.now += 30
    for _ in range(3):
        breaker.call(lambda: None)
    assert gauge() == 0
