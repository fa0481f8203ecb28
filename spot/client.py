"""A small client for the exchange's API (``/api/v1``, docs/API.md) with signed requests (API keys);
standard library only, so a bot can copy this one file.

The scheme (docs/API.md, "Authentication"): every request carries

- ``X-API-Key``: the key's public id,
- ``X-API-Timestamp``: milliseconds since the epoch, a decimal integer,
- ``X-API-Signature``: lowercase hex HMAC-SHA256 of the message below, keyed with the secret's UTF-8
  bytes, where the message is ``f"{timestamp}\\n{METHOD}\\n{path}\\n{query}\\n".encode() + body``: the
  path as sent (percent-encoded), the query string as sent without ``?`` ("" if none), the raw body
  bytes (b"" if none).

The server refuses a timestamp outside its receive window (5 s by default) and a signature it has
already seen, so a captured request cannot be replayed.

Every answer is the envelope ``{"success", "message", "dataVersion", "data"}`` (an error adds
``errors``, ``{field: [message, ...]}``); ``SpotResponse.data`` is its ``data``.

    from spot.client import SpotClient
    client = SpotClient("http://127.0.0.1:8000", key_id, secret)
    placed = client.place("usdt", "btc", "buy", "limit", Decimal("0.01"), price=Decimal("30000"),
                          client_order_id="bot-7-000123")
    placed.existing   # True when the server already had that client_order_id (and placed nothing)
    client.cancel(placed.data["id"])
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import time
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

__all__ = ["API_PREFIX", "SpotClient", "SpotResponse", "sign", "signed_headers", "signing_message"]

# Where the API lives on the server; the paths below are relative to it and signed in full.
API_PREFIX = "/api/v1"

# A connection idle longer than this is replaced before use rather than reused: gunicorn closes an
# idle keep-alive connection after 2 s (its default `keepalive`), and a request written into a socket
# the server is closing fails.
IDLE_RECONNECT_S = 1.5

ONE_NAME = "name the order by exactly one of order_id and client_order_id"

# Errors that mean the server closed a kept-alive connection under us.
_DROPPED = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


def signing_message(timestamp: int | str, method: str, path: str, query: str = "", body: bytes = b"") -> bytes:
    """The bytes a request's signature covers."""
    return f"{timestamp}\n{method.upper()}\n{path}\n{query}\n".encode() + body


def sign(secret: str | bytes, timestamp: int | str, method: str, path: str, query: str = "", body: bytes = b"") -> str:
    """The request's ``X-API-Signature``: lowercase hex HMAC-SHA256 of ``signing_message(...)``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, signing_message(timestamp, method, path, query, body), hashlib.sha256).hexdigest()


def signed_headers(
    key: str,
    secret: str | bytes,
    method: str,
    path: str,
    query: str = "",
    body: bytes = b"",
    now_ms: int | None = None,
) -> dict[str, str]:
    """The three authentication headers of one request; ``now_ms`` defaults to the clock."""
    timestamp = int(time.time() * 1000) if now_ms is None else now_ms
    return {
        "X-API-Key": key,
        "X-API-Timestamp": str(timestamp),
        "X-API-Signature": sign(secret, timestamp, method, path, query, body),
    }


class SpotResponse:
    """An answer: ``status``, ``headers`` (case-insensitive), the raw ``body`` and ``json()`` (the
    whole envelope); ``data``, ``message`` and ``errors`` read the envelope. ``existing`` is True only
    for a placement the server answered with an order it already had under the ``client_order_id``
    (200 instead of 201: nothing was placed)."""

    __slots__ = ("body", "existing", "headers", "status")

    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.existing = False

    def json(self) -> Any:
        """The body parsed; numbers with a fraction become ``Decimal`` (amounts are never floats)."""
        return json.loads(self.body, parse_float=Decimal)

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return 200 <= self.status < 300

    @property
    def data(self) -> Any:
        """The envelope's ``data`` (``None`` for an error)."""
        return self._envelope().get("data")

    @property
    def message(self) -> str | None:
        """The envelope's ``message``: the error's text, or a note such as "the order exists"."""
        return self._envelope().get("message")

    @property
    def errors(self) -> dict[str, list[str]]:
        """An error's messages by field (``orders[3].price``); empty when there are none."""
        return self._envelope().get("errors") or {}

    def _envelope(self) -> dict[str, Any]:
        envelope = self.json()
        if not isinstance(envelope, dict):
            raise ValueError(f"not an API envelope: {self.body[:200]!r}")
        return envelope

    def __repr__(self) -> str:
        return f"<SpotResponse {self.status} {self.body[:200]!r}>"


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")  # "0.00000001", never "1E-8"
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode_json(payload: Any) -> bytes:
    """A request body: compact JSON, ``Decimal`` amounts as plain decimal strings."""
    return json.dumps(payload, separators=(",", ":"), default=_json_default, ensure_ascii=False).encode()


class SpotClient:
    """One keep-alive HTTP(S) connection to the API, each request signed with the key.

    Not thread-safe: use one client per thread. A connection the server dropped is replaced and the
    request sent again once, byte for byte with the same signature; if the server did receive the first
    copy, it refuses the second as a replay (401), so a retry never places an order twice.
    """

    def __init__(self, base_url: str, key: str, secret: str | bytes, timeout: float = 10.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be http(s)://host[:port][/prefix], not {base_url!r}")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self.key = key
        self._secret = secret
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._last_used = 0.0
        self._last_ms = 0

    # -- the one request method ----------------------------------------------------------------------

    def request(self, method: str, path: str, params: dict[str, Any] | None = None, json: Any = None) -> SpotResponse:
        """Send a signed request to ``API_PREFIX + path``; ``params`` become the query string (``None``
        values left out), ``json`` the body. Returns whatever the server answered (no exception for
        4xx/5xx)."""
        method = method.upper()
        full_path = self._prefix + API_PREFIX + path
        query = urlencode({k: _param(v) for k, v in (params or {}).items() if v is not None})
        body = b"" if json is None else encode_json(json)
        # Two identical requests in one millisecond would have one signature, and the server refuses
        # the second as a replay: this client's timestamps only go up.
        self._last_ms = max(int(time.time() * 1000), self._last_ms + 1)
        headers = signed_headers(self.key, self._secret, method, full_path, query, body, now_ms=self._last_ms)
        headers["Accept"] = "application/json"
        if json is not None:
            headers["Content-Type"] = "application/json"
        target = f"{full_path}?{query}" if query else full_path
        return self._send(method, target, body, headers)

    # -- conveniences (paths under API_PREFIX, as docs/API.md lists them) ------------------------------

    def place(
        self,
        currency: str,
        coin: str,
        trade_type: str,
        type: str,
        quantity: Decimal | str,
        price: Decimal | str | None = None,
        *,
        base_price: Decimal | str | None = None,
        stop_condition: str | None = None,
        ioc: bool | int | None = None,
        client_order_id: str | None = None,
    ) -> SpotResponse:
        """``POST /orders``: 201 with the new order, or 200 with the order the user's
        ``client_order_id`` already names (``existing`` True; nothing placed), so a retry after a
        timeout never places twice. ``price`` for limit and stop_limit; ``base_price`` and
        ``stop_condition`` (``ge``/``le``) for the stop types; ``ioc`` 1 cancels what does not fill
        at once."""
        order: dict[str, Any] = {
            "currency": currency,
            "coin": coin,
            **_order_fields(trade_type, type, quantity, price, base_price, stop_condition, ioc, client_order_id),
        }
        response = self.request("POST", "/orders", json=order)
        response.existing = response.status == 200
        return response

    def place_batch(self, currency: str, coin: str, orders: list[dict[str, Any]]) -> SpotResponse:
        """``POST /orders/batch``: up to 50 orders of one market (each a dict of ``place``'s fields
        after ``coin``), all accepted or none; 201 with the orders, or 200 when every item's
        ``client_order_id`` names an existing order (``existing`` True)."""
        response = self.request("POST", "/orders/batch", json={"currency": currency, "coin": coin, "orders": orders})
        response.existing = response.status == 200
        return response

    def cancel(self, order_id: int | None = None, *, client_order_id: str | None = None) -> SpotResponse:
        """``PUT /orders/{id}/cancel``, or ``PUT /orders/cancel`` with the ``client_order_id``: 200,
        the matcher cancels it (the order shows ``canceled`` once applied)."""
        if order_id is not None and client_order_id is None:
            return self.request("PUT", f"/orders/{int(order_id)}/cancel")
        if client_order_id is not None and order_id is None:
            return self.request("PUT", "/orders/cancel", json={"client_order_id": client_order_id})
        raise ValueError(ONE_NAME)

    def cancel_all(self, currency: str | None = None, coin: str | None = None) -> SpotResponse:
        """``PUT /orders/cancel-all``: every open order of the user, or of one market."""
        return self.request("PUT", "/orders/cancel-all", json=_present(currency=currency, coin=coin))

    def cancel_by_type(self, type: str, currency: str | None = None, coin: str | None = None) -> SpotResponse:
        """``PUT /orders/cancel-by-type``: the user's open orders of one type (``limit``, ...)."""
        return self.request("PUT", "/orders/cancel-by-type", json=_present(type=type, currency=currency, coin=coin))

    def pending(self, **params: Any) -> SpotResponse:
        """``GET /orders/pending?currency=&coin=&trade_type=&page=&limit=``: the user's open orders."""
        return self.request("GET", "/orders/pending", params=params)

    def history(self, currency: str, status: str, **params: Any) -> SpotResponse:
        """``GET /orders/{currency}/{status}?coin=&type=&start_date=&end_date=&limit=&page=``."""
        return self.request("GET", f"/orders/{quote(currency, safe='')}/{quote(status, safe='')}", params=params)

    def order(self, order_id: int | None = None, *, client_order_id: str | None = None) -> SpotResponse:
        """``GET /orders/detail/{id}``, or ``GET /orders/detail?client_order_id=``: one of the user's
        orders."""
        if order_id is not None and client_order_id is None:
            return self.request("GET", f"/orders/detail/{int(order_id)}")
        if client_order_id is not None and order_id is None:
            return self.request("GET", "/orders/detail", params={"client_order_id": client_order_id})
        raise ValueError(ONE_NAME)

    def transactions(self, **params: Any) -> SpotResponse:
        """``GET /orders/transactions?currency=&coin=&start_date=&end_date=&page=&limit=``: the user's
        trades."""
        return self.request("GET", "/orders/transactions", params=params)

    def balances(self) -> SpotResponse:
        """``GET /balances``: per asset, total, held and available."""
        return self.request("GET", "/balances")

    def markets(self) -> SpotResponse:
        """``GET /markets`` (public)."""
        return self.request("GET", "/markets")

    def book(self, currency: str, coin: str) -> SpotResponse:
        """``GET /orders/order-book?currency=&coin=`` (public): ``buy``, ``sell``, ``updatedAt``,
        ``tickerSize``."""
        return self.request("GET", "/orders/order-book", params={"currency": currency, "coin": coin})

    def trades(self, currency: str, coin: str, count: int | None = None) -> SpotResponse:
        """``GET /orders/transactions/recent?currency=&coin=&count=`` (public): the market's latest
        trades."""
        return self.request(
            "GET", "/orders/transactions/recent", params={"currency": currency, "coin": coin, "count": count}
        )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> SpotClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------------------

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """The connection and whether it is a kept-alive one (which the server may have dropped)."""
        if self._conn is not None and time.monotonic() - self._last_used > IDLE_RECONNECT_S:
            self.close()
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self.timeout)
            return self._conn, False
        return self._conn, True

    def _send(self, method: str, target: str, body: bytes, headers: dict[str, str]) -> SpotResponse:
        for attempt in (1, 2):
            conn, reused = self._connection()
            try:
                conn.request(method, target, body=body or None, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except _DROPPED:
                self.close()
                if reused and attempt == 1:
                    continue  # the same bytes again: a replay if the first copy arrived (see the class)
                raise
            except BaseException:
                self.close()  # a timeout or an interrupt leaves the connection mid-exchange
                raise
            self._last_used = time.monotonic()
            if response.will_close:
                self.close()
            return SpotResponse(response.status, response.headers, data)
        raise AssertionError("unreachable")  # pragma: no cover


def _order_fields(
    trade_type: str,
    type: str,
    quantity: Decimal | str,
    price: Decimal | str | None,
    base_price: Decimal | str | None,
    stop_condition: str | None,
    ioc: bool | int | None,
    client_order_id: str | None,
) -> dict[str, Any]:
    """One order's fields as the API names them, those not given left out."""
    return {
        "trade_type": trade_type,
        "type": type,
        "quantity": quantity,
        **_present(
            price=price,
            base_price=base_price,
            stop_condition=stop_condition,
            ioc=None if ioc is None else int(bool(ioc)),
            client_order_id=client_order_id,
        ),
    }


def _present(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}


def _param(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
