"""The API's rate limits (spot.ratelimit) in Redis: counts, not timings. Rates here are per minute, so a
limit cannot free itself while a test runs; the shared state is the test Redis database, emptied around
each test (the ``redis_client`` fixture).

API keys are stood in for by ``KeyStandIn`` (what an API key's authentication leaves in
``request.auth``); the authentication-failure limit is tested against a view of this module whose
authentication answers 401 to a bad credential, so it depends on the 401 status only, as the
middleware does.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.urls import include, path
from prometheus_client import REGISTRY
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework.views import APIView

from orders.balances import balance_deposit
from spot.ratelimit import Scope, rate_check, rate_parse
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connections are refused


@dataclass(frozen=True)
class KeyStandIn:
    """What API key authentication puts in ``request.auth``."""

    key_id: str
    user_id: int
    scopes: frozenset[str] = frozenset({"read", "trade"})


class HeaderAuthentication(BaseAuthentication):
    """``X-Test-Auth: good`` is the first user; any other value is refused with 401; none is anonymous."""

    def authenticate(self, request):
        credential = request.headers.get("X-Test-Auth")
        if credential is None:
            return None
        if credential != "good":
            raise AuthenticationFailed("bad test credential")
        return get_user_model().objects.order_by("pk").first(), None

    def authenticate_header(self, request) -> str:
        return "Test"  # makes DRF answer 401 rather than 403


class ProtectedApi(APIView):
    authentication_classes = [HeaderAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"ok": True})

    def post(self, request):
        return Response({"ok": True})


urlpatterns = [
    path("api/test/protected", ProtectedApi.as_view()),
    path("api/v1/", include("orders.urls")),
]


@pytest.fixture
def limits(settings, redis_client):
    """Rate limits on, with small per-minute rates; ``limits(trade="5/m")`` changes one."""

    def apply(num_proxies: int = 0, **rates: str) -> None:
        settings.RATE_LIMITS_ENABLED = True
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"trade": "3/m", "read": "4/m", "anon": "2/m", "auth_failures": "3/m", **rates},
            "NUM_PROXIES": num_proxies,
        }

    apply()
    return apply


@pytest.fixture
def trader(market):
    user = UserFactory()
    balance_deposit(user=user, asset="usdt", amount=Decimal("100000"))
    return user


def _keyed(user, key_id: str) -> APIClient:
    client = APIClient()
    client.force_authenticate(user, token=KeyStandIn(key_id, user.pk))
    return client


def _order() -> dict[str, str]:
    return {
        "currency": "usdt",
        "coin": "btc",
        "trade_type": "buy",
        "type": "limit",
        "quantity": "0.01",
        "price": "100.00",
    }


def _limited(scope: str) -> float:
    return REGISTRY.get_sample_value("spot_rate_limited_total", {"scope": scope}) or 0.0


def _unchecked(scope: str) -> float:
    return REGISTRY.get_sample_value("spot_rate_limit_unchecked_total", {"scope": scope}) or 0.0


def _assert_429(response, message: str) -> None:
    assert response.status_code == 429, response.content
    assert response.json() == {"success": False, "message": message, "dataVersion": "1", "data": None, "errors": {}}
    # 3 per minute: one request's allowance comes back every 20 s.
    assert 19 <= int(response["Retry-After"]) <= 20


# -- trading requests and reads, per key -------------------------------------------------------------


def test_the_fourth_trading_request_of_a_key_within_its_limit_of_3_is_429_with_retry_after(limits, trader):
    api = _keyed(trader, "k1")
    before = _limited("trade")

    placed = [api.post("/api/v1/orders", _order(), format="json") for _ in range(2)]
    canceled = api.put(f"/api/v1/orders/{placed[0].json()['data']['id']}/cancel")  # a trading request too
    refused = api.post("/api/v1/orders", _order(), format="json")

    assert [response.status_code for response in placed] == [201, 201]
    assert canceled.status_code == 200
    _assert_429(
        refused, f"rate limit exceeded for trading requests of this key; retry after {refused['Retry-After']} s"
    )
    assert _limited("trade") == before + 1


def test_a_batch_counts_as_one_trading_request(limits, trader):
    api = _keyed(trader, "k1")
    item = {k: v for k, v in _order().items() if k not in ("currency", "coin")}
    batch = {"currency": "usdt", "coin": "btc", "orders": [item] * 5}

    answers = [api.post("/api/v1/orders/batch", batch, format="json").status_code for _ in range(4)]

    assert answers == [201, 201, 201, 429]


def test_another_key_of_the_same_user_still_trades_and_the_limited_key_still_reads(limits, trader):
    first, second = _keyed(trader, "k1"), _keyed(trader, "k2")
    for _ in range(3):
        first.post("/api/v1/orders", _order(), format="json")
    assert first.post("/api/v1/orders", _order(), format="json").status_code == 429

    assert second.post("/api/v1/orders", _order(), format="json").status_code == 201
    assert first.get("/api/v1/orders/pending").status_code == 200  # reads have their own limit


def test_the_fifth_read_of_a_key_within_its_limit_of_4_is_429(limits, trader):
    api = _keyed(trader, "k1")

    answers = [api.get("/api/v1/balances").status_code for _ in range(4)]
    refused = api.get("/api/v1/orders/pending")

    assert answers == [200] * 4
    assert refused.status_code == 429
    assert refused.json()["message"].startswith("rate limit exceeded for reads of this key; retry after ")
    assert _keyed(trader, "k2").get("/api/v1/balances").status_code == 200


def test_a_user_signed_in_with_a_session_is_limited_by_user(limits, trader):
    api = APIClient()
    api.force_authenticate(trader)  # no key: a session
    other = UserFactory()
    balance_deposit(user=other, asset="usdt", amount=Decimal("100000"))
    other_api = APIClient()
    other_api.force_authenticate(other)

    answers = [api.post("/api/v1/orders", _order(), format="json").status_code for _ in range(4)]

    assert answers == [201, 201, 201, 429]
    assert (
        api.post("/api/v1/orders", _order(), format="json")
        .json()["message"]
        .startswith("rate limit exceeded for trading requests of this user; ")
    )
    assert other_api.post("/api/v1/orders", _order(), format="json").status_code == 201


# -- anonymous requests, per address -----------------------------------------------------------------


def test_requests_without_credentials_are_limited_per_address(limits, market):
    client = APIClient()
    before = _limited("anon")

    answers = [client.get("/api/v1/markets", REMOTE_ADDR="10.0.0.1").status_code for _ in range(2)]
    refused = client.get("/api/v1/orders/order-book?currency=usdt&coin=btc", REMOTE_ADDR="10.0.0.1")

    assert answers == [200, 200]
    assert refused.status_code == 429
    assert refused.json() == {
        "success": False,
        "message": f"rate limit exceeded for requests without credentials from this address; "
        f"retry after {refused['Retry-After']} s",
        "dataVersion": "1",
        "data": None,
        "errors": {},
    }
    assert 29 <= int(refused["Retry-After"]) <= 30  # 2 per minute
    assert client.get("/api/v1/markets", REMOTE_ADDR="10.0.0.2").status_code == 200
    assert _limited("anon") == before + 1


def test_an_address_over_the_anonymous_limit_is_not_limited_once_it_signs_in(limits, trader):
    client = APIClient()
    for _ in range(3):
        client.get("/api/v1/markets", REMOTE_ADDR="10.0.0.1")

    assert _keyed(trader, "k1").get("/api/v1/markets", REMOTE_ADDR="10.0.0.1").status_code == 200


# -- authentication failures, per address ------------------------------------------------------------


def test_three_authentication_failures_block_the_address_for_what_needs_authentication(limits, trader):
    client = APIClient()
    before = _limited("auth_failures")

    failures = [client.get("/api/test/protected", HTTP_X_TEST_AUTH="bad", REMOTE_ADDR="10.0.0.1") for _ in range(3)]
    blocked = client.get("/api/test/protected", HTTP_X_TEST_AUTH="good", REMOTE_ADDR="10.0.0.1")
    blocked_post = client.post("/api/test/protected", HTTP_X_TEST_AUTH="good", REMOTE_ADDR="10.0.0.1")

    assert [response.status_code for response in failures] == [401, 401, 401]
    _assert_429(blocked, f"too many failed authentications from this address; retry after {blocked['Retry-After']} s")
    assert blocked_post.status_code == 429
    assert _limited("auth_failures") == before + 2
    # Another address, and a public read from the blocked one, are not affected.
    assert client.get("/api/test/protected", HTTP_X_TEST_AUTH="good", REMOTE_ADDR="10.0.0.2").status_code == 200
    assert client.get("/api/v1/markets", REMOTE_ADDR="10.0.0.1").status_code == 200


def test_successful_authentications_do_not_count_as_failures(limits, trader):
    limits(read="100/m")
    client = APIClient()

    answers = [
        client.get("/api/test/protected", HTTP_X_TEST_AUTH="good", REMOTE_ADDR="10.0.0.1").status_code for _ in range(6)
    ]

    assert answers == [200] * 6


def test_behind_one_proxy_the_address_is_the_last_forwarded_one(limits, trader):
    limits(num_proxies=1)
    client = APIClient()
    # Both come through the proxy at 127.0.0.1, which appends the address it saw.
    for _ in range(3):
        client.get("/api/test/protected", HTTP_X_TEST_AUTH="bad", HTTP_X_FORWARDED_FOR="1.1.1.1")

    blocked = client.get("/api/test/protected", HTTP_X_TEST_AUTH="good", HTTP_X_FORWARDED_FOR="1.1.1.1")
    spoofed = client.get("/api/test/protected", HTTP_X_TEST_AUTH="good", HTTP_X_FORWARDED_FOR="9.9.9.9, 1.1.1.1")
    other = client.get("/api/test/protected", HTTP_X_TEST_AUTH="good", HTTP_X_FORWARDED_FOR="2.2.2.2")

    assert (blocked.status_code, spoofed.status_code, other.status_code) == (429, 429, 200)


def test_without_proxies_a_forwarded_address_is_ignored(limits, trader):
    client = APIClient()
    for _ in range(3):
        client.get("/api/test/protected", HTTP_X_TEST_AUTH="bad", HTTP_X_FORWARDED_FOR="1.1.1.1")

    # A client cannot escape its block by claiming another address.
    answer = client.get("/api/test/protected", HTTP_X_TEST_AUTH="good", HTTP_X_FORWARDED_FOR="2.2.2.2")

    assert answer.status_code == 429


# -- switched off, Redis down, bad rates -------------------------------------------------------------


def test_with_rate_limits_off_nothing_is_refused(limits, settings, market):
    settings.RATE_LIMITS_ENABLED = False
    client = APIClient()
    for _ in range(4):
        client.get("/api/test/protected", HTTP_X_TEST_AUTH="bad")

    answers = [client.get("/api/v1/markets").status_code for _ in range(5)]

    assert answers == [200] * 5
    assert client.get("/api/test/protected", HTTP_X_TEST_AUTH="bad").status_code == 401


def test_with_redis_unreachable_requests_pass_and_are_counted_unchecked(limits, settings, trader):
    settings.REDIS_URL = UNREACHABLE_REDIS  # the limits' Redis only: the order cache and streams keep theirs
    api = _keyed(trader, "k1")
    client = APIClient()
    before = _unchecked("trade"), _unchecked("anon"), _unchecked("auth_failures")

    placed = [api.post("/api/v1/orders", _order(), format="json").status_code for _ in range(5)]
    public = [client.get("/api/v1/markets").status_code for _ in range(5)]
    failed = [client.get("/api/test/protected", HTTP_X_TEST_AUTH="bad").status_code for _ in range(5)]

    assert placed == [201] * 5
    assert public == [200] * 5
    assert failed == [401] * 5
    assert _unchecked("trade") == before[0] + 5
    assert _unchecked("anon") == before[1] + 5
    # The address's authentication failures: a look before each request that is not a public read (the
    # 5 orders and the 5 failures), and a count after each 401.
    assert _unchecked("auth_failures") == before[2] + 15


def test_the_same_requests_with_redis_reachable_are_refused(limits, trader):
    """The counterpart of the test above: there the limits would have refused."""
    api = _keyed(trader, "k1")

    placed = [api.post("/api/v1/orders", _order(), format="json").status_code for _ in range(5)]

    assert placed == [201, 201, 201, 429, 429]


def test_a_refused_request_does_not_use_up_the_allowance(limits):
    # GCRA: refusals change nothing, so a client hammering a closed limit is let in as soon as it frees.
    for _ in range(3):
        assert rate_check(Scope.TRADE, "key:k1") == 0
    waits = [rate_check(Scope.TRADE, "key:k1") for _ in range(10)]

    assert all(1 <= wait <= 20 for wait in waits)


def test_a_look_does_not_count(limits):
    for _ in range(10):
        assert rate_check(Scope.AUTH_FAILURES, "ip:10.0.0.1", count=False) == 0

    assert [rate_check(Scope.AUTH_FAILURES, "ip:10.0.0.1") for _ in range(4)][-1] > 0


@pytest.mark.parametrize(("rate", "parsed"), [("50/s", (50, 1)), ("30/m", (30, 60)), ("1/h", (1, 3600))])
def test_a_rate_is_requests_per_period_in_seconds(rate, parsed):
    assert rate_parse(rate) == parsed


@pytest.mark.parametrize("rate", ["", "50", "fifty/s", "0/s", "50/x", "/s"])
def test_a_malformed_rate_is_improperly_configured(rate):
    with pytest.raises(ImproperlyConfigured, match="rate limit"):
        rate_parse(rate)
