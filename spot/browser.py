"""Django's browser middleware (sessions, CSRF, ``request.user``, messages), skipped for signed API
requests.

A bot's request under ``/api/`` signed with an API key (it carries ``X-API-Key``) authenticates by its
signature alone (``orders.authentication``): it has no session cookie to load, nothing to protect
from cross-site forgery (a browser cannot sign it), no lazy ``request.user`` that anything reads
before DRF sets it, and no messages to show. Each middleware here is Django's own, which runs
unchanged for every other request (the admin, a person signed in with a session, the login itself),
so a session-authenticated request still gets its CSRF check.

"Signed API request" is decided by the view too: the request carries ``X-API-Key``, its path is
under ``/api/`` and the view it resolves to authenticates by key (one of its DRF authentication
classes says ``signed_by_key = True``). The login and key-management views, which work on the
session, keep their middleware whatever headers a client sends them. A request that claims a key but
fails its signature is answered 401 by ``ApiKeyAuthentication``: the session is never consulted for
it, with or without these middleware.
"""

from __future__ import annotations

import functools
from typing import Any

from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as messages_middleware
from django.contrib.sessions import middleware as sessions_middleware
from django.http import HttpRequest, HttpResponse
from django.middleware import csrf
from django.urls import Resolver404, resolve

API_PREFIX = "/api/"


def signed_api_request(request: HttpRequest) -> bool:
    """Whether the request is an API request signed with a key: ``X-API-Key``, under ``/api/``, to a
    view that authenticates by key. Costs a URL resolution for such requests only (the handler
    resolves the path again; a few microseconds); the answer is kept on the request."""
    cached = getattr(request, "_signed_api", None)
    if cached is not None:
        return bool(cached)
    signed = "HTTP_X_API_KEY" in request.META and request.path_info.startswith(API_PREFIX)
    if signed:
        try:
            signed = _view_takes_keys(resolve(request.path_info).func)
        except Resolver404:
            signed = False  # a 404 page: Django's middleware as usual
    request._signed_api = signed
    return signed


@functools.lru_cache(maxsize=256)
def _view_takes_keys(view: Any) -> bool:
    classes = getattr(getattr(view, "cls", None), "authentication_classes", ())
    return any(getattr(cls, "signed_by_key", False) for cls in classes)


class _SkipForSignedApi:
    """Passes a signed API request straight to the next middleware (no ``process_request`` or
    ``process_response`` of its own); any other request goes through Django's middleware as usual."""

    get_response: Any

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if signed_api_request(request):
            return self.get_response(request)
        return super().__call__(request)


class SessionMiddleware(_SkipForSignedApi, sessions_middleware.SessionMiddleware):
    """Django's, but no session is read or saved for a signed API request."""


class CsrfViewMiddleware(_SkipForSignedApi, csrf.CsrfViewMiddleware):
    """Django's, but no CSRF cookie is read or set and no token is checked for a signed API request
    (DRF's views are CSRF-exempt as views; ``SessionAuthentication`` checks the token of a session
    request itself, so a session request is still refused without it)."""

    def process_view(self, request: HttpRequest, callback: Any, callback_args: Any, callback_kwargs: Any) -> Any:
        if signed_api_request(request):
            return None
        return super().process_view(request, callback, callback_args, callback_kwargs)


class AuthenticationMiddleware(_SkipForSignedApi, auth_middleware.AuthenticationMiddleware):
    """Django's, but no lazy session user for a signed API request: DRF sets ``request.user`` from the
    key once the signature is checked."""


class MessageMiddleware(_SkipForSignedApi, messages_middleware.MessageMiddleware):
    """Django's, but no message storage for a signed API request."""
