"""API keys over real HTTP: gunicorn as the Procfile runs it (two workers), the shipped client
(spot/client.py), real MariaDB and Redis. A bot places, lists and cancels; each refusal is checked on
the wire (the path as sent, gunicorn's raw request target); a revoke is seen by both workers at once."""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Iterator
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from orders.apikeys import api_key_create, api_key_revoke
from orders.balances import balance_deposit
from orders.models import ApiKey, Order
from spot.client import SpotClient, signed_headers
from tests.factories import MarketFactory, UserFactory
from tests.spot.conftest import WebServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ORDER = {"currency": "usdt", "coin": "btc", "trade_type": "buy", "type": "limit", "quantity": "0.5", "price": "100.00"}


@pytest.fixture
def trader(redis_client):
    MarketFactory(coin="btc", currency="usdt")
    user = UserFactory()
    balance_deposit(user=user, asset="usdt", amount=Decimal("100000"))
    return user


@pytest.fixture
def web(tmp_path, trader) -> Iterator[WebServer]:
    server = WebServer(tmp_path / "web", workers=2)
    yield server
    server.stop()


def send(web: WebServer, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, dict]:
    """One request on a fresh connection (so either worker may take it), sent exactly as given."""
    connection = http.client.HTTPConnection("127.0.0.1", web.port, timeout=30)
    try:
        connection.request(method, target, body=body or None, headers={"Content-Type": "application/json", **headers})
        response = connection.getresponse()
        payload = response.read()
        return response.status, {"body": json.loads(payload or b"{}"), **dict(response.getheaders())}
    finally:
        connection.close()


def test_a_bot_places_lists_and_cancels_with_the_shipped_client(web, trader):
    key, secret = api_key_create(user=trader, label="bot", scopes="read,trade")
    client = SpotClient(f"http://127.0.0.1:{web.port}", key.key_id, secret)

    placed = client.place("usdt", "btc", "buy", "limit", Decimal("0.5"), price=Decimal("100.00"))
    assert placed.status == 201, placed
    order_id = placed.data["id"]
    assert [o["id"] for o in client.pending(currency="usdt", coin="btc", limit=10).data["data"]] == [order_id]
    assert client.order(order_id).data["id"] == order_id
    assert client.balances().status == 200
    assert client.book("usdt", "btc").status == 200
    assert client.trades("usdt", "btc").status == 200
    canceled = client.cancel(order_id)

    assert canceled.status == 200 and canceled.json() == {
        "success": True,
        "message": "cancel requested: the order shows canceled once the matcher has applied it",
        "dataVersion": "1",
        "data": {"id": order_id, "status": "cancel_requested"},
    }
    assert Order.objects.get(id=order_id).user_id == trader.pk
    client.close()


def test_a_bot_retrying_with_its_client_order_id_gets_its_order_back_and_reads_and_cancels_it_by_that_id(web, trader):
    key, secret = api_key_create(user=trader, label="bot", scopes="read,trade")
    client = SpotClient(f"http://127.0.0.1:{web.port}", key.key_id, secret)
    stop = {"price": "100.00", "base_price": "101.00", "stop_condition": "ge", "client_order_id": "bot-7 retry#1"}

    first = client.place("usdt", "btc", "buy", "stop_limit", "0.5", **stop)
    again = client.place("usdt", "btc", "buy", "stop_limit", "0.5", **stop)

    assert (first.status, first.existing, first.message) == (201, False, None), first
    order_id = first.data["id"]
    assert (again.status, again.existing) == (200, True), again
    assert again.message == f"an order with this client_order_id already exists (order {order_id}); nothing was placed"
    assert (again.data["id"], again.data["client_order_id"], again.data["type"]) == (
        order_id,
        "bot-7 retry#1",
        "stop_limit",
    )
    assert (again.data["base_price"], again.data["stop_condition"]) == ("101", "ge")
    assert Order.objects.filter(user=trader).count() == 1
    assert client.order(client_order_id="bot-7 retry#1").data["id"] == order_id
    canceled = client.cancel(client_order_id="bot-7 retry#1")
    assert (canceled.status, canceled.data) == (200, {"id": order_id, "status": "cancel_requested"})
    client.close()


def test_a_bot_uses_every_other_route_with_the_shipped_client(web, trader):
    balance_deposit(user=trader, asset="btc", amount=Decimal("10"))
    key, secret = api_key_create(user=trader, label="bot", scopes="read,trade")
    client = SpotClient(f"http://127.0.0.1:{web.port}", key.key_id, secret)
    orders = [
        {"trade_type": "buy", "type": "limit", "quantity": "0.5", "price": "90.00", "ioc": 0},
        {"trade_type": "sell", "type": "stop_market", "quantity": "0.5", "base_price": "80.00", "stop_condition": "le"},
    ]

    batch = client.place_batch("usdt", "btc", orders)
    assert (batch.status, batch.existing, [o["type"] for o in batch.data]) == (201, False, ["limit", "stop_market"])
    limit_id, stop_id = (o["id"] for o in batch.data)
    history = client.history("usdt", "all", coin="btc", limit=10)
    assert [o["id"] for o in history.data["data"]] == [stop_id, limit_id] and history.data["total"] == 2
    assert client.transactions(currency="usdt", coin="btc").data["data"] == []
    assert [m["coin"] for m in client.markets().data] == ["btc"]
    by_type = client.cancel_by_type("stop_market", currency="usdt", coin="btc")
    assert (by_type.status, by_type.data) == (200, {"count": 1, "ids": [stop_id]})
    every = client.cancel_all(currency="usdt")
    assert every.status == 200 and limit_id in every.data["ids"], every
    client.close()


def test_the_signature_covers_the_path_as_sent_percent_encoded(web, trader):
    key, secret = api_key_create(user=trader, scopes="read")
    client = SpotClient(f"http://127.0.0.1:{web.port}", key.key_id, secret)

    # %5F is "_": Django routes the decoded path, the signature covers the bytes the client sent.
    assert client.request("GET", "/orders/usdt/partially%5Ffilled").status == 200
    headers = signed_headers(key.key_id, secret, "GET", "/api/v1/orders/usdt/partially_filled")
    assert send(web, "GET", "/api/v1/orders/usdt/partially%5Ffilled", headers)[0] == 401


def test_each_refusal_says_which_check_failed(web, trader):
    key, secret = api_key_create(user=trader, scopes="read,trade", allowed_ips=["127.0.0.1"])
    body = json.dumps(ORDER).encode()
    now = int(time.time() * 1000)

    def message(method, target, headers, sent=body):
        status, answer = send(web, method, target, headers, sent)
        assert status == 401, (status, answer)
        return answer["body"]["message"]

    signed = signed_headers(key.key_id, secret, "POST", "/api/v1/orders", "", body)
    assert message("POST", "/api/v1/orders", signed, body.replace(b"0.5", b"9.5")).startswith("bad signature")
    signed = signed_headers(key.key_id, secret, "GET", "/api/v1/orders/pending", "limit=1")
    assert message("GET", "/api/v1/orders/pending?limit=2", signed, b"").startswith("bad signature")
    assert message("GET", "/api/v1/balances?limit=1", signed, b"").startswith("bad signature")
    wrong = signed_headers(key.key_id, secret.swapcase(), "POST", "/api/v1/orders", "", body)
    assert message("POST", "/api/v1/orders", wrong).startswith("bad signature")
    old = signed_headers(key.key_id, secret, "POST", "/api/v1/orders", "", body, now_ms=now - 60_000)
    assert message("POST", "/api/v1/orders", old).startswith("timestamp too old")
    future = signed_headers(key.key_id, secret, "POST", "/api/v1/orders", "", body, now_ms=now + 60_000)
    assert message("POST", "/api/v1/orders", future).startswith("timestamp in the future")
    once = signed_headers(key.key_id, secret, "POST", "/api/v1/orders", "", body)
    assert send(web, "POST", "/api/v1/orders", once, body)[0] == 201
    assert message("POST", "/api/v1/orders", once) == "replayed request: this signature was already used"
    assert Order.objects.count() == 1

    status, answer = send(web, "GET", "/api/v1/balances", {})
    assert status == 401 and answer["WWW-Authenticate"].startswith("X-API-Signature")

    elsewhere, other_secret = api_key_create(user=trader, scopes="read", allowed_ips=["10.0.0.0/8"])
    refused = signed_headers(elsewhere.key_id, other_secret, "GET", "/api/v1/balances")
    assert (
        message("GET", "/api/v1/balances", refused, b"") == "this API key does not allow requests from this IP address"
    )


def test_a_revoked_key_is_refused_at_once_by_both_web_workers(web, trader):
    key, secret = api_key_create(user=trader, scopes="read")

    def balances() -> int:
        return send(web, "GET", "/api/v1/balances", signed_headers(key.key_id, secret, "GET", "/api/v1/balances"))[0]

    def pids(status: int) -> set[str]:
        pattern = re.compile(rf'"GET /api/v1/balances HTTP/1\.1" {status} .* <?(\d+)>? \[')
        return {m[1] for line in web.access_lines() if (m := pattern.search(line))}

    workers = {str(pid) for pid in web.worker_pids()}
    deadline = time.monotonic() + 30
    while pids(200) != workers and time.monotonic() < deadline:  # fresh connections: either worker answers
        assert balances() == 200
    assert pids(200) == workers, "both workers served the key (and cached it)"

    api_key_revoke(key_id=key.key_id)

    answers = []
    while pids(401) != workers and time.monotonic() < deadline + 30:
        answers.append(balances())
    assert pids(401) == workers and set(answers) == {401}


def test_demo_load_trades_over_http_with_fresh_keys_and_revokes_them_when_it_stops(web, trader):
    balance_deposit(user=trader, asset="btc", amount=Decimal("10"))
    out, err = StringIO(), StringIO()

    call_command(
        "demo_load",
        "--rate",
        "20",
        "--seconds",
        "2",
        "--seed",
        "7",
        "--url",
        f"http://127.0.0.1:{web.port}",
        stdout=out,
        stderr=err,
    )

    placed = Order.objects.filter(user=trader).count()
    assert placed > 10, (out.getvalue(), err.getvalue())
    (key,) = ApiKey.objects.filter(user=trader)
    assert key.label == "demo_load" and key.scopes == "trade" and key.revoked_at is not None
    assert "revoked its 1 API keys" in out.getvalue()
    assert {line.split('" ')[1][:3] for line in web.access_lines() if "/api/v1/orders" in line} <= {"200", "201", "409"}
