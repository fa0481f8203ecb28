"""``celery -A spot worker -Q match_btc`` as an operator types it: one process, solo, matching, its
port answering; a mix of match and other queues refused; a second matcher standing by quietly."""

from __future__ import annotations

import http.client
import json
import re
from decimal import Decimal

import pytest

from bench.processes import Worker
from orders.models import Order, OrderStatus
from orders.services import order_place
from spot import keys
from tests.pipeline.conftest import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PORT_LINE = re.compile(r"/metrics and /health on (?:127\.0\.0\.1:|port )(\d+)")


def _cross(market, traders, pairs: int, price: str = "30000") -> list[int]:
    """``pairs`` buys and sells at one price, placed through the intake service; returns their ids."""
    ids = []
    for n in range(pairs):
        buyer, seller = traders[n % 3], traders[3 + n % 3]
        for user, side in ((buyer, "buy"), (seller, "sell")):
            order = order_place(
                user=user, market=market, side=side, order_type="limit", quantity=Decimal("0.01"), price=price
            )
            ids.append(order.id)
    return ids


def _all_executed(ids: list[int]) -> bool:
    return Order.objects.filter(id__in=ids, status=OrderStatus.EXECUTED).count() == len(ids)


def _get(port: int, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_celery_worker_q_match_btc_as_typed_is_one_solo_process_that_matches_and_serves_its_port(
    market, traders, redis_client, matchers
):
    worker = matchers.start(typed=True)  # celery -A spot worker -Q match_btc -l info
    wait_until(lambda: redis_client.exists(keys.lease(market.code)), 60, message="the matcher's lease")

    ids = _cross(market, traders, 12)
    wait_until(lambda: _all_executed(ids), 60, message="the crossing orders to be executed")

    assert worker.children() == []  # no pool processes: one process holds the book
    log = worker.log()
    assert "match queue match_btc: solo pool, concurrency 1" in log
    assert ".> concurrency: 1 (solo)" in log  # Celery's own banner agrees
    assert "stands by" not in log and " lost" not in log  # no lease flapping
    port = int(PORT_LINE.search(log).group(1))
    status, metrics = _get(port, "/metrics")
    assert status == 200
    assert 'spot_orders_total{market="btc_usdt",outcome="executed"} 12.0' in metrics  # the takers
    status, health = _get(port, "/health")
    assert status == 200
    assert json.loads(health)["status"] == "ok"
    assert json.loads(health)["markets"]["btc_usdt"]["owner"] is True
    assert _get(port, "/")[0] == 404
    assert _get(port, "/health/ready")[0] == 404


def test_a_worker_on_a_match_queue_and_another_queue_is_refused_at_start(market, tmp_path):
    log = tmp_path / "mixed.log"
    worker = Worker("match_btc,default", {}, log_path=log, loglevel="info", typed=True)
    try:
        exit_code = worker.proc.wait(60)
    finally:
        worker.stop()

    assert exit_code == 2
    text = log.read_text()
    assert "refusing to start: -Q names match queues (match_btc) and other queues (default)" in text
    assert "ready." not in text


def test_a_second_matcher_stands_by_once_quietly_and_takes_over_when_the_owner_is_killed(
    market, traders, redis_client, matchers
):
    owner = matchers.start()
    wait_until(lambda: redis_client.exists(keys.lease(market.code)), 60, message="the first matcher's lease")
    standby = matchers.start()
    wait_until(lambda: "stands by" in standby.log(), 60, message="the second matcher to stand by")

    ids = _cross(market, traders, 12)
    wait_until(lambda: _all_executed(ids), 60, message="the crossing orders to be executed")
    tasks_before = int(redis_client.hget(keys.matcher_stats(market.code), "tasks"))
    wait_until(  # the standby keeps asking (every 2 s) while the owner drains
        lambda: (
            standby.log().count("stands by") == 1
            and "still stands by" not in standby.log()
            and (int(redis_client.hget(keys.matcher_stats(market.code), "tasks")) > tasks_before + 3)
        ),
        30,
        message="more slices",
    )

    owner.kill()
    later = _cross(market, traders, 4, price="30010")
    wait_until(lambda: _all_executed(later), 60, message="the standby to take over and match")

    log = standby.log()
    assert log.count("stands by (market btc_usdt is matched by") == 1
    assert log.count("took over market btc_usdt") == 1
    assert " lost" not in owner.log()  # the owner kept its lease until it was killed
