"""The rate limits hold across gunicorn workers: real gunicorn with 2 workers (``WebServer``), requests
sent concurrently so that both workers answer some, and the total let through equals the limit.

Rates are per hour, so no allowance comes back while a test runs.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.test import Client

from orders.apikeys import api_key_create
from orders.balances import balance_deposit
from spot.client import SpotClient, signed_headers
from tests.factories import MarketFactory, UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LIMITS_ON = {
    "RATE_LIMITS_ENABLED": "true",
    "RATE_LIMIT_ANON": "10/h",
    "RATE_LIMIT_READ": "10/h",
    "RATE_LIMIT_TRADE": "10/h",
    "RATE_LIMIT_AUTH_FAILURES": "5/h",
}


def _pids(lines: list[str]) -> set[str]:
    return {match[1] for line in lines if (match := re.search(r" <(\d+)> ", line))}


def _send(web, path: str, send: Callable[[], int]) -> Counter[int]:
    """Requests to ``path`` by ``send`` (which returns the status), 8 at a time, until both workers have
    answered some (a worker may still be starting when the first answers; the access log names the
    worker's pid); the statuses counted."""
    statuses: Counter[int] = Counter()
    with ThreadPoolExecutor(8) as pool:
        for _ in range(25):
            statuses.update(pool.map(lambda _: send(), range(40)))
            if _answered_by_both(web, path):
                return statuses
    pytest.fail(f"one worker answered every request of {path}: the test would show nothing about sharing")


def _get(web, path: str, headers: dict[str, str] | None = None) -> Counter[int]:
    return _send(web, path, lambda: web.get(path, headers).status)


def _answered_by_both(web, path: str) -> bool:
    # Lines are written just after the answer: the last few may be missing, which only means one more round.
    return len(_pids([line for line in web.access_lines() if f" {path} " in line])) == 2


def test_two_workers_let_through_exactly_the_limit_of_an_address_and_of_a_user(web_server, redis_client):
    MarketFactory(coin="btc", currency="usdt")
    session = Client()
    session.force_login(UserFactory())
    cookie = {"Cookie": f"sessionid={session.cookies['sessionid'].value}"}
    web = web_server(workers=2, env=LIMITS_ON)

    public = _get(web, "/api/v1/markets")
    reads = _get(web, "/api/v1/balances", cookie)

    assert public[200] == 10 and set(public) == {200, 429}, public
    assert reads[200] == 10 and set(reads) == {200, 429}, reads


def test_two_workers_let_through_exactly_the_trading_limit_of_a_key_and_not_of_another(web_server, redis_client):
    MarketFactory(coin="btc", currency="usdt")
    trader = UserFactory()
    balance_deposit(user=trader, asset="usdt", amount=Decimal("1000000"))
    (first, first_secret), (second, second_secret) = (
        api_key_create(user=trader, scopes=["read", "trade"]) for _ in range(2)
    )
    web = web_server(workers=2, env=LIMITS_ON)
    base_url = f"http://127.0.0.1:{web.port}"

    prices = itertools.count(10_000)

    def place(key_id: str, secret: str) -> int:
        # A price of its own: two requests alike in body and millisecond would be one signature, a replay.
        price = Decimal(next(prices)) / 100
        with SpotClient(base_url, key_id, secret) as client:  # one per request: a client is not thread-safe
            return client.place("usdt", "btc", "buy", "limit", "0.01", price).status

    placed = _send(web, "/api/v1/orders", lambda: place(first.key_id, first_secret))

    assert placed[201] == 10 and set(placed) == {201, 429}, placed
    assert place(second.key_id, second_secret) == 201


def test_an_address_blocked_for_authentication_failures_is_blocked_by_every_worker(web_server, redis_client):
    web = web_server(workers=2, env=LIMITS_ON)
    path = "/api/v1/orders/pending"

    def unknown_key() -> int:
        # Well formed and fresh, so the key lookup (where a signed request's address is checked) runs.
        return web.get(path, signed_headers("NoSuchKey0000000000000000", "not-a-secret", "GET", path)).status

    # The failures one at a time: a request is let in or refused before the failures of requests still
    # running are counted, so concurrent ones could fail a few more times than the limit.
    failures = [unknown_key() for _ in range(5)]
    blocked = _send(web, path, unknown_key)

    assert failures == [401] * 5
    assert set(blocked) == {429}, blocked
