"""Schema-driven fuzzing of the HTTP API (issue 9, item 4): schemathesis generates requests from the
OpenAPI schema at /api/schema/ and sends them in-process through the WSGI application (``spot.wsgi``).
Its coverage phase adds, per operation, a case for each bound and each kind of wrong value (missing
fields, wrong types, strings past their length, numbers past their range); then hypothesis generates
``MAX_EXAMPLES`` more, with a fixed derandomized seed so every run sends the same requests.

Every answer must be documented for its operation (status code, content type, a JSON body matching
the schema: every error is the one ``Error`` shape), none is a 5xx, and a refused request (4xx)
changes nothing: orders, balances, trades, API keys and the order streams read the same before and
after it.

Requests are authenticated as a trader twice over: signed with the trader's API key (the order routes
take it first) and with a browser session plus its CSRF token (the key routes take only that). Each
request is signed as it reaches the application, so the signature covers exactly the path, query and
body the server receives; without it every request to an order route would only exercise the 401.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import schemathesis
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from orders.apikeys import api_key_create
from orders.models import ApiKey, Balance, Order, Trade
from orders.services import order_place
from spot.client import signed_headers
from spot.wsgi import application

# Real commits (transaction=True): intake pushes an accepted order to its stream after the commit,
# and the state check reads what a request left behind. 14 operations, about 900 requests: 20-60 s.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MAX_EXAMPLES = 30  # generated cases per operation, after the coverage phase's
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Trader:
    """Credentials the application sees on every request: a signed API key and a browser session."""

    CSRF_TOKEN = "f" * 32  # a CSRF secret in Django's unmasked form: the cookie and the header agree

    def __init__(self, user: Any, key_id: str, secret: str) -> None:
        self.user, self.key_id, self.secret = user, key_id, secret
        self.session_key = ""
        self.last_ms = 0
        self.orders: list[int] = []

    def log_in(self) -> None:
        """A fresh session (the fuzzer's ``DELETE /api/v1/session`` logs the previous one out)."""
        session = SessionStore()
        session[SESSION_KEY] = str(self.user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = self.user.get_session_auth_hash()
        session.create()
        self.session_key = session.session_key

    def timestamp_ms(self) -> int:
        # Strictly increasing: two identical requests in one millisecond would carry one signature,
        # and the second would be refused as a replay.
        self.last_ms = max(int(time.time() * 1000), self.last_ms + 1)
        return self.last_ms


class Authenticated:
    """WSGI middleware that adds ``trader``'s credentials to each request, signing what it received."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        self.trader: Trader | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.trader is not None:
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            # The target as the client sent it, which is what the server verifies (werkzeug's test
            # client sets it as gunicorn does).
            path, _, query = environ["RAW_URI"].partition("?")
            headers = signed_headers(
                self.trader.key_id,
                self.trader.secret,
                environ["REQUEST_METHOD"],
                path,
                query,
                body,
                now_ms=self.trader.timestamp_ms(),
            )
            for name, value in headers.items():
                environ["HTTP_" + name.upper().replace("-", "_")] = value
            environ["HTTP_COOKIE"] = f"sessionid={self.trader.session_key}; csrftoken={Trader.CSRF_TOKEN}"
            environ["HTTP_X_CSRFTOKEN"] = Trader.CSRF_TOKEN
        return self.app(environ, start_response)


def state() -> tuple[Any, ...]:
    """What a refused request must leave as it was."""
    from spot.redis import redis_client

    client = redis_client()
    return (
        tuple(Order.objects.order_by("id").values_list("id", "status", "held", "executed_quantity")),
        tuple(Balance.objects.order_by("user_id", "asset").values_list("user_id", "asset", "total", "held")),
        Trade.objects.count(),
        tuple(ApiKey.objects.order_by("key_id").values_list("key_id", "scopes", "revoked_at")),
        tuple(sorted((key, client.xlen(key)) for key in client.scan_iter("orders:*"))),
    )


# Loaded at collection (about a second): schemathesis' lazy loader, ``from_fixture``, fails on pytest 9
# (it sets ``Function._nodeid``, which pytest 9 no longer has). The schema's route is public and needs
# no database; the credentials come per test (``trader``).
APP = Authenticated(application)
schema = schemathesis.openapi.from_wsgi("/api/schema/", APP)


@pytest.fixture
def trader(market) -> Iterator[Trader]:
    from orders.balances import balance_deposit
    from tests.factories import UserFactory

    user = UserFactory()
    balance_deposit(user=user, asset="usdt", amount=Decimal("1000000"))
    balance_deposit(user=user, asset="btc", amount=Decimal("100"))
    key, secret = api_key_create(user=user, label="fuzz", scopes=["read", "trade"])
    # Orders of its own, for the reads and cancels of existing orders (see ``known_order``).
    for price in ("100", "200"):
        order_place(
            user=user, market=market.code, side="buy", order_type="limit", quantity=Decimal("1"), price=Decimal(price)
        )
    trader = Trader(user, key.key_id, secret)
    trader.orders = list(Order.objects.filter(user=user).values_list("id", flat=True))
    APP.trader = trader
    yield trader
    APP.trader = None


@pytest.fixture
def quiet_refusals() -> Iterator[None]:
    """Django logs every 4xx as a warning; thousands of them would bury a failure's own log. 5xx stay."""
    logger = logging.getLogger("django.request")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def known_order(case: Any, trader: Trader) -> None:
    """Order ids are random 63-bit numbers the generator would never hit: an even generated id is
    replaced by one of the trader's orders, so reading and canceling real orders is fuzzed too."""
    order_id = case.path_parameters.get("order_id") if case.path_parameters else None
    if isinstance(order_id, int) and not isinstance(order_id, bool) and order_id % 2 == 0:
        case.path_parameters["order_id"] = trader.orders[order_id // 2 % len(trader.orders)]


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,  # the same cases on every run: a failure is reproducible, never flaky
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_is_documented_no_5xx_and_refused_requests_change_nothing(case, trader, quiet_refusals):
    known_order(case, trader)
    trader.log_in()
    before = state()

    response = case.call()

    case.validate_response(response, checks=CHECKS)
    if 400 <= response.status_code < 500:
        assert state() == before, f"{case.method} {case.formatted_path} answered {response.status_code}"
