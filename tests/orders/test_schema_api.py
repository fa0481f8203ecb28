"""The OpenAPI schema at /api/schema/ and the docs page at /api/docs/ (docs/API.md, "The schema and its
docs page"): generated without warnings, public, covering every API route with its error responses,
and a page that loads nothing from another host."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

ERROR_REF = "#/components/schemas/Error"
HOST = "localhost"


@pytest.fixture
def client() -> Client:
    return Client(HTTP_HOST=HOST)


@pytest.fixture
def schema(client) -> dict:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def api_routes() -> set[str]:
    """Every route under /api/ the URLconf serves, in OpenAPI's path syntax (``/api/v1/orders/{order_id}/cancel``),
    without the schema and docs routes themselves."""
    found: set[str] = set()

    def walk(patterns: list, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith("api/"):
                found.add("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route))

    walk(get_resolver().url_patterns, "")
    return found - {"/api/schema/", "/api/docs/"}


def test_the_schema_generates_and_validates_without_a_warning(tmp_path):
    # --fail-on-warn turns every drf-spectacular warning (an unguessable view, a type it cannot
    # resolve, colliding operation ids) into an error; --validate checks the result against the
    # OpenAPI 3 meta-schema.
    out = tmp_path / "openapi.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))

    assert out.read_text().startswith("openapi: 3.")


def test_the_schema_is_served_without_credentials(client):
    response = client.get("/api/schema/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")


def test_the_schema_documents_every_api_route(schema):
    documented = set(schema["paths"])

    assert api_routes() - documented == set()
    assert documented - api_routes() == set()


def test_every_operation_has_a_success_response_and_its_errors_in_the_one_error_shape(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            statuses = {int(code) for code in operation["responses"]}
            assert any(200 <= code < 300 for code in statuses), (method, path)
            errors = {code for code in statuses if code >= 400}
            assert 429 in errors and 503 in errors, (method, path, errors)
            for code in errors:
                content = operation["responses"][str(code)]["content"]
                assert content == {"application/json": {"schema": {"$ref": ERROR_REF}}}, (method, path, code)
            if "requestBody" in operation:
                assert {400, 413, 415} <= errors, (method, path)


def test_the_error_component_is_the_error_envelope_with_errors_by_field(schema):
    error = schema["components"]["schemas"]["Error"]

    assert sorted(error["required"]) == ["data", "dataVersion", "errors", "message", "success"]
    assert error["properties"]["message"]["type"] == "string"
    assert (error["properties"]["success"]["type"], error["properties"]["success"]["enum"]) == ("boolean", [False])
    assert (error["properties"]["data"]["nullable"], error["properties"]["data"]["enum"]) == (True, [None])
    assert error["properties"]["errors"]["additionalProperties"] == {"type": "array", "items": {"type": "string"}}


def test_every_success_of_the_api_is_documented_in_the_envelope(schema):
    wrapped = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if not code.startswith("2") or "content" not in response:
                    continue
                body = response["content"]["application/json"]["schema"]
                assert body["required"] == ["success", "message", "dataVersion", "data"], (method, path, code)
                assert set(body["properties"]) == {"success", "message", "dataVersion", "data"}, (method, path)
                wrapped += 1
    assert wrapped >= 20
    order = schema["paths"]["/api/v1/orders"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert order["properties"]["data"] == {"$ref": "#/components/schemas/Order"}


def test_the_security_schemes_are_the_signed_headers_and_the_session(schema):
    schemes = schema["components"]["securitySchemes"]

    headers = {schemes[name]["name"] for name in ("apiKey", "apiTimestamp", "apiSignature")}
    assert headers == {"X-API-Key", "X-API-Timestamp", "X-API-Signature"}
    assert all(schemes[name]["in"] == "header" for name in ("apiKey", "apiTimestamp", "apiSignature"))
    assert "{timestamp}\\n{METHOD}\\n{path}\\n{query}\\n" in schemes["apiKey"]["description"]
    assert schemes["cookieAuth"] == {**schemes["cookieAuth"], "type": "apiKey", "in": "cookie", "name": "sessionid"}
    assert "basicAuth" not in schemes


def test_an_order_route_takes_all_three_signed_headers_together_or_a_session(schema):
    security = schema["paths"]["/api/v1/orders"]["post"]["security"]

    assert {"apiKey": [], "apiTimestamp": [], "apiSignature": []} in security
    assert {"cookieAuth": []} in security
    assert {} not in security  # not public
    assert {} in schema["paths"]["/api/v1/markets"]["get"]["security"]  # public


def test_amount_inputs_are_ascii_decimal_strings_or_json_numbers(schema):
    place = schema["components"]["schemas"]["PlaceOrderRequest"]["properties"]

    for field in ("quantity", "price"):
        string, number = place[field]["oneOf"]
        assert string["type"] == "string" and number == {"type": "number", "example": 0.5}
        assert re.fullmatch(string["pattern"], "123.0001")
        for refused in ("1_000", "\u0661", "\uff11", "1e5", " 1", "", "-1"):
            assert not re.fullmatch(string["pattern"], refused), refused


def test_a_batch_holds_one_to_fifty_orders(schema):
    orders = schema["components"]["schemas"]["PlaceOrderBatchRequest"]["properties"]["orders"]

    assert (orders["minItems"], orders["maxItems"]) == (1, 50)


# -- the docs page -------------------------------------------------------------------------------------


class _Assets(HTMLParser):
    """The URLs of a page's scripts, stylesheets and icons."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script" and found.get("src"):
            self.urls.append(found["src"])
        elif tag == "link" and found.get("href"):
            self.urls.append(found["href"])


def page_assets(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    return parser.urls


def test_the_docs_page_loads_its_scripts_and_styles_from_this_host_only(client):
    response = client.get("/api/docs/")
    html = response.content.decode()
    assets = page_assets(html)

    assert response.status_code == 200
    assert any(url.endswith("swagger-ui-bundle.js") for url in assets), assets
    assert all(urlsplit(url).netloc in ("", HOST) for url in assets), assets
    # Nor anywhere else in the page (inline script included): no CDN, no internet needed.
    assert re.findall(r"https?://[^\s\"'<>]+", html) == []


def test_the_docs_page_assets_are_static_files_collectstatic_will_collect(client):
    static_prefix = "/static/"
    assets = page_assets(client.get("/api/docs/").content.decode())

    for url in assets:
        path = urlsplit(url).path
        assert path.startswith(static_prefix), url
        found = finders.find(path.removeprefix(static_prefix))
        assert found is not None and Path(found).stat().st_size > 0, url


@pytest.mark.slow
def test_gunicorn_serves_the_docs_page_and_every_file_it_loads_in_development(tmp_path):
    from tests.spot.conftest import WebServer

    # Development (DEBUG) is when the project serves static files itself (spot.urls,
    # staticfiles_urlpatterns); a deployment serves STATIC_ROOT after collectstatic.
    server = WebServer(tmp_path, workers=1, env={"DJANGO_DEBUG": "true"})
    try:
        page = server.get("/api/docs/")
        assets = page_assets(page.text)
        served = {url: server.get(url) for url in assets}
    finally:
        server.stop()

    assert page.status == 200
    assert len(assets) >= 3, assets
    for url, response in served.items():
        assert response.status == 200, url
        assert len(response.body) > 0, url
    script = next(url for url in assets if url.endswith(".js"))
    assert served[script].headers["Content-Type"].startswith(("text/javascript", "application/javascript"))
