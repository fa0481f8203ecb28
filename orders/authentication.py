"""Signed requests with API keys (docs/API.md, "Authentication"), and the scope each request needs.

A request carries ``X-API-Key``, ``X-API-Timestamp`` (ms since the epoch) and ``X-API-Signature``:
lowercase hex HMAC-SHA256, keyed with the key's secret, of
``f"{timestamp}\\n{METHOD}\\n{path}\\n{query}\\n".encode() + body`` (``spot.client.signing_message``).
Refusals are 401 and say which check failed; an id that matches no active key is only ever "unknown
or revoked". The checks cost no password hash and, on a warm cache, no DB query and one Redis round
trip (``orders.apikeys.api_key_lookup``), which also checks the request's rate limits (the address's
authentication failures, the key's trading or read limit: ``spot.ratelimit.signed_request_limits``).
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.contrib.auth import get_user_model
from django.http.request import RawPostDataException
from django.utils.encoding import escape_uri_path
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from orders.models import ApiKeyScope
from spot.client import signing_message
from spot.ratelimit import deferred_auth_failure_refusal, signed_request_limits, signed_request_refusal

if TYPE_CHECKING:
    from orders.apikeys import KeyRecord

logger = logging.getLogger(__name__)

HEADERS = ("X-API-Key", "X-API-Timestamp", "X-API-Signature")
_META = {header: "HTTP_" + header.upper().replace("-", "_") for header in HEADERS}
_KEY_ID = re.compile(r"[A-Za-z0-9]{1,32}")  # the column's length; ids are KEY_ID_LENGTH
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,15}")  # ms since the epoch: 13 digits until the year 2286


@dataclass(frozen=True, slots=True)
class ApiKeyAuth:
    """``request.auth`` of a request signed with a key."""

    key_id: str
    user_id: int
    scopes: frozenset[str]
    # Waits (ms) of the rate limits checked in the key lookup, by scope: the throttles use these
    # instead of asking Redis again (spot.ratelimit.signed_request_limits).
    limit_waits: dict[str, int] = field(default_factory=dict)


class ApiKeyAuthentication(BaseAuthentication):
    """DRF authentication by signed request. A request without any of the three headers is not this
    scheme's (``None``: the session may authenticate it); with some or all of them, it succeeds or
    answers 401 naming the reason."""

    # spot.browser skips the session, CSRF, auth and messages middleware for a request with
    # X-API-Key to a view that authenticates with this class: the signature alone decides.
    signed_by_key = True

    def authenticate(self, request: Request) -> tuple[Any, ApiKeyAuth] | None:
        meta = request._request.META
        key_id, timestamp, signature = (meta.get(_META[header]) for header in HEADERS)
        if key_id is None and timestamp is None and signature is None:
            return None
        missing = [h for h, v in zip(HEADERS, (key_id, timestamp, signature), strict=True) if not v]
        if missing:
            raise _early_refusal(request, f"missing header {', '.join(missing)}")
        assert key_id is not None and timestamp is not None and signature is not None

        if not _TIMESTAMP.fullmatch(timestamp):
            raise _early_refusal(request, "malformed X-API-Timestamp: milliseconds since the epoch, digits only")
        window = settings.API_RECV_WINDOW_MS
        skew = int(timestamp) - int(time.time() * 1000)
        if skew < -window:
            raise _early_refusal(request, f"timestamp too old: more than {window} ms before the server's clock")
        if skew > window:
            raise _early_refusal(request, f"timestamp in the future: more than {window} ms after the server's clock")
        if not _KEY_ID.fullmatch(key_id):
            raise _early_refusal(request, "unknown or revoked API key")
        if not _SIGNATURE.fullmatch(signature):
            raise _early_refusal(request, "bad signature: X-API-Signature must be 64 lowercase hex digits")

        # Imported here, not at the top: DRF imports this module while `rest_framework.views` loads
        # (its settings name it), and orders.apikeys imports modules that import that.
        from orders.apikeys import api_key_lookup

        # The address's authentication failures and the key's rate limit ride on the lookup's round trip.
        lookup = api_key_lookup(key_id, signature, window, signed_request_limits(request._request, key_id))
        refusal = signed_request_refusal(lookup.waits)
        if refusal is not None:
            raise refusal
        record, fresh = lookup.record, lookup.fresh
        if record is None:
            raise AuthenticationFailed("unknown or revoked API key")
        try:
            secret = record.secret()
        except InvalidToken:
            # An operator removed the encryption key this secret was stored under: say so in the log,
            # not to the client.
            logger.error("API key %s: no key of API_KEY_ENCRYPTION_KEYS decrypts its secret", key_id)
            raise AuthenticationFailed("unknown or revoked API key") from None
        path, query = _target(request)
        try:
            body = request._request.body  # the raw bytes; Django keeps them for DRF's parsers
        except RawPostDataException:
            raise AuthenticationFailed("the body was consumed before its signature could be checked") from None
        message = signing_message(timestamp, request._request.method or "", path, query, body)
        expected = hmac.new(secret, message, "sha256").hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise AuthenticationFailed(
                "bad signature: it does not match the key's secret over timestamp, method, path, query and body"
            )
        if not record.allows(_client_address(request)):
            raise AuthenticationFailed("this API key does not allow requests from this IP address")
        if not fresh:
            raise AuthenticationFailed("replayed request: this signature was already used")
        return _user(record), ApiKeyAuth(record.key_id, record.user_id, record.scopes, lookup.waits)

    def authenticate_header(self, request: Request) -> str:
        # DRF answers 401 (not 403) with this as WWW-Authenticate when credentials are missing.
        return 'X-API-Signature realm="api", headers="X-API-Key X-API-Timestamp X-API-Signature"'


class HasKeyScope(BasePermission):
    """A request signed with a key needs the key's ``read`` scope for GET/HEAD/OPTIONS and ``trade``
    for anything else (placing, canceling). A session user has every scope."""

    message = "this API key lacks the scope this request needs"

    def has_permission(self, request: Request, view: Any) -> bool:
        auth = request.auth
        if not isinstance(auth, ApiKeyAuth):
            return True
        needed = ApiKeyScope.READ if request.method in SAFE_METHODS else ApiKeyScope.TRADE
        if needed in auth.scopes:
            return True
        self.message = f"this API key lacks the {needed} scope"
        return False


def _early_refusal(request: Request, message: str) -> Exception:
    """The 401 of a request refused before its key lookup, or the 429 of an address over its
    authentication failures: the middleware left that check to the lookup, which this request never
    reaches, so it is made here (a refused request's second round trip)."""
    refusal = deferred_auth_failure_refusal(request._request)
    return refusal if refusal is not None else AuthenticationFailed(message)


def _target(request: Request) -> tuple[str, str]:
    """The request's path (percent-encoded, as the client sent it) and raw query string.

    gunicorn passes the request line's target as ``RAW_URI``; elsewhere (the test client, other
    servers) the decoded path is encoded again as Django does it, which is what a client sends for
    any path this API has.
    """
    meta = request._request.META
    raw = meta.get("RAW_URI") or meta.get("REQUEST_URI")
    if raw and raw.startswith("/"):
        path, _, query = raw.partition("?")
        return path, query
    return escape_uri_path(request._request.path), meta.get("QUERY_STRING", "")


def _client_address(request: Request) -> str:
    """The address an allowlist is checked against: ``REMOTE_ADDR``, or behind ``NUM_PROXIES``
    trusted proxies the one the nearest proxy wrote in ``X-Forwarded-For`` (DRF's rule, as the rate
    limits use). Unset, DRF would believe the whole header, which any client can write: not here."""
    if api_settings.NUM_PROXIES is None:
        return str(request._request.META.get("REMOTE_ADDR", ""))
    return str(BaseThrottle().get_ident(request))


def _user(record: KeyRecord) -> Any:
    """The key's user without a DB query: the lookup already checked it is active. Holds the id and the
    username only; code that needs more of the user reads it."""
    user = get_user_model()(pk=record.user_id, is_active=True)
    user.username = record.username  # type: ignore[attr-defined]
    user._state.adding = False
    user._state.db = "default"
    return user
