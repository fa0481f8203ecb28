"""API keys in one process (issue 9, item 1): the services, the signed-request authentication and the
scopes through Django's test client, the session and key endpoints, the admin and ``manage.py apikey``.
Real MariaDB and Redis. The same against gunicorn with two workers: tests/orders/test_apikeys_http.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client, RequestFactory, override_settings
from rest_framework.request import Request

from orders.apikeys import KEY_ID_LENGTH, api_key_create, api_key_list, api_key_revoke
from orders.authentication import ApiKeyAuthentication
from orders.balances import balance_deposit
from orders.errors import ApiKeyNotFound, InvalidApiKey
from orders.models import ApiKey, Order
from spot.client import signed_headers
from tests.factories import MarketFactory, UserFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
ORDER = {"currency": "usdt", "coin": "btc", "trade_type": "buy", "type": "limit", "quantity": "0.5", "price": "100.00"}


@pytest.fixture
def trader(redis_client):
    MarketFactory(coin="btc", currency="usdt")
    user = UserFactory(username="alice")
    balance_deposit(user=user, asset="usdt", amount=Decimal("100000"))
    return user


@pytest.fixture
def trade_key(trader):
    return api_key_create(user=trader, label="bot", scopes="read,trade")


def call(client, key_id, secret, method, path, *, body=b"", query="", now_ms=None, headers=None, **extra):
    """A signed request through the test client; ``headers`` replace or add to the signed ones."""
    signed = signed_headers(key_id, secret, method, path, query, body, now_ms)
    url = f"{path}?{query}" if query else path
    return client.generic(
        method, url, data=body, content_type="application/json", headers={**signed, **(headers or {})}, **extra
    )


def place(client, key_id, secret, order=None):
    return call(client, key_id, secret, "POST", "/api/v1/orders", body=json.dumps(order or ORDER).encode())


def refusal(response) -> str:
    """A 401's message, after checking it is the API's error envelope."""
    assert response.status_code == 401, (response.status_code, response.content)
    body = response.json()
    assert (body["success"], body["data"], body["dataVersion"]) == (False, None, "1"), body
    return body["message"]


# -- the key and its secret ----------------------------------------------------------------------------


def test_a_new_key_has_a_random_id_and_a_secret_the_database_does_not_hold(trader):
    key, secret = api_key_create(user=trader, label="bot", scopes=["trade", "read"], allowed_ips=["10.1.2.3"])

    assert len(key.key_id) == KEY_ID_LENGTH and key.key_id.isalnum()
    assert len(secret) >= 43 and secret.isalnum()
    assert key.scopes == "read,trade" and key.allowed_ips == ["10.1.2.3/32"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM api_keys WHERE key_id = %s", [key.key_id])
        row = cursor.fetchone()
    assert not any(secret in str(column) for column in row)
    assert secret.encode() not in repr(row).encode()


def test_two_keys_never_share_an_id_or_a_secret(trader):
    (one, first), (two, second) = (api_key_create(user=trader, scopes="read") for _ in range(2))
    assert one.key_id != two.key_id and first != second


@pytest.mark.parametrize(
    ("scopes", "allowed_ips", "field"),
    [
        ("", [], "scopes"),
        ("read,admin", [], "scopes"),
        ([], [], "scopes"),
        ("read", ["10.0.0.0/33"], "allowed_ips"),
        ("read", ["example.com"], "allowed_ips"),
    ],
)
def test_a_key_needs_known_scopes_and_real_addresses(trader, scopes, allowed_ips, field):
    with pytest.raises(InvalidApiKey) as refused:
        api_key_create(user=trader, scopes=scopes, allowed_ips=allowed_ips)
    assert refused.value.field == field
    assert not ApiKey.objects.exists()


def test_revoking_an_unknown_key_or_another_users_says_not_found(trade_key):
    key, _ = trade_key
    with pytest.raises(ApiKeyNotFound):
        api_key_revoke(key_id="nope")
    with pytest.raises(ApiKeyNotFound):
        api_key_revoke(key_id=key.key_id, user=UserFactory())


# -- signed requests -----------------------------------------------------------------------------------


def test_a_signed_request_places_lists_and_cancels(trade_key, trader):
    key, secret = trade_key
    client = Client()

    placed = place(client, key.key_id, secret)
    assert placed.status_code == 201, placed.content
    order_id = placed.json()["data"]["id"]
    listed = call(client, key.key_id, secret, "GET", "/api/v1/orders/pending", query="currency=usdt&coin=btc&limit=5")
    assert [o["id"] for o in listed.json()["data"]["data"]] == [order_id]
    canceled = call(client, key.key_id, secret, "PUT", f"/api/v1/orders/{order_id}/cancel")
    assert canceled.status_code == 200 and canceled.json()["data"] == {"id": order_id, "status": "cancel_requested"}
    assert Order.objects.get(id=order_id).user_id == trader.pk


def authenticate(key_id, secret):
    """``ApiKeyAuthentication.authenticate`` alone, on a signed GET /api/v1/balances."""
    headers = signed_headers(key_id, secret, "GET", "/api/v1/balances")
    return ApiKeyAuthentication().authenticate(Request(RequestFactory().get("/api/v1/balances", headers=headers)))


def test_a_warm_key_costs_no_database_query(trade_key, django_assert_num_queries):
    key, secret = trade_key
    authenticate(key.key_id, secret)  # fills the cache

    with django_assert_num_queries(0):
        user, auth = authenticate(key.key_id, secret)

    assert (user.pk, user.username, auth.key_id, auth.scopes) == (key.user_id, "alice", key.key_id, {"read", "trade"})


def test_the_first_use_after_the_cache_expires_records_last_used_at(trade_key, redis_client):
    key, secret = trade_key
    assert key.last_used_at is None
    call(Client(), key.key_id, secret, "GET", "/api/v1/balances")
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_missing_credentials_answer_401_with_www_authenticate():
    response = Client().get("/api/v1/balances")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("X-API-Signature")


def test_a_request_with_some_of_the_headers_names_the_missing_ones(trade_key):
    key, _ = trade_key
    response = Client().get("/api/v1/balances", headers={"X-API-Key": key.key_id})
    assert refusal(response) == "missing header X-API-Timestamp, X-API-Signature"


def test_a_changed_body_is_refused(trade_key):
    key, secret = trade_key
    body = json.dumps(ORDER).encode()
    headers = signed_headers(key.key_id, secret, "POST", "/api/v1/orders", "", body)
    tampered = body.replace(b"0.5", b"5.0")

    response = Client().post("/api/v1/orders", data=tampered, content_type="application/json", headers=headers)

    assert refusal(response).startswith("bad signature")
    assert not Order.objects.exists()


def test_a_changed_path_or_query_is_refused(trade_key):
    key, secret = trade_key
    headers = signed_headers(key.key_id, secret, "GET", "/api/v1/orders/pending", "limit=5")
    assert refusal(Client().get("/api/v1/orders/pending?limit=6", headers=headers)).startswith("bad signature")
    assert refusal(Client().get("/api/v1/balances?limit=5", headers=headers)).startswith("bad signature")
    headers = signed_headers(key.key_id, secret, "GET", "/api/v1/orders/pending", "limit=5")
    assert Client().get("/api/v1/orders/pending?limit=5", headers=headers).status_code == 200  # untouched: accepted


def test_a_changed_method_is_refused(trade_key):
    key, secret = trade_key
    headers = signed_headers(key.key_id, secret, "GET", "/api/v1/orders/1/cancel")
    assert refusal(Client().put("/api/v1/orders/1/cancel", headers=headers)).startswith("bad signature")


def test_the_wrong_secret_is_refused(trade_key):
    key, secret = trade_key
    assert refusal(call(Client(), key.key_id, secret[:-1] + "x", "GET", "/api/v1/balances")).startswith("bad signature")


def test_a_timestamp_outside_the_receive_window_is_refused_either_way(trade_key):
    key, secret = trade_key
    now = int(time.time() * 1000)
    window = settings.API_RECV_WINDOW_MS

    old = refusal(call(Client(), key.key_id, secret, "GET", "/api/v1/balances", now_ms=now - window - 1000))
    future = refusal(call(Client(), key.key_id, secret, "GET", "/api/v1/balances", now_ms=now + window + 1000))
    inside = call(Client(), key.key_id, secret, "GET", "/api/v1/balances", now_ms=now - window + 1000)

    assert old == f"timestamp too old: more than {window} ms before the server's clock"
    assert future == f"timestamp in the future: more than {window} ms after the server's clock"
    assert inside.status_code == 200


@override_settings(API_RECV_WINDOW_MS=60_000)
def test_the_receive_window_is_a_setting(trade_key):
    key, secret = trade_key
    stale = int(time.time() * 1000) - 30_000
    assert call(Client(), key.key_id, secret, "GET", "/api/v1/balances", now_ms=stale).status_code == 200


@pytest.mark.parametrize("timestamp", ["soon", "1.7e12", "-5", "", "1" * 40])
def test_a_malformed_timestamp_is_refused(trade_key, timestamp):
    key, secret = trade_key
    response = call(Client(), key.key_id, secret, "GET", "/api/v1/balances", headers={"X-API-Timestamp": timestamp})
    message = refusal(response)
    assert message.startswith(("malformed X-API-Timestamp", "missing header X-API-Timestamp"))


def test_a_replayed_request_is_refused_and_places_nothing(trade_key):
    key, secret = trade_key
    body = json.dumps(ORDER).encode()
    headers = signed_headers(key.key_id, secret, "POST", "/api/v1/orders", "", body)

    first = Client().post("/api/v1/orders", data=body, content_type="application/json", headers=headers)
    again = Client().post("/api/v1/orders", data=body, content_type="application/json", headers=headers)

    assert first.status_code == 201
    assert refusal(again) == "replayed request: this signature was already used"
    assert Order.objects.count() == 1


def test_a_revoked_key_is_refused_at_once(trade_key):
    key, secret = trade_key
    client = Client()
    assert call(client, key.key_id, secret, "GET", "/api/v1/balances").status_code == 200  # cached now

    api_key_revoke(key_id=key.key_id)

    assert refusal(call(client, key.key_id, secret, "GET", "/api/v1/balances")) == "unknown or revoked API key"


def test_an_unknown_key_says_the_same_as_a_revoked_one(trade_key):
    _, secret = trade_key
    assert (
        refusal(call(Client(), "A" * KEY_ID_LENGTH, secret, "GET", "/api/v1/balances")) == "unknown or revoked API key"
    )
    assert refusal(call(Client(), "a:b", secret, "GET", "/api/v1/balances")) == "unknown or revoked API key"


def test_a_deactivated_users_keys_stop_working_at_once(trade_key, trader):
    key, secret = trade_key
    assert call(Client(), key.key_id, secret, "GET", "/api/v1/balances").status_code == 200

    trader.is_active = False
    trader.save()

    assert refusal(call(Client(), key.key_id, secret, "GET", "/api/v1/balances")) == "unknown or revoked API key"


def test_an_address_outside_the_allowlist_is_refused(trader):
    key, secret = api_key_create(user=trader, scopes="read", allowed_ips=["203.0.113.0/24", "2001:db8::/32"])

    inside = call(Client(), key.key_id, secret, "GET", "/api/v1/balances", REMOTE_ADDR="203.0.113.9")
    inside_v6 = call(Client(), key.key_id, secret, "GET", "/api/v1/balances", REMOTE_ADDR="2001:db8::1")
    outside = call(Client(), key.key_id, secret, "GET", "/api/v1/balances", REMOTE_ADDR="198.51.100.1")

    assert inside.status_code == 200 and inside_v6.status_code == 200
    assert refusal(outside) == "this API key does not allow requests from this IP address"


def test_behind_trusted_proxies_the_allowlist_checks_the_address_the_nearest_proxy_saw(trader):
    key, secret = api_key_create(user=trader, scopes="read", allowed_ips=["203.0.113.0/24"])
    forwarded = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}  # a client's own entry, then the proxy's

    def status(num_proxies):
        with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "NUM_PROXIES": num_proxies}):
            return call(
                Client(), key.key_id, secret, "GET", "/api/v1/balances", headers=forwarded, REMOTE_ADDR="10.0.0.1"
            )

    assert status(1).status_code == 200
    assert refusal(status(0)) == "this API key does not allow requests from this IP address"
    assert refusal(status(None)) == "this API key does not allow requests from this IP address"  # never the header


def test_without_redis_keys_still_work_from_the_database_and_replays_to_the_same_process_are_refused(trade_key):
    key, secret = trade_key
    headers = signed_headers(key.key_id, secret, "GET", "/api/v1/balances")

    with override_settings(MATCHING_REDIS_URL="redis://127.0.0.1:1/0"):  # nothing listens on port 1
        first = Client().get("/api/v1/balances", headers=headers)
        again = Client().get("/api/v1/balances", headers=headers)

    assert first.status_code == 200
    assert refusal(again) == "replayed request: this signature was already used"


# -- scopes --------------------------------------------------------------------------------------------


def test_a_read_key_cannot_place_or_cancel(trader):
    key, secret = api_key_create(user=trader, scopes="read")

    placed = place(Client(), key.key_id, secret)
    canceled = call(Client(), key.key_id, secret, "PUT", "/api/v1/orders/1/cancel")

    assert placed.status_code == 403 and placed.json()["message"] == "this API key lacks the trade scope"
    assert canceled.status_code == 403
    assert call(Client(), key.key_id, secret, "GET", "/api/v1/orders/pending").status_code == 200
    assert not Order.objects.exists()


def test_a_trade_key_cannot_read(trader):
    key, secret = api_key_create(user=trader, scopes="trade")

    listed = call(Client(), key.key_id, secret, "GET", "/api/v1/orders/pending")

    assert listed.status_code == 403 and listed.json()["message"] == "this API key lacks the read scope"
    assert place(Client(), key.key_id, secret).status_code == 201


# -- the session and the key endpoints ----------------------------------------------------------------


def login(client, username="alice", password="pass-for-tests"):  # noqa: S107 - the factories' password
    return client.post(
        "/api/v1/session", data={"username": username, "password": password}, content_type="application/json"
    )


def test_a_person_logs_in_and_trades_with_the_session_and_its_csrf_token(trader):
    client = Client(enforce_csrf_checks=True)
    logged_in = login(client)
    assert logged_in.status_code == 200 and logged_in.json()["data"]["username"] == "alice"
    token = logged_in.json()["data"]["csrf_token"]

    without = client.post("/api/v1/orders", data=ORDER, content_type="application/json")
    with_token = client.post(
        "/api/v1/orders", data=ORDER, content_type="application/json", headers={"X-CSRFToken": token}
    )

    assert without.status_code == 403 and "CSRF" in without.json()["message"]
    assert with_token.status_code == 201
    assert client.get("/api/v1/balances").status_code == 200


def test_a_wrong_password_is_401_and_logs_nobody_in(trader):
    client = Client()
    response = login(client, password="wrong")
    assert response.status_code == 401 and response.json()["message"] == "wrong username or password"
    assert response.headers["WWW-Authenticate"] == 'Session realm="api", login="/api/v1/session"'
    assert client.get("/api/v1/balances").status_code == 401


def test_a_login_form_is_not_accepted(trader):
    # JSON only: a hostile page's form cannot log a visitor in.
    response = Client().post("/api/v1/session", data={"username": "alice", "password": "pass-for-tests"})
    assert response.status_code == 415


def test_logging_out_needs_the_csrf_token_and_ends_the_session(trader):
    client = Client(enforce_csrf_checks=True)
    token = login(client).json()["data"]["csrf_token"]

    assert client.delete("/api/v1/session").status_code == 403
    assert client.delete("/api/v1/session", headers={"X-CSRFToken": token}).status_code == 204
    assert client.get("/api/v1/balances").status_code == 401


def test_a_user_creates_lists_and_revokes_keys_with_the_session(trader):
    client = Client(enforce_csrf_checks=True)
    csrf = {"X-CSRFToken": login(client).json()["data"]["csrf_token"]}

    created = client.post(
        "/api/v1/keys",
        data={"label": "grid bot", "scopes": ["read", "trade"], "allowed_ips": ["10.0.0.0/8"]},
        content_type="application/json",
        headers=csrf,
    )
    assert created.status_code == 201, created.content
    body = created.json()["data"]
    assert body["scopes"] == ["read", "trade"] and body["allowed_ips"] == ["10.0.0.0/8"] and body["secret"]
    listed = client.get("/api/v1/keys").json()["data"]
    assert [k["key_id"] for k in listed] == [body["key_id"]] and "secret" not in listed[0]
    assert client.delete(f"/api/v1/keys/{body['key_id']}", headers=csrf).status_code == 204
    assert client.get("/api/v1/keys").json()["data"][0]["revoked_at"] is not None


def test_creating_a_key_with_the_session_needs_the_csrf_token(trader):
    client = Client(enforce_csrf_checks=True)
    login(client)
    response = client.post("/api/v1/keys", data={"scopes": ["read"]}, content_type="application/json")
    assert response.status_code == 403 and not ApiKey.objects.exists()


def test_a_script_creates_a_key_with_its_password_once(trader):
    response = Client().post(
        "/api/v1/keys",
        data={"username": "alice", "password": "pass-for-tests", "scopes": ["trade"], "label": "x"},
        content_type="application/json",
    )
    assert response.status_code == 201
    secret = response.json()["data"]["secret"]
    assert place(Client(), response.json()["data"]["key_id"], secret).status_code == 201


def test_a_wrong_password_creates_no_key(trader):
    response = Client().post(
        "/api/v1/keys",
        data={"username": "alice", "password": "nope", "scopes": ["trade"]},
        content_type="application/json",
    )
    assert response.status_code == 401 and not ApiKey.objects.exists()


def test_an_api_key_cannot_manage_keys(trade_key):
    key, secret = trade_key
    body = json.dumps({"scopes": ["read", "trade"]}).encode()

    created = call(Client(), key.key_id, secret, "POST", "/api/v1/keys", body=body)
    listed = call(Client(), key.key_id, secret, "GET", "/api/v1/keys")
    revoked = call(Client(), key.key_id, secret, "DELETE", f"/api/v1/keys/{key.key_id}")

    assert [created.status_code, listed.status_code, revoked.status_code] == [401, 401, 401]
    assert "log in first" in created.json()["message"]
    assert ApiKey.objects.count() == 1 and ApiKey.objects.get().revoked_at is None


def test_a_bad_scope_over_the_api_names_the_field(trader):
    response = Client().post(
        "/api/v1/keys",
        data={"username": "alice", "password": "pass-for-tests", "scopes": ["admin"], "allowed_ips": ["x"]},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert [field[:6] for field in response.json()["errors"]] == ["scopes"]  # scopes[0]: the first item


def test_a_bad_network_over_the_api_names_the_field(trader):
    response = Client().post(
        "/api/v1/keys",
        data={"username": "alice", "password": "pass-for-tests", "scopes": ["read"], "allowed_ips": ["10.0.0.300"]},
        content_type="application/json",
    )
    assert response.status_code == 400 and response.json()["errors"] == {
        "allowed_ips": ["'10.0.0.300' is not an IP address or network"]
    }


def test_a_user_cannot_revoke_another_users_key(trade_key):
    key, _ = trade_key
    UserFactory(username="bob")
    client = Client(enforce_csrf_checks=True)
    token = login(client, "bob").json()["data"]["csrf_token"]

    response = client.delete(f"/api/v1/keys/{key.key_id}", headers={"X-CSRFToken": token})

    assert response.status_code == 404
    assert ApiKey.objects.get().revoked_at is None


# -- the admin -----------------------------------------------------------------------------------------


@pytest.fixture
def operator(client):
    client.force_login(UserFactory(username="ops", is_staff=True, is_superuser=True))
    return client


def test_the_admin_creates_a_key_and_shows_its_secret_once(operator, trader):
    response = operator.post(
        "/admin/orders/apikey/add/",
        {"user": trader.pk, "label": "desk", "scopes": ["read", "trade"], "allowed_ips": "10.0.0.1\n10.2.0.0/16"},
    )

    assert response.status_code == 200, response.content[:2000]
    key = ApiKey.objects.get()
    page = response.content.decode()
    secret = page.split('id="api-key-secret">')[1].split("<")[0]
    assert key.key_id in page and len(secret) >= 43
    assert "no-store" in response.headers["Cache-Control"]
    assert key.allowed_ips == ["10.0.0.1/32", "10.2.0.0/16"] and key.scopes == "read,trade"
    assert secret not in operator.get(f"/admin/orders/apikey/{key.pk}/change/").content.decode()
    body = json.dumps(ORDER).encode()
    assert (
        call(Client(), key.key_id, secret, "POST", "/api/v1/orders", body=body, REMOTE_ADDR="10.2.3.4").status_code
        == 201
    )


def test_the_admin_refuses_a_key_without_scopes_or_with_a_bad_network(operator, trader):
    response = operator.post("/admin/orders/apikey/add/", {"user": trader.pk, "allowed_ips": "10.0.0.0/99"})
    assert response.status_code == 200 and not ApiKey.objects.exists()
    assert "is not an IP address or network" in response.content.decode()


def test_the_admin_lists_keys_and_revokes_them_with_an_action(operator, trade_key):
    key, secret = trade_key
    listing = operator.get("/admin/orders/apikey/").content.decode()
    assert key.key_id in listing and "alice" in listing and secret not in listing

    operator.post("/admin/orders/apikey/", {"action": "revoke", "_selected_action": [key.pk]})

    key.refresh_from_db()
    assert key.revoked_at is not None
    assert refusal(call(Client(), key.key_id, secret, "GET", "/api/v1/balances")) == "unknown or revoked API key"


# -- manage.py apikey ----------------------------------------------------------------------------------


def run(*args: str) -> str:
    out = StringIO()
    call_command("apikey", *args, stdout=out)
    return out.getvalue()


def test_the_command_creates_a_key_and_prints_its_secret_once(trader):
    out = run("create", "--user", "alice", "--label", "cli bot", "--scopes", "read,trade", "--ip", "10.0.0.0/8")

    key = ApiKey.objects.get()
    secret = out.split("secret:")[1].split()[0]
    assert key.key_id in out and key.allowed_ips == ["10.0.0.0/8"]
    assert place(Client(), key.key_id, secret, ORDER).status_code == 401  # 127.0.0.1 is not in 10/8
    listing = run("list", "--user", "alice")
    assert key.key_id in listing and "cli bot" in listing and secret not in listing


def test_the_command_revokes_a_key(trade_key):
    key, secret = trade_key
    assert "revoked" in run("revoke", key.key_id)
    assert refusal(call(Client(), key.key_id, secret, "GET", "/api/v1/balances")) == "unknown or revoked API key"
    assert run("list", "--active") == "no API keys match\n"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["create", "--user", "nobody", "--scopes", "read"], 2, "no user named 'nobody'"),
        (["create", "--user", "alice", "--scopes", "read,root"], 2, "--scopes: unknown scope 'root'"),
        (["create", "--user", "alice", "--scopes", "read", "--ip", "10.0.0.0/40"], 2, "--ip:"),
        (["revoke", "NoSuchKey"], 1, "API key NoSuchKey does not exist"),
    ],
)
def test_the_command_refuses_bad_usage_with_2_and_an_unknown_key_with_1(trader, args, code, message):
    with pytest.raises(CommandError) as refused:
        run(*args)
    assert refused.value.returncode == code and message in str(refused.value)
    assert not ApiKey.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_command_exits_with_its_status_in_a_real_process(trader):
    environ = {**os.environ, "MYSQL_DATABASE": settings.DATABASES["default"]["NAME"]}
    command = [sys.executable, "manage.py", "apikey"]
    unknown = subprocess.run([*command, "revoke", "NoSuchKey"], cwd=ROOT, env=environ, capture_output=True, text=True)
    bad = subprocess.run(
        [*command, "create", "--user", "alice", "--scopes", "sudo"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
    )
    assert unknown.returncode == 1 and "does not exist" in unknown.stderr
    assert bad.returncode == 2 and "unknown scope" in bad.stderr


def test_reencrypting_after_a_rotation_keeps_every_key_working(trade_key):
    from cryptography.fernet import Fernet

    key, secret = trade_key
    old_keys = list(settings.API_KEY_ENCRYPTION_KEYS)
    with override_settings(API_KEY_ENCRYPTION_KEYS=[Fernet.generate_key().decode(), *old_keys]):
        assert "re-encrypted 1 " in run("reencrypt")
        new_keys = list(settings.API_KEY_ENCRYPTION_KEYS)
    key.refresh_from_db()
    with override_settings(API_KEY_ENCRYPTION_KEYS=new_keys[:1]):  # the old key dropped
        assert call(Client(), key.key_id, secret, "GET", "/api/v1/balances").status_code == 200
    assert list(api_key_list()) == [key]
