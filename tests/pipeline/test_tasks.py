"""The matcher's Celery plumbing: routing, the watchdog's kicks, chains kept per process, the heartbeat."""

from __future__ import annotations

import base64
import json
import time

import pytest
import redis as redis_lib
from django.conf import settings

from matching.worker import registry, tasks
from spot import keys

pytestmark = pytest.mark.django_db

PRIVATE = "match_btc.chain.test@host.1"


@pytest.fixture(autouse=True)
def _no_chains():
    """Chains live in this process: none from one test is left to the next."""
    yield
    registry.forget_engines()


@pytest.fixture
def broker():
    client = redis_lib.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete("match_btc", PRIVATE)
    yield client
    client.delete("match_btc", PRIVATE)
    client.close()


@pytest.fixture
def private_queue():
    """This test process acts as a matcher worker with a private queue."""
    registry.set_private_queue(PRIVATE)
    yield PRIVATE
    registry.set_private_queue(None)


def _messages(broker, queue: str) -> list[dict]:
    """The queue's Celery messages, newest first."""
    return [json.loads(raw) for raw in broker.lrange(queue, 0, -1)]


def _args(message: dict) -> list:
    return json.loads(base64.b64decode(message["body"]))[0]


def test_markets_route_to_the_queue_of_their_coin():
    assert registry.queue_for("btc_usdt") == "match_btc"
    assert registry.queue_for("eth_usdt") == "match_eth"


def test_the_watchdog_kicks_a_market_without_a_heartbeat_once_per_kick_ttl(market, redis_client, broker):
    assert tasks.ensure_matchers() == 1
    assert tasks.ensure_matchers() == 0  # the first kick may still be waiting on the queue

    (message,) = _messages(broker, "match_btc")
    assert message["headers"]["task"] == "matching.drain"
    assert _args(message) == [market.code]  # a kick: no chain
    assert message["headers"]["expires"] is not None  # it does not pile up on a queue nobody reads


def test_the_watchdog_leaves_a_market_alone_while_its_owner_drains_it(market, redis_client, broker):
    registry.record_heartbeat(market.code)

    assert tasks.ensure_matchers() == 0
    assert registry.heartbeat_age(market.code) < 1


def test_the_watchdog_kicks_a_market_whose_heartbeat_is_older_than_five_seconds(market, redis_client, broker):
    redis_client.set(keys.heartbeat(market.code), f"{time.time() - 6:.6f}", ex=keys.HEARTBEAT_TTL_S)

    assert 6 <= registry.heartbeat_age(market.code) < 7
    assert tasks.ensure_matchers() == 1


def test_a_market_never_drained_has_no_heartbeat_age(market, redis_client):
    assert registry.heartbeat_age(market.code) is None


def test_a_drain_of_a_chain_this_process_does_not_run_stops_without_touching_the_market(market, redis_client):
    registry.chain_start(market.code)

    assert tasks.drain.run(market.code, "a-chain-of-another-process", 0) == 0
    assert not redis_client.exists(keys.lease(market.code))


def test_a_kick_starts_this_process_chain_on_its_private_queue(market, redis_client, broker, private_queue):
    assert tasks.drain.run(market.code) == 0

    (message,) = _messages(broker, private_queue)
    code, chain, turn = _args(message)
    assert (code, turn) == (market.code, 0)
    assert registry.chain_is_current(market.code, chain)
    assert _messages(broker, "match_btc") == []  # nothing for another process to take


def test_a_kick_is_ignored_while_this_process_chain_runs_and_adopted_once_it_stalled(
    market, redis_client, broker, private_queue, monkeypatch
):
    tasks.drain.run(market.code)
    _, first, _ = _args(_messages(broker, private_queue)[0])

    tasks.drain.run(market.code)  # the chain ran just now: one chain per market per process
    assert len(_messages(broker, private_queue)) == 1

    later = time.monotonic() + tasks.KICK_AFTER_S + 1
    monkeypatch.setattr(registry.time, "monotonic", lambda: later)
    tasks.drain.run(market.code)
    _, second, _ = _args(_messages(broker, private_queue)[0])
    assert second != first
    assert registry.chain_is_current(market.code, second)
    assert not registry.chain_is_current(market.code, first)  # the stalled chain's messages are dropped


@pytest.mark.django_db(transaction=True)  # the engine writes through its own connection
def test_the_owner_records_its_heartbeat_and_continues_its_chain_on_its_private_queue(
    market, redis_client, broker, private_queue
):
    chain = registry.chain_start(market.code)

    assert tasks.drain.run(market.code, chain, 0) == 0  # nothing queued

    assert registry.heartbeat_age(market.code) < 5
    assert [_args(m) for m in _messages(broker, private_queue)] == [[market.code, chain, 1]]
    health = registry.chains_health()[market.code]
    assert health["owner"] is True and health["role"] == "owner" and health["error"] is None


@pytest.mark.django_db(transaction=True)  # the engine writes through its own connection
def test_a_duplicate_of_a_chain_message_whose_turn_ran_is_dropped_so_the_chain_stays_one_message(
    market, redis_client, broker, private_queue
):
    redis_client.set(keys.lease(market.code), "other-host:1:abcd", px=60_000)  # a standby: no DB writes
    chain = registry.chain_start(market.code)
    tasks.drain.run(market.code, chain, 0)

    assert tasks.drain.run(market.code, chain, 0) == 0  # the same message again (restored by the broker)

    assert [_args(m) for m in _messages(broker, private_queue)] == [[market.code, chain, 1]]  # one next turn
    assert registry.chain_is_current(market.code, chain, 1)


@pytest.mark.django_db(transaction=True)  # the engine writes through its own connection
def test_a_standby_neither_records_the_heartbeat_nor_warns_twice(market, redis_client, broker, private_queue, caplog):
    redis_client.set(keys.lease(market.code), "other-host:1:abcd", px=60_000)
    chain = registry.chain_start(market.code)

    with caplog.at_level("DEBUG", logger="matching.worker.tasks"):
        assert tasks.drain.run(market.code, chain, 0) == 0
        assert tasks.drain.run(market.code, chain, 1) == 0

    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "stands by (market btc_usdt is matched by other-host:1:abcd)" in warnings[0]
    assert registry.heartbeat_age(market.code) is None
    assert len(_messages(broker, private_queue)) == 2  # it asks again later, on its own chain
    assert registry.chains_health()[market.code]["role"] == "standby"


@pytest.mark.django_db(transaction=True)  # the engine writes through its own connection
def test_a_standby_says_once_that_it_took_over_when_the_lease_is_free(
    market, redis_client, broker, private_queue, caplog
):
    redis_client.set(keys.lease(market.code), "other-host:1:abcd", px=60_000)
    chain = registry.chain_start(market.code)
    tasks.drain.run(market.code, chain, 0)
    redis_client.delete(keys.lease(market.code))  # the owner's lease expired

    with caplog.at_level("INFO", logger="matching.worker.tasks"):
        tasks.drain.run(market.code, chain, 1)
        tasks.drain.run(market.code, chain, 2)

    took_over = [r.getMessage() for r in caplog.records if "took over" in r.getMessage()]
    assert len(took_over) == 1 and r"market btc_usdt" in took_over[0]
    assert registry.heartbeat_age(market.code) is not None


def test_drain_retries_without_end_and_sends_no_events_to_flower():
    assert tasks.drain.max_retries is None
    assert tasks.drain.send_events is False
    assert tasks.drain.autoretry_for == tasks.ensure_matchers.autoretry_for  # SpotTask's
    assert "OperationalError" in {exc.__name__ for exc in tasks.drain.autoretry_for}
