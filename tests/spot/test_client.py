"""The signing client (spot/client.py) on its own: its signature against a vector computed here with
hmac and hashlib directly, what it puts on the wire, and its keep-alive connection surviving a server
that drops it. The client against the real API is tested in tests/orders/test_apikeys_http.py."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest

from spot import client as client_module
from spot.client import SpotClient, sign, signed_headers

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY12"


def test_the_signature_is_hex_hmac_sha256_of_timestamp_method_path_query_and_body() -> None:
    body = b'{"currency":"usdt","coin":"btc","price":"30000.5"}'
    expected = hmac.new(
        SECRET.encode(),
        b"1700000000123\nPOST\n/api/v1/orders\nlimit=5&currency=usdt\n" + body,
        hashlib.sha256,
    ).hexdigest()

    assert sign(SECRET, 1700000000123, "post", "/api/v1/orders", "limit=5&currency=usdt", body) == expected
    # The same vector from `openssl dgst -sha256 -hmac`, so a change of the scheme shows here even if
    # both sides above changed with it.
    assert expected == "faea1995e1df21d9a88179eb14e5af7a166cb8b490af29b2dd863bdb9e768e76"


def test_signed_headers_carry_the_key_the_timestamp_and_the_signature() -> None:
    headers = signed_headers("AKID", SECRET, "GET", "/api/v1/balances", now_ms=1700000000000)

    assert headers == {
        "X-API-Key": "AKID",
        "X-API-Timestamp": "1700000000000",
        "X-API-Signature": hmac.new(
            SECRET.encode(), b"1700000000000\nGET\n/api/v1/balances\n\n", hashlib.sha256
        ).hexdigest(),
    }


def test_a_changed_byte_anywhere_changes_the_signature() -> None:
    base = sign(SECRET, 1, "GET", "/api/v1/orders", "a=1", b"x")
    assert sign(SECRET, 2, "GET", "/api/v1/orders", "a=1", b"x") != base
    assert sign(SECRET, 1, "PUT", "/api/v1/orders", "a=1", b"x") != base
    assert sign(SECRET, 1, "GET", "/api/v1/orderz", "a=1", b"x") != base
    assert sign(SECRET, 1, "GET", "/api/v1/orders", "a=2", b"x") != base
    assert sign(SECRET, 1, "GET", "/api/v1/orders", "a=1", b"y") != base
    assert sign(SECRET + "x", 1, "GET", "/api/v1/orders", "a=1", b"x") != base


# -- on the wire -------------------------------------------------------------------------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers with the server's next queued (status, envelope) or 200 with a fixed envelope, and
    records each request; keeps connections alive unless the server is told to drop the next one
    without answering."""

    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.server.drop_next:  # type: ignore[attr-defined]
            self.server.drop_next.pop()  # type: ignore[attr-defined]
            self.close_connection = True
            return  # closes without an answer, as a server closing an idle connection does
        self.server.requests.append((self.command, self.path, dict(self.headers), body))  # type: ignore[attr-defined]
        answers = self.server.answers  # type: ignore[attr-defined]
        status, payload = answers.pop(0) if answers else (200, ENVELOPE)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def log_message(self, *args: object) -> None:
        pass


ENVELOPE = b'{"success":true,"message":null,"dataVersion":"1","data":{"price":"30000.5","n":0.1}}'


@pytest.fixture
def recorder() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.requests = []  # type: ignore[attr-defined]
    server.drop_next = []  # type: ignore[attr-defined]
    server.answers = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: http.server.ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_it_sends_compact_json_with_decimals_as_plain_strings_and_signs_what_it_sends(recorder) -> None:
    client = SpotClient(_url(recorder), "AKID", SECRET)

    response = client.place("usdt", "btc", "buy", "limit", Decimal("1E-8"), price=Decimal("30000.50"))

    method, target, headers, body = recorder.requests[0]
    assert (method, target) == ("POST", "/api/v1/orders")
    assert body == (
        b'{"currency":"usdt","coin":"btc","trade_type":"buy","type":"limit","quantity":"0.00000001","price":"30000.50"}'
    )
    assert headers["Content-Type"] == "application/json"
    assert headers["X-API-Key"] == "AKID"
    assert headers["X-API-Signature"] == sign(SECRET, headers["X-API-Timestamp"], "POST", "/api/v1/orders", "", body)
    assert response.status == 200
    assert response.json() == {
        "success": True,
        "message": None,
        "dataVersion": "1",
        "data": {"price": "30000.5", "n": Decimal("0.1")},
    }
    assert response.data == {"price": "30000.5", "n": Decimal("0.1")}


def test_a_stop_order_carries_its_base_price_condition_ioc_and_client_order_id(recorder) -> None:
    client = SpotClient(_url(recorder), "AKID", SECRET)

    client.place(
        "usdt",
        "btc",
        "sell",
        "stop_market",
        "0.5",
        base_price=Decimal("29000"),
        stop_condition="le",
        ioc=True,
        client_order_id="bot-1 #7",
    )

    assert recorder.requests[0][3] == (
        b'{"currency":"usdt","coin":"btc","trade_type":"sell","type":"stop_market","quantity":"0.5",'
        b'"base_price":"29000","stop_condition":"le","ioc":1,"client_order_id":"bot-1 #7"}'
    )


def test_a_placement_the_server_answers_with_200_is_an_existing_order(recorder) -> None:
    existing = b'{"success":true,"message":"the order exists","dataVersion":"1","data":{"id":7}}'
    recorder.answers.extend([(201, ENVELOPE), (200, existing)])
    client = SpotClient(_url(recorder), "AKID", SECRET)

    first = client.place("usdt", "btc", "buy", "limit", "1", price="10", client_order_id="a")
    again = client.place("usdt", "btc", "buy", "limit", "1", price="10", client_order_id="a")

    assert (first.status, first.existing) == (201, False)
    assert (again.status, again.existing, again.data, again.message) == (200, True, {"id": 7}, "the order exists")
    assert client.balances().existing is False  # only a placement's 200 means an existing order


def test_an_error_envelope_gives_its_message_and_field_errors(recorder) -> None:
    error = (
        b'{"success":false,"message":"orders[1]: must be positive","dataVersion":"1","data":null,'
        b'"errors":{"orders[1].price":["must be positive"]}}'
    )
    recorder.answers.append((400, error))
    client = SpotClient(_url(recorder), "AKID", SECRET)

    response = client.place_batch("usdt", "btc", [{"trade_type": "buy", "type": "market", "quantity": "1"}])

    assert recorder.requests[0][:2] == ("POST", "/api/v1/orders/batch")
    assert recorder.requests[0][3] == (
        b'{"currency":"usdt","coin":"btc","orders":[{"trade_type":"buy","type":"market","quantity":"1"}]}'
    )
    assert (response.status, response.ok, response.existing) == (400, False, False)
    assert response.data is None
    assert response.message == "orders[1]: must be positive"
    assert response.errors == {"orders[1].price": ["must be positive"]}


def test_each_convenience_sends_its_route_under_api_v1(recorder) -> None:
    client = SpotClient(_url(recorder), "AKID", SECRET)

    client.cancel(7)
    client.cancel(client_order_id="bot 1/2")
    client.cancel_all(currency="usdt")
    client.cancel_by_type("stop_limit", currency="usdt", coin="btc")
    client.pending(currency="usdt", coin=None, page=2)
    client.history("usdt", "executed", coin="btc", limit=5)
    client.order(7)
    client.order(client_order_id="bot 1/2")
    client.transactions(currency="usdt")
    client.balances()
    client.markets()
    client.book("usdt", "btc")
    client.trades("usdt", "btc", count=5)

    assert [(method, target, body) for method, target, _, body in recorder.requests] == [
        ("PUT", "/api/v1/orders/7/cancel", b""),
        ("PUT", "/api/v1/orders/cancel", b'{"client_order_id":"bot 1/2"}'),
        ("PUT", "/api/v1/orders/cancel-all", b'{"currency":"usdt"}'),
        ("PUT", "/api/v1/orders/cancel-by-type", b'{"type":"stop_limit","currency":"usdt","coin":"btc"}'),
        ("GET", "/api/v1/orders/pending?currency=usdt&page=2", b""),
        ("GET", "/api/v1/orders/usdt/executed?coin=btc&limit=5", b""),
        ("GET", "/api/v1/orders/detail/7", b""),
        ("GET", "/api/v1/orders/detail?client_order_id=bot+1%2F2", b""),
        ("GET", "/api/v1/orders/transactions?currency=usdt", b""),
        ("GET", "/api/v1/balances", b""),
        ("GET", "/api/v1/markets", b""),
        ("GET", "/api/v1/orders/order-book?currency=usdt&coin=btc", b""),
        ("GET", "/api/v1/orders/transactions/recent?currency=usdt&coin=btc&count=5", b""),
    ]


def test_an_order_is_named_by_its_id_or_its_client_order_id_not_both_nor_neither(recorder) -> None:
    client = SpotClient(_url(recorder), "AKID", SECRET)

    for call in (client.cancel, client.order):
        with pytest.raises(ValueError, match="exactly one"):
            call()
        with pytest.raises(ValueError, match="exactly one"):
            call(7, client_order_id="a")
    assert recorder.requests == []


def test_it_signs_the_query_string_as_sent_under_a_base_url_prefix(recorder) -> None:
    client = SpotClient(_url(recorder) + "/exchange/", "AKID", SECRET)

    client.pending(currency="usdt", coin="btc", trade_type=None, limit=5)

    _, target, headers, _ = recorder.requests[0]
    assert target == "/exchange/api/v1/orders/pending?currency=usdt&coin=btc&limit=5"
    assert headers["X-API-Signature"] == sign(
        SECRET,
        headers["X-API-Timestamp"],
        "GET",
        "/exchange/api/v1/orders/pending",
        "currency=usdt&coin=btc&limit=5",
        b"",
    )


def test_two_identical_requests_never_share_a_signature(recorder) -> None:
    client = SpotClient(_url(recorder), "AKID", SECRET)
    for _ in range(20):  # faster than the clock's milliseconds
        client.balances()

    timestamps = [int(headers["X-API-Timestamp"]) for _, _, headers, _ in recorder.requests]
    assert timestamps == sorted(set(timestamps))
    assert len({headers["X-API-Signature"] for _, _, headers, _ in recorder.requests}) == 20


def test_it_keeps_one_connection_alive_between_requests(recorder) -> None:
    client = SpotClient(_url(recorder), "AKID", SECRET)
    client.balances()
    first = client._conn
    client.book("usdt", "btc")
    assert client._conn is first and first is not None


def test_a_connection_the_server_dropped_is_replaced_and_the_same_request_sent_again(recorder) -> None:
    client = SpotClient(_url(recorder), "AKID", SECRET)
    client.balances()
    recorder.drop_next.append(True)

    response = client.cancel(7)

    assert response.status == 200
    assert [r[:2] for r in recorder.requests] == [("GET", "/api/v1/balances"), ("PUT", "/api/v1/orders/7/cancel")]


def test_an_idle_connection_is_replaced_before_use(recorder, monkeypatch) -> None:
    client = SpotClient(_url(recorder), "AKID", SECRET)
    client.balances()
    first = client._conn
    monkeypatch.setattr(client_module, "IDLE_RECONNECT_S", 0.0)

    client.balances()

    assert client._conn is not first


def test_a_fresh_connection_that_fails_is_not_retried(recorder) -> None:
    client = SpotClient(_url(recorder), "AKID", SECRET)
    recorder.drop_next.append(True)

    with pytest.raises(ConnectionError):
        client.balances()
    assert recorder.requests == []


def test_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="base_url"):
        SpotClient("ftp://example", "AKID", SECRET)
