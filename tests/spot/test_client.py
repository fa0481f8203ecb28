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
    body = b'{"market":"btc_usdt","price":"30000.5"}'
    expected = hmac.new(
        SECRET.encode(),
        b"1700000000123\nPOST\n/api/orders\nlimit=5&market=btc_usdt\n" + body,
        hashlib.sha256,
    ).hexdigest()

    assert sign(SECRET, 1700000000123, "post", "/api/orders", "limit=5&market=btc_usdt", body) == expected
    # The same vector from `openssl dgst -sha256 -hmac`, so a change of the scheme shows here even if
    # both sides above changed with it.
    assert expected == "4443eb694e152c00d4d54334c13249710ddf6f589b10da394e909d99d92b1b05"


def test_signed_headers_carry_the_key_the_timestamp_and_the_signature() -> None:
    headers = signed_headers("AKID", SECRET, "GET", "/api/balances", now_ms=1700000000000)

    assert headers == {
        "X-API-Key": "AKID",
        "X-API-Timestamp": "1700000000000",
        "X-API-Signature": hmac.new(
            SECRET.encode(), b"1700000000000\nGET\n/api/balances\n\n", hashlib.sha256
        ).hexdigest(),
    }


def test_a_changed_byte_anywhere_changes_the_signature() -> None:
    base = sign(SECRET, 1, "GET", "/api/orders", "a=1", b"x")
    assert sign(SECRET, 2, "GET", "/api/orders", "a=1", b"x") != base
    assert sign(SECRET, 1, "PUT", "/api/orders", "a=1", b"x") != base
    assert sign(SECRET, 1, "GET", "/api/orderz", "a=1", b"x") != base
    assert sign(SECRET, 1, "GET", "/api/orders", "a=2", b"x") != base
    assert sign(SECRET, 1, "GET", "/api/orders", "a=1", b"y") != base
    assert sign(SECRET + "x", 1, "GET", "/api/orders", "a=1", b"x") != base


# -- on the wire -------------------------------------------------------------------------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers 200 with a fixed JSON body and records each request; keeps connections alive unless
    the server is told to drop the next one without answering."""

    protocol_version = "HTTP/1.1"
    requests: list[tuple[str, str, dict[str, str], bytes]]
    drop_next: list[bool]

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.server.drop_next:  # type: ignore[attr-defined]
            self.server.drop_next.pop()  # type: ignore[attr-defined]
            self.close_connection = True
            return  # closes without an answer, as a server closing an idle connection does
        self.server.requests.append((self.command, self.path, dict(self.headers), body))  # type: ignore[attr-defined]
        payload = b'{"price":"30000.5","n":0.1}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = _handle

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.requests = []  # type: ignore[attr-defined]
    server.drop_next = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: http.server.ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_it_sends_compact_json_with_decimals_as_plain_strings_and_signs_what_it_sends(recorder) -> None:
    client = SpotClient(_url(recorder), "AKID", SECRET)

    response = client.place("btc_usdt", "buy", "limit", Decimal("1E-8"), price=Decimal("30000.50"))

    method, target, headers, body = recorder.requests[0]
    assert (method, target) == ("POST", "/api/orders")
    assert body == b'{"market":"btc_usdt","trade_type":"buy","type":"limit","quantity":"0.00000001","price":"30000.50"}'
    assert headers["Content-Type"] == "application/json"
    assert headers["X-API-Key"] == "AKID"
    assert headers["X-API-Signature"] == sign(SECRET, headers["X-API-Timestamp"], "POST", "/api/orders", "", body)
    assert response.status == 200
    assert response.json() == {"price": "30000.5", "n": Decimal("0.1")}


def test_it_signs_the_query_string_as_sent(recorder) -> None:
    client = SpotClient(_url(recorder) + "/", "AKID", SECRET)

    client.orders(market="btc_usdt", status=None, limit=5)

    _, target, headers, _ = recorder.requests[0]
    assert target == "/api/orders?market=btc_usdt&limit=5"
    assert headers["X-API-Signature"] == sign(
        SECRET, headers["X-API-Timestamp"], "GET", "/api/orders", "market=btc_usdt&limit=5", b""
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
    client.book("btc_usdt")
    assert client._conn is first and first is not None


def test_a_connection_the_server_dropped_is_replaced_and_the_same_request_sent_again(recorder) -> None:
    client = SpotClient(_url(recorder), "AKID", SECRET)
    client.balances()
    recorder.drop_next.append(True)

    response = client.cancel(7)

    assert response.status == 200
    assert [r[:2] for r in recorder.requests] == [("GET", "/api/balances"), ("DELETE", "/api/orders/7")]


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
