"""No input gets a 5xx, and every error under /api/ is JSON in the error envelope (issue 9, item 4;
issue 10: the envelope, /api/v1).

Each class of input that used to answer 500 (a JSON number no Decimal holds, deep nesting, an unpaired
surrogate, a charset that is not a text encoding in the query or in a form) and each rough edge
(unrouted paths, 401/403/404/405/406/413/415 bodies, batch field names, market codes, amounts,
content types) has a test here; every refused request is checked to have written nothing.
"""

from __future__ import annotations

import http.client
import io
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.http import HttpResponse, HttpResponseNotFound, HttpResponseServerError
from django.test import RequestFactory
from rest_framework import exceptions
from rest_framework.test import APIClient

from orders.models import Balance, Order
from orders.selectors import market_find
from spot.envelope import DATA_VERSION, error_response
from spot.errors import exception_handler
from spot.http import JSON_MAX_DEPTH, ApiEdgeMiddleware
from tests.factories import MarketFactory

pytestmark = pytest.mark.django_db

# Codecs Python knows that are not text encodings (rot13 ... hex), text encodings the API does not take
# (utf-7, utf-16, idna), and a name that is no codec at all.
REFUSED_CHARSETS = ["rot13", "quopri", "zlib", "base64", "punycode", "hex", "uu", "utf-7", "utf-16", "idna", "nope"]


@pytest.fixture
def nothing_written(trader, redis_client) -> Iterator[None]:
    """After the test: no order, no hold, nothing on the market's stream."""
    yield
    assert Order.objects.count() == 0
    assert {b.asset: b.held for b in Balance.objects.filter(user=trader)} == {"usdt": 0, "btc": 0}
    assert redis_client.xlen("orders:btc_usdt") == 0


def _order(**fields: Any) -> dict[str, Any]:
    return {
        "currency": "usdt",
        "coin": "btc",
        "trade_type": "buy",
        "type": "limit",
        "quantity": "0.5",
        "price": "100.00",
        **fields,
    }


def _post_json(client: APIClient, path: str, body: bytes | str) -> Any:
    return client.post(path, body, content_type="application/json")


def _error(response: Any) -> dict[str, Any]:
    """The response's body, checked to be the error envelope; returns its ``message`` and, when some
    field is at fault, its ``errors``."""
    assert response["Content-Type"].startswith("application/json"), (response.status_code, response.content[:200])
    return _envelope_error(response.content)


def _envelope_error(content: bytes) -> dict[str, Any]:
    body = json.loads(content)
    assert set(body) == {"success", "message", "dataVersion", "data", "errors"}, body
    assert (body["success"], body["dataVersion"], body["data"]) == (False, DATA_VERSION, None), body
    assert isinstance(body["message"], str) and body["message"], body
    assert isinstance(body["errors"], dict) and all(
        isinstance(name, str) and messages and all(isinstance(m, str) for m in messages)
        for name, messages in body["errors"].items()
    ), body
    return {"message": body["message"], **({"errors": body["errors"]} if body["errors"] else {})}


# -- 1. a JSON number no Decimal can hold ------------------------------------------------------------


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize("field", ["quantity", "price"])
@pytest.mark.parametrize("number", ["1e99999999999999999999", "-1E+99999999999999999999", "1e-99999999999999999999"])
def test_a_json_number_with_a_huge_exponent_is_a_400_naming_its_field(api, field, number):
    body = json.dumps(_order(**{field: "PLACEHOLDER"})).replace('"PLACEHOLDER"', number)

    response = _post_json(api, "/api/v1/orders", body)

    assert response.status_code == 400
    assert list(_error(response)["errors"]) == [field]


@pytest.mark.usefixtures("nothing_written")
def test_a_json_number_too_large_for_the_columns_is_a_400_naming_its_field(api):
    response = _post_json(api, "/api/v1/orders", json.dumps(_order()).replace('"0.5"', "1e999999"))

    assert response.status_code == 400
    assert list(_error(response)["errors"]) == ["quantity"]


def test_a_json_number_with_an_exponent_is_taken_exactly(api, trader):
    response = _post_json(
        api, "/api/v1/orders", json.dumps(_order()).replace('"0.5"', "5E-1").replace('"100.00"', "1e2")
    )

    assert response.status_code == 201, response.content
    assert (Order.objects.get().quantity, Order.objects.get().price) == (Decimal("0.5"), Decimal("100"))


@pytest.mark.usefixtures("nothing_written")
def test_an_integer_longer_than_python_reads_is_a_400(api):
    response = _post_json(api, "/api/v1/orders", json.dumps(_order()).replace('"0.5"', "1" * 5000))

    assert response.status_code == 400
    _error(response)


# -- 2. deep nesting -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize(
    "body",
    [
        pytest.param("[" * 1000 + "]" * 1000, id="arrays x1000"),
        pytest.param('{"a":' * 1000 + "1" + "}" * 1000, id="objects x1000"),
        pytest.param("[" * 100_000, id="arrays x100000 unclosed"),
        pytest.param(json.dumps({**_order(), "x": [[[[[[[[[[]]]]]]]]]]}).replace("[]", "[" * 30 + "]" * 30), id="33"),
    ],
)
def test_json_nested_deeper_than_the_limit_is_a_400_saying_so(api, body):
    response = _post_json(api, "/api/v1/orders", body)

    assert response.status_code == 400
    assert "nesting too deep" in _error(response)["message"]


def test_json_nested_to_the_limit_is_read(api):
    inner = "[" * (JSON_MAX_DEPTH - 1) + "]" * (JSON_MAX_DEPTH - 1)  # inside the order object: the limit

    response = _post_json(api, "/api/v1/orders", json.dumps({**_order(), "x": "INNER"}).replace('"INNER"', inner))

    assert response.status_code == 201, response.content


# -- 3. unpaired surrogates ---------------------------------------------------------------------------


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize(
    "field", ["trade_type", "type", "time_in_force", "currency", "coin", "quantity", "price", "client_order_id"]
)
def test_an_unpaired_surrogate_in_a_string_is_a_400_naming_the_field(api, field):
    body = json.dumps(_order(**{field: "PLACEHOLDER"})).replace("PLACEHOLDER", "\\ud800")

    response = _post_json(api, "/api/v1/orders", body)

    assert response.status_code == 400
    error = _error(response)
    assert list(error["errors"]) == [field]
    assert "unpaired surrogate" in error["errors"][field][0]


@pytest.mark.usefixtures("nothing_written")
def test_an_unpaired_surrogate_in_a_batch_names_the_order_by_its_position(api):
    orders = [_order(), {**_order(), "type": "PLACEHOLDER"}]
    body = json.dumps({"currency": "usdt", "coin": "btc", "orders": orders}).replace("PLACEHOLDER", "x\\udfffx")

    response = _post_json(api, "/api/v1/orders/batch", body)

    assert response.status_code == 400
    assert list(_error(response)["errors"]) == ["orders[1].type"]


@pytest.mark.usefixtures("nothing_written")
def test_an_unpaired_surrogate_in_a_key_is_a_400(api):
    response = _post_json(api, "/api/v1/orders", json.dumps(_order()).replace('"currency"', '"\\udc00"', 1))

    assert response.status_code == 400
    assert "unpaired surrogate" in _error(response)["message"]


def test_a_surrogate_pair_is_one_character_and_is_fine(api):
    body = json.dumps(_order()).replace('"buy"', '"buy\\ud83d\\ude00"')  # an emoji: refused as a choice only

    response = _post_json(api, "/api/v1/orders", body)

    assert response.status_code == 400
    assert _error(response)["errors"] == {"trade_type": ["must be one of buy, sell"]}


def test_an_error_message_never_carries_an_unencodable_character(rf):
    response = exception_handler(exceptions.ValidationError({"type": ["\ud800 is not a valid choice"]}), {})

    assert response.data == {"message": "invalid input: type", "errors": {"type": ["? is not a valid choice"]}}


# -- 4 and 5. charsets -------------------------------------------------------------------------------


def _wsgi(
    method: str, path: str, query: str, content_type: str, body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """One request through the project's WSGI application (spot.wsgi), as gunicorn would make it."""
    from spot.wsgi import application

    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    started: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        started.update(status=int(status.split()[0]), headers=dict(headers))

    # As Django's test client does: the request's start and end must not close the test's connection,
    # which holds the test's transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        chunks = application(environ, start_response)
        try:
            body_out = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return started["status"], started["headers"], body_out


@pytest.mark.parametrize("charset", REFUSED_CHARSETS)
def test_a_charset_that_is_not_accepted_is_a_415_naming_it_before_django_reads_the_query(market, charset):
    status, headers, body = _wsgi("GET", "/api/v1/markets", "limit=1", f"text/plain; charset={charset}")

    assert status == 415
    assert headers["Content-Type"] == "application/json"
    assert _envelope_error(body) == {"message": f"charset '{charset}' is not supported: send utf-8"}


def test_a_content_type_django_cannot_read_is_a_415(market):
    status, _, body = _wsgi("GET", "/api/v1/markets", "limit=1", "text/plain; charset*=rot99''utf-8")

    assert status == 415
    assert _envelope_error(body) == {"message": "the Content-Type header is malformed"}


@pytest.mark.parametrize("charset", ["utf-8", "UTF8", "us-ascii", "latin-1", "ISO-8859-1"])
def test_a_text_charset_the_api_takes_passes(market, charset):
    status, _, body = _wsgi("GET", "/api/v1/markets", "limit=1", f"application/json; charset={charset}")

    assert status == 200, body
    assert [m["code"] for m in json.loads(body)["data"]] == ["btc_usdt"]


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize("charset", ["punycode", "rot13", "base64"])
def test_a_form_in_a_charset_that_is_not_accepted_is_a_415(api, charset):
    response = api.post(
        "/api/v1/orders", urlencode(_order()), content_type=f"application/x-www-form-urlencoded; charset={charset}"
    )

    assert response.status_code == 415
    assert charset in _error(response)["message"]


def test_a_form_in_latin_1_is_read(api):
    response = api.post(
        "/api/v1/orders", urlencode(_order()), content_type="application/x-www-form-urlencoded; charset=latin-1"
    )

    assert response.status_code == 201, response.content


# -- unrouted paths, methods, media types --------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "post", "delete", "put"])
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/orders/abc",
        "/api/v1/nope",
        "/api/v1/",
        "/api/",
        "/api/v1/orders/1/cancel/x",
        "/api/v1/markets/",
        "/api/orders",  # the unversioned routes of earlier releases are gone
        "/api/markets/btc_usdt/book",
        "/api/v2/orders",
    ],
)
def test_an_unrouted_api_path_is_a_json_404(api, method, path):
    response = getattr(api, method)(path)

    assert response.status_code == 404
    assert _error(response) == {"message": "not found"}


def test_a_wrong_method_is_a_json_405(api):
    response = api.put("/api/v1/orders", _order(), format="json")  # the old system's POST

    assert response.status_code == 405
    assert _error(response) == {"message": 'Method "PUT" not allowed.'}


def test_an_accept_header_nothing_can_render_is_a_json_406(api):
    response = api.get("/api/v1/balances", HTTP_ACCEPT="application/xml")

    assert response.status_code == 406
    _error(response)


@pytest.mark.parametrize("accept", ["*/*", "application/json", "application/*", "application/json; q=0.9, */*; q=0.1"])
def test_ordinary_accept_headers_get_json(api, accept):
    response = api.get("/api/v1/balances", HTTP_ACCEPT=accept)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize(
    "content_type",
    ["*/*", "application/*", "text/plain", "text/json", "application/xml", "multipart/form-data; boundary=x", ""],
)
def test_a_body_of_an_undeclared_media_type_is_a_json_415(api, content_type):
    response = api.generic("POST", "/api/v1/orders", json.dumps(_order()), content_type=content_type)

    assert response.status_code == 415
    assert "Unsupported media type" in _error(response)["message"]


@pytest.mark.usefixtures("nothing_written")
def test_malformed_json_is_a_400_in_the_error_shape(api):
    response = _post_json(api, "/api/v1/orders", b'{"currency": "usdt",')

    assert response.status_code == 400
    error = _error(response)
    assert error["message"].startswith("JSON parse error - ")
    assert "detail" not in error


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_constants_that_are_not_numbers_are_a_400(api, constant):
    response = _post_json(api, "/api/v1/orders", json.dumps(_order()).replace('"0.5"', constant))

    assert response.status_code == 400
    _error(response)


@pytest.mark.usefixtures("nothing_written")
def test_a_body_that_is_not_valid_utf_8_is_a_400(api):
    response = _post_json(api, "/api/v1/orders", json.dumps(_order()).encode().replace(b"buy", b"b\xffy"))

    assert response.status_code == 400
    assert _error(response)["message"] == "the body is not valid utf-8"


@pytest.mark.usefixtures("nothing_written")
def test_a_body_that_is_not_an_object_is_a_400(api):
    response = _post_json(api, "/api/v1/orders", b"[1, 2]")

    assert response.status_code == 400
    assert _error(response) == {"message": "Invalid data. Expected a dictionary, but got list."}


# -- sizes ---------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("nothing_written")
def test_a_body_over_the_limit_is_a_json_413_before_it_is_read(api, settings):
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 1_048_576
    body = json.dumps({**_order(), "padding": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE})

    response = _post_json(api, "/api/v1/orders", body)

    assert response.status_code == 413
    assert _error(response) == {"message": "the body is larger than 1048576 bytes"}


def test_a_body_at_the_limit_is_read(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    body = json.dumps({**_order(), "padding": ""})
    body = body.replace('"padding": ""', '"padding": "' + "x" * (4096 - len(body)) + '"')
    assert len(body) == 4096

    assert _post_json(api, "/api/v1/orders", body).status_code == 201


@pytest.mark.usefixtures("nothing_written")
def test_a_form_with_more_fields_than_the_limit_is_a_json_400(api, settings):
    fields = {**_order(), **{f"f{n}": "1" for n in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS)}}

    response = api.post("/api/v1/orders", urlencode(fields), content_type="application/x-www-form-urlencoded")

    assert response.status_code == 400
    assert _error(response) == {"message": "too many form fields: at most 1000"}


# -- 401, 403 --------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("nothing_written")
def test_missing_credentials_are_a_401_with_www_authenticate_in_the_error_shape(market):
    response = APIClient().post("/api/v1/orders", _order(), format="json")

    assert response.status_code == 401
    assert response["WWW-Authenticate"]
    assert _error(response) == {"message": "Authentication credentials were not provided."}


@pytest.mark.usefixtures("nothing_written")
def test_a_session_post_without_its_csrf_token_is_a_403_in_the_error_shape(trader):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(trader)

    response = client.post("/api/v1/orders", _order(), format="json")

    assert response.status_code == 403
    assert _error(response)["message"].startswith("CSRF Failed")


@pytest.mark.parametrize(
    ("exc", "status", "headers"),
    [
        (exceptions.ParseError(), 400, {}),
        (exceptions.AuthenticationFailed(), 401, {}),
        (exceptions.NotAuthenticated(), 401, {"WWW-Authenticate": "Signature"}),
        (exceptions.PermissionDenied(), 403, {}),
        (exceptions.NotFound(), 404, {}),
        (exceptions.MethodNotAllowed("PATCH"), 405, {}),
        (exceptions.NotAcceptable(), 406, {}),
        (exceptions.UnsupportedMediaType("text/plain"), 415, {}),
        (exceptions.Throttled(wait=3), 429, {"Retry-After": "3"}),
    ],
)
def test_every_drf_exception_is_rendered_in_the_error_shape_with_its_headers(exc, status, headers):
    if status == 401 and headers:
        exc.auth_header = headers["WWW-Authenticate"]  # what APIView sets from the authenticator

    response = exception_handler(exc, {})

    assert response.status_code == status
    assert set(response.data) == {"message"} and response.data["message"] == str(exc.detail)
    assert {name: response.headers[name] for name in headers} == headers


# -- markets -------------------------------------------------------------------------------------------


MARKET_DATA = ["/api/v1/orders/order-book", "/api/v1/orders/transactions/recent"]
# Spellings the collation would match to usdt/btc, and shapes no code has.
OTHER_SPELLINGS = ["USDT", "Usdt", "\u00fcsdt", "us dt", "usdt ", " usdt", "usdt\n", "\uff55sdt", "", "u" * 17]


@pytest.mark.parametrize("path", MARKET_DATA)
@pytest.mark.parametrize("currency", OTHER_SPELLINGS)
def test_market_data_of_another_spelling_is_a_400_naming_the_field(market, path, currency):
    response = APIClient().get(path, {"currency": currency, "coin": "btc"})

    assert response.status_code == 400
    assert list(_error(response)["errors"]) == ["currency"]


@pytest.mark.parametrize("path", MARKET_DATA)
def test_market_data_of_an_unknown_pair_is_a_400_naming_both_fields(market, path):
    response = APIClient().get(path, {"currency": "usdt", "coin": "eth"})

    assert response.status_code == 400
    message = "unknown market: no market trades eth against usdt"
    assert _error(response) == {"message": message, "errors": {"currency": [message], "coin": [message]}}


@pytest.mark.parametrize("path", MARKET_DATA)
def test_a_disabled_market_still_has_a_book_and_trades(redis_client, path):
    MarketFactory(coin="doge", currency="usdt", enabled=False)

    assert APIClient().get(path, {"currency": "usdt", "coin": "doge"}).status_code == 200


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize("coin", ["BTC", "bt\u00e7", "bt c", " btc", "btc\n", "\uff42\uff54\uff43", "btc_usdt"])
@pytest.mark.parametrize("path", ["/api/v1/orders", "/api/v1/orders/batch"])
def test_a_coin_in_another_spelling_places_nothing(api, coin, path):
    order = _order(coin=coin)
    body = order if path == "/api/v1/orders" else {"currency": "usdt", "coin": coin, "orders": [order]}

    response = api.post(path, body, format="json")

    assert response.status_code == 400
    assert list(_error(response)["errors"]) == ["coin"]


def test_market_codes_are_matched_exactly_whatever_the_collation(market):
    assert market_find("btc_usdt") == market
    assert [market_find(code) for code in ["BTC_USDT", "btç_üsdt", "btc _usdt", "btc_usdt\n"]] == [None] * 4


@pytest.mark.parametrize("path", ["/api/v1/orders/pending", "/api/v1/orders/transactions", "/api/v1/orders/usdt/all"])
def test_the_lists_refuse_a_coin_in_another_spelling(api, path):
    response = api.get(path, {"coin": "BTC"})

    assert response.status_code == 400
    assert list(_error(response)["errors"]) == ["coin"]


@pytest.mark.parametrize("currency", ["USDT", "\u00fcsdt", "us%20dt"])
def test_the_history_of_a_currency_in_another_spelling_is_a_404_naming_it(api, market, currency):
    response = api.get(f"/api/v1/orders/{currency}/all")

    assert response.status_code == 404
    assert list(_error(response)["errors"]) == ["currency"]


# -- amounts and counts ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize(
    "value",
    [
        "0.000_1",
        "1_000",
        "\u0661",  # ARABIC-INDIC DIGIT ONE
        "\uff11",  # FULLWIDTH DIGIT ONE
        "\u0967.5",  # DEVANAGARI DIGIT ONE
        " 1",
        "1 ",
        " ",
        "+1",
        "1e-1",
        "1.",
        ".5",
        "0x10",
        "NaN",
        "nan",
        "Infinity",
        "-Infinity",
        "",
        True,
        False,
        [],
        {},
        [1],
    ],
)
@pytest.mark.parametrize("field", ["quantity", "price"])
def test_an_amount_that_is_not_an_ascii_decimal_or_a_json_number_is_a_400_naming_it(api, field, value):
    response = api.post("/api/v1/orders", _order(**{field: value}), format="json")

    assert response.status_code == 400
    assert list(_error(response)["errors"]) == [field]


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize("value", ["0.000_1", "\u0661", "\uff11", " 1", "+1", "NaN"])
def test_a_form_amount_follows_the_same_rules(api, value):
    response = api.post(
        "/api/v1/orders", urlencode(_order(quantity=value)), content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 400
    assert list(_error(response)["errors"]) == ["quantity"]


# An empty query value is no value (as in a form): the default applies.
@pytest.mark.parametrize("value", ["\u0661\u0660", "1_0", " 10", "10 ", "+10", "1e1", "10.0", "0x1", "-1"])
@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/v1/orders/pending", "limit"),
        ("/api/v1/orders/pending", "page"),
        ("/api/v1/orders/usdt/all", "limit"),
        ("/api/v1/orders/usdt/all", "start_date"),
        ("/api/v1/orders/transactions", "page"),
        ("/api/v1/orders/transactions", "end_date"),
        ("/api/v1/orders/transactions/recent", "count"),
    ],
)
def test_a_count_or_date_that_is_not_ascii_digits_is_a_400_naming_it(api, market, path, name, value):
    response = api.get(path, {"currency": "usdt", "coin": "btc", name: value})

    assert response.status_code == 400
    assert list(_error(response)["errors"]) == [name]


# -- the middleware's own net -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "status", "message"),
    [
        (HttpResponseNotFound("<h1>Not Found</h1>"), 404, "not found"),
        (HttpResponseServerError("<h1>Server Error (500)</h1>"), 500, "internal server error"),
        (HttpResponse("<h1>Bad Request (400)</h1>", status=400), 400, "bad request"),
    ],
)
def test_an_html_error_page_under_api_becomes_the_error_shape(page, status, message):
    page["X-Correlation-ID"] = "20260123-a1b2c3d4e5f67890"
    middleware = ApiEdgeMiddleware(lambda request: page)

    response = middleware(RequestFactory().get("/api/v1/orders"))

    assert response.status_code == status
    assert json.loads(response.content) == {
        "success": False,
        "message": message,
        "dataVersion": DATA_VERSION,
        "data": None,
        "errors": {},
    }
    assert response["X-Correlation-ID"] == "20260123-a1b2c3d4e5f67890"


def test_an_html_error_page_outside_api_stays_as_it_is():
    page = HttpResponseNotFound("<h1>Not Found</h1>")

    assert ApiEdgeMiddleware(lambda request: page)(RequestFactory().get("/admin/nope")) is page


# -- a real web process ------------------------------------------------------------------------------------


@pytest.fixture
def web(tmp_path) -> Iterator[Any]:
    from tests.spot.conftest import WebServer

    server = WebServer(tmp_path / "web", workers=1)
    yield server
    server.stop()


def _http(port: int, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body or None, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_gunicorn_answers_bad_input_from_anyone_with_json_and_no_5xx(web, market):
    # Unauthenticated: the charset refusal comes before Django builds the request, let alone
    # authenticates it (without spot.wsgi's guard the first four answered 500).
    cases: list[tuple[str, str, dict[str, str], bytes, int]] = [
        ("GET", "/api/v1/markets?limit=1", {"Content-Type": "text/plain; charset=rot13"}, b"", 415),
        ("GET", "/api/v1/orders/pending?x=1", {"Content-Type": "application/json; charset=base64"}, b"", 415),
        (
            "POST",
            "/api/v1/orders",
            {"Content-Type": "application/x-www-form-urlencoded; charset=punycode"},
            b"a=1",
            415,
        ),
        ("GET", "/health/live?x=1", {"Content-Type": "text/plain; charset=zlib"}, b"", 415),
        ("GET", "/api/v1/orders/order-book?currency=USDT&coin=btc", {}, b"", 400),
        ("GET", "/api/v1/orders/transactions/recent?currency=usdt&coin=btc&count=1e3", {}, b"", 400),
        ("GET", "/api/v1/orders/abc", {}, b"", 404),
        ("GET", "/api/orders", {}, b"", 404),
        ("PUT", "/api/v1/orders/cancel-all", {}, b"", 401),
        ("PUT", "/api/v1/markets", {}, b"", 405),
        ("POST", "/api/v1/orders", {"Content-Type": "application/json"}, b"x" * 1_048_577, 413),
    ]
    for method, path, headers, body, expected in cases:
        status, content = _http(web.port, method, path, headers, body)

        assert status == expected, (method, path, headers, status, content[:300])
        assert set(json.loads(content)) == {"success", "message", "dataVersion", "data", "errors"}, content[:300]
    assert "Traceback" not in web.errors()


def test_an_empty_price_in_a_form_is_no_price(api, trader, redis_client):
    publish = {"market": "btc_usdt", "bids": [], "asks": [["101", "1"]]}  # as the matcher publishes it
    redis_client.set("book:btc_usdt", json.dumps(publish))
    fields = _order(type="market", price="")

    response = api.post("/api/v1/orders", urlencode(fields), content_type="application/x-www-form-urlencoded")

    assert response.status_code == 201, response.content
    assert Order.objects.get().price is None


@pytest.mark.parametrize("order_id", ["99999999999999999999999", "0", "00001", "x", "null,null", "-1", "1.0", "%C3%A9"])
def test_an_order_id_out_of_any_range_is_a_404(api, order_id, redis_client):
    for method, path in (("get", f"/api/v1/orders/detail/{order_id}"), ("put", f"/api/v1/orders/{order_id}/cancel")):
        response = getattr(api, method)(path)

        assert response.status_code == 404
        _error(response)


# -- ioc, client_order_id, PUT bodies ------------------------------------------------------------------------


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize("value", ["true", "on", "2", "01", " 1", "1 ", "\u0661", "-0"])
def test_a_form_ioc_is_0_or_1_too(api, value):
    response = api.post(
        "/api/v1/orders", urlencode(_order(ioc=value)), content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 400
    assert list(_error(response)["errors"]) == ["ioc"]


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize("client_order_id", ["\x7f", "\x00", "a\u00e9", "\U0001f600", "x" * 37])
def test_a_client_order_id_outside_printable_ascii_places_nothing(api, client_order_id):
    response = api.post("/api/v1/orders", _order(client_order_id=client_order_id), format="json")

    assert response.status_code == 400
    assert list(_error(response)["errors"]) == ["client_order_id"]


@pytest.mark.parametrize("client_order_id", [" ", "~", "x" * 36, "../..", "a/b?c=d&e#f", "%41"])
def test_any_printable_ascii_client_order_id_reads_back_through_the_query(api, client_order_id):
    placed = api.post("/api/v1/orders", _order(client_order_id=client_order_id), format="json")
    assert placed.status_code == 201, placed.content

    response = api.get("/api/v1/orders/detail", {"client_order_id": client_order_id})

    assert response.status_code == 200, response.content
    assert json.loads(response.content)["data"]["client_order_id"] == client_order_id


def test_a_put_body_may_be_a_form(api, trader, redis_client):
    api.post("/api/v1/orders", _order(client_order_id="f1"), format="json")

    response = api.put(
        "/api/v1/orders/cancel", urlencode({"client_order_id": "f1"}), content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 200, response.content
    assert redis_client.xlen("orders:btc_usdt") == 2


@pytest.mark.parametrize(
    "path", ["/api/v1/orders/cancel", "/api/v1/orders/cancel-all", "/api/v1/orders/cancel-by-type"]
)
def test_a_put_body_of_an_undeclared_media_type_is_a_json_415(api, market, path):
    response = api.generic("PUT", path, "{}", content_type="text/plain")

    assert response.status_code == 415
    _error(response)


def test_a_middleware_refusal_is_the_error_envelope_with_its_headers():
    response = error_response("too many failed authentications", 429, headers={"Retry-After": "7"})

    assert (response.status_code, response["Retry-After"], response["Content-Type"]) == (429, "7", "application/json")
    assert _envelope_error(response.content) == {"message": "too many failed authentications"}
