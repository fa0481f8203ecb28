"""Redis cut for the web: gunicorn (as the Procfile runs it) reaches Redis only through the test's proxy.
While it is cut, /health/ready answers 503 naming Redis, orders signed with an API key are still
accepted (the key is read from the DB; the order is in the DB, funds held) and nothing answers 5xx
other than the readiness contract; when Redis returns, readiness turns 200 and the sweeper (beat +
the default worker) pushes the orders that missed their stream.

(Redis cut for the matcher: tests/pipeline/test_processes.py, the test named
``test_while_redis_is_unreachable_for_the_matcher_...``.)"""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from bench.processes import free_port
from orders import invariants
from orders.apikeys import api_key_create
from orders.models import Order, OrderStatus
from spot import keys
from spot.client import SpotClient
from tests.faults.conftest import assert_end_state, stream_settled, wait_until
from tests.pipeline.proxy import CuttableProxy

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


class Http:
    """Readiness without credentials; orders signed with each trader's API key (spot/client.py)."""

    def __init__(self, port: int, traders) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.clients = {}
        for trader in traders:
            key, secret = api_key_create(user=trader, label="redis cut", scopes="read,trade")
            self.clients[trader.pk] = SpotClient(self.base, key.key_id, secret, timeout=15)

    def place(self, order: dict, user) -> int:
        try:
            return self.clients[user.pk].request("POST", "/orders", json=order).status
        except OSError:
            return 0

    def ready(self) -> tuple[int, dict]:
        request = urllib.request.Request(self.base + "/health/ready")  # noqa: S310 - http://127.0.0.1 only
        try:
            with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")
        except OSError:
            return 0, {}


def _pairs(market, traders, start: int, count: int) -> list[dict]:
    """``count`` crossing pairs at distinct prices (each pair trades with itself)."""
    orders = []
    for n in range(start, start + count):
        price = f"{30000 + n}.00"
        for side in ("sell", "buy"):
            orders.append(
                {
                    "currency": market.currency,
                    "coin": market.coin,
                    "trade_type": side,
                    "type": "limit",
                    "price": price,
                    "quantity": "0.01",
                }
            )
    return orders


def test_with_redis_cut_for_the_web_readiness_fails_orders_are_kept_and_pushed_when_redis_returns(
    market, traders, redis_client, matchers, processes, tmp_path
):
    totals = invariants.asset_totals(["btc", "usdt"])
    url = settings.MATCHING_REDIS_URL
    proxy = CuttableProxy(int(url.rsplit(":", 1)[1].split("/")[0]))
    through_proxy = f"redis://127.0.0.1:{proxy.port}/{url.rsplit('/', 1)[1]}"
    port = free_port()
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    web_env = {"TEST_REDIS_URL": through_proxy, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    web = processes.start(
        [gunicorn, "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "--workers", "2", "spot.wsgi"],
        "web",
        web_env,
    )
    celery = str(Path(sys.executable).parent / "celery")
    matchers.start()
    processes.default_worker()
    processes.start([celery, "-A", "spot", "beat", "-l", "info", "-s", str(tmp_path / "beat-schedule")], "beat")
    http = Http(port, traders)
    try:
        wait_until(lambda: http.ready()[0] == 200, 60, message="the web to be ready (DB, Redis, a fresh matcher)")
        for n, order in enumerate(_pairs(market, traders, 0, 10)):
            assert http.place(order, traders[n % 2]) == 201
        wait_until(lambda: stream_settled(redis_client, market), 30, message="the first orders to match")

        proxy.cut()
        cut_at = time.monotonic()
        wait_until(lambda: http.ready()[0] == 503, 30, message="readiness to fail")
        failed_after = time.monotonic() - cut_at
        status, body = http.ready()
        assert status == 503 and body["status"] == "not_ready"
        assert body["checks"]["redis"]["status"] == "fail" and body["checks"]["database"]["status"] == "ok"
        answers = [http.place(o, traders[n % 2]) for n, o in enumerate(_pairs(market, traders, 10, 5))]
        assert all(a in (201, 503) for a in answers), answers  # accepted, or refused cleanly; never a 500
        accepted_during_cut = answers.count(201)
        assert accepted_during_cut > 0  # the order is in the DB with its funds held; the sweeper pushes it

        proxy.restore()
        back_at = time.monotonic()
        wait_until(lambda: http.ready()[0] == 200, 30, message="readiness to return")
        ready_after = time.monotonic() - back_at
        wait_until(
            lambda: not Order.objects.filter(status=OrderStatus.NEW).exists(), 60, message="the swept orders to match"
        )
        wait_until(lambda: stream_settled(redis_client, market), 30, message="the stream to settle")
        matched_after = time.monotonic() - back_at
    finally:
        proxy.close()

    statuses = re.findall(r'HTTP/1\.[01]" (\d{3}) ', web.log())  # the access log: every request answered
    assert statuses and not [s for s in statuses if s.startswith("5") and s != "503"]
    entries = redis_client.xrange(keys.stream(market.code))
    commands = [fields[b"c"].decode() for _, fields in entries]
    assert len(commands) == Order.objects.count()  # one entry per order: the sweeper pushed each once
    assert_end_state(market, commands, totals)
    print(
        f"readiness 503 {failed_after:.1f} s after the cut, 200 {ready_after:.1f} s after Redis returned; "
        f"{accepted_during_cut} orders accepted during the cut matched {matched_after:.1f} s after it returned"
    )
