"""spot.browser: Django's session, CSRF, auth and messages middleware do no work for a request signed
with an API key, and all of theirs for every other request (a session still needs its CSRF token)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django.urls import reverse

from spot import browser
from tests.factories import UserFactory

SIGNED = {"HTTP_X_API_KEY": "k" * 24, "HTTP_X_API_TIMESTAMP": "1", "HTTP_X_API_SIGNATURE": "0" * 64}


def through(middleware_class: type, request: HttpRequest) -> HttpResponse:
    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    return middleware_class(view)(request)  # type: ignore[no-any-return]


def test_a_signed_request_to_an_order_route_gets_no_session_user_or_messages():
    request = RequestFactory().post(reverse("orders:orders"), data=b"{}", content_type="application/json", **SIGNED)
    for middleware in (browser.SessionMiddleware, browser.AuthenticationMiddleware, browser.MessageMiddleware):
        through(middleware, request)

    assert browser.signed_api_request(request)
    assert not hasattr(request, "session") and not hasattr(request, "user") and not hasattr(request, "_messages")


def test_the_same_request_without_a_key_gets_all_of_them():
    request = RequestFactory().post(reverse("orders:orders"), data=b"{}", content_type="application/json")
    for middleware in (browser.SessionMiddleware, browser.AuthenticationMiddleware, browser.MessageMiddleware):
        through(middleware, request)

    assert not browser.signed_api_request(request)
    assert hasattr(request, "session") and hasattr(request, "user") and hasattr(request, "_messages")


def test_a_key_header_on_the_login_route_does_not_skip_the_session():
    # The login works on the session whatever a client sends with it: skipping would break it (500).
    request = RequestFactory().post(reverse("orders:session"), data=b"{}", content_type="application/json", **SIGNED)
    through(browser.SessionMiddleware, request)
    assert hasattr(request, "session") and not browser.signed_api_request(request)


def test_a_key_header_outside_the_api_does_not_skip_anything():
    request = RequestFactory().get("/admin/", **SIGNED)
    through(browser.SessionMiddleware, request)
    assert hasattr(request, "session") and not browser.signed_api_request(request)


def test_a_signed_request_sets_no_csrf_cookie_and_a_session_one_is_still_checked(db):
    factory = RequestFactory()
    signed = factory.post(reverse("orders:orders"), data=b"{}", content_type="application/json", **SIGNED)
    signed.META["CSRF_COOKIE_NEEDS_UPDATE"] = True  # what rotating the token asks for
    response = through(browser.CsrfViewMiddleware, signed)
    assert "csrftoken" not in response.cookies

    def plain_view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    unsigned = factory.post("/admin/login/", data={"username": "x"})
    unsigned._dont_enforce_csrf_checks = False  # type: ignore[attr-defined]
    refused = browser.CsrfViewMiddleware(plain_view).process_view(unsigned, plain_view, (), {})
    assert refused is not None and refused.status_code == 403


def test_a_session_post_over_the_full_stack_still_needs_its_csrf_token(db):
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory())

    refused = client.post(reverse("orders:orders"), data={}, content_type="application/json")

    assert refused.status_code == 403 and "CSRF" in refused.json()["message"]
