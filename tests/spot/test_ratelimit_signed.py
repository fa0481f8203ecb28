"""Rate limits of requests signed with a real API key: checked in the key lookup's one Redis round
trip (spot.ratelimit.signed_request_limits, orders.apikeys.api_key_lookup), with the same answers as
the separate checks give a session's request, and failing open when Redis cannot be asked.

Redis scripts are counted by spying on redis-py's ``Script.__call__`` (the call goes through to the
real Redis); counts, not timings."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from redis.commands.core import Script
from rest_framework.test import APIClient

from orders.apikeys import _LOOKUP_LUA, api_key_create
from orders.balances import balance_deposit
from spot.client import signed_headers
from spot.ratelimit import _GCRA
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ORDER = {"currency": "usdt", "coin": "btc", "trade_type": "buy", "type": "limit", "quantity": "0.01", "price": "100.00"}
PATH = "/api/v1/orders"


@pytest.fixture
def limits(settings, redis_client):
    settings.RATE_LIMITS_ENABLED = True
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"trade": "3/m", "read": "4/m", "anon": "2/m", "auth_failures": "3/m"},
    }


@pytest.fixture
def key(market):
    user = UserFactory()
    balance_deposit(user=user, asset="usdt", amount=Decimal("100000"))
    key, secret = api_key_create(user=user, scopes="read,trade")
    return key.key_id, secret


@pytest.fixture
def scripts(monkeypatch):
    """The Lua scripts run, in order: each call's source."""
    calls: list[str] = []
    real = Script.__call__

    def spy(self, *args, **kwargs):
        calls.append(self.script if isinstance(self.script, str) else self.script.decode())
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Script, "__call__", spy)
    return calls


def post(key_id: str, secret: str, body: dict | None = None, signature: str | None = None):
    payload = json.dumps(body or ORDER).encode()
    headers = signed_headers(key_id, secret, "POST", PATH, body=payload)
    if signature is not None:
        headers["X-API-Signature"] = signature
    return APIClient().generic("POST", PATH, payload, content_type="application/json", headers=headers)


def test_a_signed_order_runs_one_limit_script_the_key_lookup(limits, key, scripts):
    post(*key)  # the first use fills the key's cache (a DB read and a second round trip)
    scripts.clear()

    response = post(*key)

    assert response.status_code == 201, response.content
    assert scripts.count(_LOOKUP_LUA) == 1
    assert scripts.count(_GCRA) == 0  # no separate check of the address or the key


def test_the_fourth_signed_trading_request_within_a_limit_of_3_is_429(limits, key):
    answers = [post(*key) for _ in range(4)]

    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    assert answers[3].json()["message"].startswith("rate limit exceeded for trading requests of this key")
    assert 19 <= int(answers[3]["Retry-After"]) <= 20


def test_after_three_bad_signatures_the_address_is_429_even_with_a_good_one(limits, key):
    bad = [post(*key, body={**ORDER, "price": f"10{i}.00"}, signature="0" * 64).status_code for i in range(3)]

    blocked = post(*key)

    assert bad == [401, 401, 401]
    assert blocked.status_code == 429
    assert blocked.json()["message"].startswith("too many failed authentications from this address")


def test_with_redis_unreachable_a_signed_order_still_goes_through(limits, key, settings):
    post(*key)  # cached in Redis; the DB answers once Redis is gone
    settings.MATCHING_REDIS_URL = settings.REDIS_URL = "redis://127.0.0.1:1/0"

    response = post(*key)

    assert response.status_code == 201, response.content


def test_a_blocked_address_is_429_even_for_headers_refused_before_the_lookup(limits, key):
    stale = {"X-API-Key": key[0], "X-API-Timestamp": "0", "X-API-Signature": "0" * 64}
    client = APIClient()
    failures = [client.post(PATH, ORDER, format="json", headers=stale).status_code for _ in range(3)]

    blocked = client.post(PATH, ORDER, format="json", headers=stale)

    assert failures == [401, 401, 401]
    assert blocked.status_code == 429
