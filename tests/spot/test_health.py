"""Health checks (FR-RL-004): ``/health/live`` answers while the process does; ``/health/ready`` names
each dependency's state and answers 503 when the DB, Redis or a market's matcher is not there."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings

from spot import health, keys
from tests.pipeline.proxy import CuttableProxy

pytestmark = pytest.mark.django_db(transaction=True)  # the probe's own DB connection sees committed rows


def _beat(client: redis.Redis, market: str, age_s: float = 0.0) -> None:
    """What a matcher writes after each drain: the unix time, 60 s TTL."""
    client.set(keys.heartbeat(market), f"{time.time() - age_s:.6f}", ex=60)


@pytest.fixture(autouse=True)
def _fresh_probe() -> Iterator[None]:
    yield
    health._drop_probe_database()  # the next test may run against another database state


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A port that accepts connections and never answers: a Redis that hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    listener.close()


def test_live_answers_ok_for_get_and_head_and_refuses_other_methods(client):
    got = client.get("/health/live")
    head = client.head("/health/live")
    posted = client.post("/health/live")

    assert got.status_code == 200 and got.json() == {"status": "ok"}
    assert head.status_code == 200 and head.content == b""
    assert posted.status_code == 405
    assert "no-cache" in got["Cache-Control"]


def test_ready_when_the_db_redis_and_every_matcher_answer(client, market, redis_client):
    _beat(redis_client, market.code, age_s=2.0)

    response = client.get("/health/ready")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ready"
    checks = body["checks"]
    assert checks["database"]["status"] == "ok" and checks["database"]["detail"] is None
    assert checks["redis"]["status"] == "ok"
    assert checks["database"]["latency_ms"] >= 0 and checks["redis"]["latency_ms"] >= 0
    assert checks["matchers"][market.code]["status"] == "ok"
    assert 2.0 <= checks["matchers"][market.code]["heartbeat_age_s"] < 30


def test_head_on_ready_answers_the_status_without_a_body(client, market, redis_client):
    _beat(redis_client, market.code)

    assert client.head("/health/ready").status_code == 200
    redis_client.delete(keys.heartbeat(market.code))
    head = client.head("/health/ready")
    assert head.status_code == 503 and head.content == b""


def test_a_market_without_a_heartbeat_is_missing_and_the_web_is_not_ready(client, market):
    response = client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["status"] == "not_ready"
    assert response.json()["checks"]["matchers"] == {market.code: {"status": "missing", "heartbeat_age_s": None}}


def test_a_heartbeat_older_than_30_s_is_stale(client, market, redis_client):
    _beat(redis_client, market.code, age_s=settings.MATCHER_HEARTBEAT_STALE_S + 5)

    response = client.get("/health/ready")

    assert response.status_code == 503
    entry = response.json()["checks"]["matchers"][market.code]
    assert entry["status"] == "stale" and entry["heartbeat_age_s"] > 30


def test_only_enabled_markets_need_a_matcher(client, market, redis_client):
    from tests.factories import MarketFactory

    MarketFactory(coin="eth", currency="usdt", enabled=False)
    _beat(redis_client, market.code)

    response = client.get("/health/ready")

    assert response.status_code == 200
    assert set(response.json()["checks"]["matchers"]) == {market.code}


def test_without_markets_there_is_no_matcher_to_wait_for(client, redis_client):
    response = client.get("/health/ready")

    assert response.status_code == 200
    assert response.json()["checks"]["matchers"] == {}


def test_an_unreachable_redis_is_named_and_the_matchers_are_unknown(client, market, settings):
    settings.MATCHING_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1

    response = client.get("/health/ready")

    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["status"] == "ok"
    assert checks["redis"]["status"] == "fail"
    assert "ConnectionError" in checks["redis"]["detail"]
    assert checks["matchers"] == {market.code: {"status": "unknown", "heartbeat_age_s": None}}
    assert "Traceback" not in response.content.decode()


def test_a_redis_that_never_answers_fails_the_check_at_its_timeout_instead_of_hanging(
    client, market, settings, silent_redis
):
    settings.MATCHING_REDIS_URL = silent_redis
    settings.HEALTH_CHECK_TIMEOUT_S = 0.2
    done: list[int] = []
    # Run in a thread with a generous join: a probe without a read timeout would never return.
    thread = threading.Thread(target=lambda: done.append(client.get("/health/ready").status_code), daemon=True)
    thread.start()
    thread.join(60)

    assert done == [503]


def test_a_broken_kept_db_connection_is_replaced_once_rather_than_reported(client, market, redis_client):
    _beat(redis_client, market.code)
    assert client.get("/health/ready").status_code == 200
    health._local.database.connection.close()  # as if the server had closed an idle connection

    response = client.get("/health/ready")

    assert response.status_code == 200, response.content


def test_a_database_that_never_answers_fails_the_check_at_its_timeout_instead_of_hanging(monkeypatch, settings):
    from django.db import connections

    listener = socket.socket()  # accepts connections, never sends the server's greeting
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    health._drop_probe_database()
    monkeypatch.setitem(connections["default"].settings_dict, "PORT", listener.getsockname()[1])
    outcome: list[tuple[dict, object]] = []
    try:
        thread = threading.Thread(target=lambda: outcome.append(health.check_database()), daemon=True)
        thread.start()
        thread.join(60)
    finally:
        listener.close()

    assert len(outcome) == 1
    report, markets = outcome[0]
    assert report["status"] == "fail" and "OperationalError" in report["detail"]
    assert markets is None


@pytest.mark.slow
def test_a_real_web_turns_not_ready_while_the_db_or_redis_is_cut_and_ready_when_it_returns(
    web_server, market, redis_client
):
    db_proxy = CuttableProxy(int(settings.DATABASES["default"]["PORT"] or 3306))
    redis_proxy = CuttableProxy(6379)
    redis_db = redis_client.connection_pool.connection_kwargs["db"]
    web = web_server(
        workers=1,
        env={"MYSQL_PORT": str(db_proxy.port), "TEST_REDIS_URL": f"redis://127.0.0.1:{redis_proxy.port}/{redis_db}"},
    )
    try:
        _beat(redis_client, market.code)
        assert web.get("/health/ready").status == 200

        redis_proxy.cut()
        cut_redis = web.get("/health/ready")
        assert cut_redis.status == 503
        assert cut_redis.json()["checks"]["redis"]["status"] == "fail"
        assert cut_redis.json()["checks"]["database"]["status"] == "ok"
        redis_proxy.restore()
        web.wait_until(lambda: web.get("/health/ready").status == 200, "ready again after Redis returned")

        db_proxy.cut()
        cut_db = web.get("/health/ready")
        assert cut_db.status == 503
        checks = cut_db.json()["checks"]
        assert checks["database"]["status"] == "fail"
        assert checks["matchers"]["status"] == "unknown"
        assert "cannot be listed" in checks["matchers"]["detail"]
        assert web.get("/health/live").status == 200  # liveness does not depend on the DB
        db_proxy.restore()
        web.wait_until(lambda: web.get("/health/ready").status == 200, "ready again after the DB returned")
    finally:
        db_proxy.close()
        redis_proxy.close()
