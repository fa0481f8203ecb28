"""Rate limits of the HTTP API, kept in Redis so that every gunicorn worker (and every web host) counts
against the same allowance (docs/API.md, "Rate limits").

Four limits, their rates in ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` (``RATE_LIMIT_*`` settings):

- ``trade``: writes (POST, PUT, PATCH, DELETE: placing, batch placing, canceling) of one API key, or
  of one user signed in with a session;
- ``read``: reads (GET, HEAD, OPTIONS) of one API key or session user;
- ``anon``: requests without credentials (public market data, logging in), per client address;
- ``auth_failures``: 401 answers under ``/api/``, per client address. Once over it, the address gets
  429 for everything under ``/api/`` but public reads until the allowance frees.

The first three are DRF throttles (``DEFAULT_THROTTLE_CLASSES``), which run after authentication. The
fourth cannot be one: it must refuse a request before its credentials are checked, and it counts
answers, so it is a middleware (``AuthFailureLimitMiddleware``) that knows nothing of the
authentication classes, only of the 401 status.

A request signed with an API key (``spot.browser.signed_api_request``) pays one Redis round trip for
all of it: the middleware leaves its check to the key lookup, whose script also checks and counts the
key's own limit (``signed_request_limits``, ``orders.apikeys.api_key_lookup``); the throttle then uses
that answer. Other requests (sessions, no credentials) check each limit with a round trip of its own.

A rate ``N/period`` is a bucket of N requests refilled continuously at N per period (GCRA, the
generic cell rate algorithm): ``50/s`` lets a client send 50 requests at once, then one every 20 ms;
``3000/m`` has the same sustained rate with a burst of 3000. The state of a client's limit is one
Redis string (``spot.keys.rate_limit``), read and written by one Lua script, so a check is atomic and
costs one round trip; the script takes its clock from Redis (``TIME``), so web hosts whose clocks
differ still agree. DRF's own ``SimpleRateThrottle`` keeps a list of timestamps in the cache with a
get and a set: two workers read the same list and both let their request through, so it does not
hold across processes.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry
from rest_framework.exceptions import Throttled
from rest_framework.permissions import SAFE_METHODS, AllowAny
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from spot import keys, metrics
from spot.browser import signed_api_request
from spot.envelope import error_response
from spot.resilience import CircuitBreaker, CircuitOpen

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"

# A limiter that waits longer than this for Redis costs the request more than it protects; the check
# is skipped instead (see ``_wait_ms``). Redis on the same host or network answers in well under 1 ms.
REDIS_TIMEOUT_S = 0.25


class Scope(StrEnum):
    """The four limits; each value is its key in ``DEFAULT_THROTTLE_RATES`` and its metric label."""

    TRADE = "trade"
    READ = "read"
    ANON = "anon"
    AUTH_FAILURES = "auth_failures"


class RateLimitExceeded(Throttled):
    """A 429 whose message names the limit; DRF's handler adds ``Retry-After: <wait>``."""

    def __init__(self, message: str, wait_s: int) -> None:
        super().__init__(detail=message)  # without a wait, DRF adds no "Expected available in ..." to it
        self.wait = wait_s


# GCRA over one key, as a Lua function other scripts include (``orders.apikeys`` checks a signed
# request's limits in its key lookup's round trip). Arguments: the client's key, the limit N, the
# period in ms, "1" to count the request or "0" only to ask whether one more would be allowed. The key
# holds the theoretical arrival time (TAT): when the client's allowance is full again. A request is
# allowed unless it would push the TAT more than one period ahead of now; a refused request changes
# nothing. Returns 0 when allowed, else the milliseconds until one more request would be.
GCRA_LUA_FUNCTION = """
local function gcra(key, limit, period, count)
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
  local interval = period / limit
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then
    tat = now
  end
  local allowed_at = tat + interval - period
  if now < allowed_at then
    return math.ceil(allowed_at - now)
  end
  if count == '1' then
    local new_tat = tat + interval
    redis.call('SET', key, string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now))
  end
  return 0
end
"""

# KEYS[1]: the client's key; ARGV: the limit, the period in ms, "1" to count.
_GCRA = GCRA_LUA_FUNCTION + "return gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3])\n"


@functools.cache
def _script(url: str) -> Script:
    # No retries: redis-py retries a connection error 3 times with backoff by default, which would
    # hold every request of an outage for that long before failing open.
    client = redis.Redis.from_url(
        url, socket_connect_timeout=REDIS_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S, retry=Retry(NoBackoff(), 0)
    )
    return client.register_script(_GCRA)


@functools.cache
def _breaker(url: str) -> CircuitBreaker:
    # While Redis is down the breaker skips the limiter at once instead of letting every request wait
    # for a connection timeout; spot_circuit_open{circuit="rate_limits"} reads 1 meanwhile.
    return CircuitBreaker.from_settings("rate_limits", on_change=metrics.breaker_changed)


def rate_parse(rate: str) -> tuple[int, int]:
    """``"50/s"`` -> ``(50, 1)``: requests and period in seconds (DRF's parser; ``env_rate`` checked
    the settings' values at start-up). Raises ``ImproperlyConfigured`` for anything else."""
    try:
        limit, period_s = SimpleRateThrottle.parse_rate(None, rate)  # type: ignore[arg-type]
    except (ValueError, KeyError, IndexError, AttributeError):
        raise ImproperlyConfigured(f"a rate limit must look like 50/s, 100/m or 30/h, not {rate!r}") from None
    if limit is None or limit < 1:
        raise ImproperlyConfigured(f"a rate limit must allow at least 1 request, not {rate!r}")
    return limit, period_s


def rate_of(scope: Scope) -> tuple[int, int]:
    """The scope's limit and period in seconds, from ``DEFAULT_THROTTLE_RATES`` as it is now (read each
    time, not at import as DRF's throttles do, so a changed setting takes effect)."""
    try:
        rate = api_settings.DEFAULT_THROTTLE_RATES[scope.value]
    except KeyError:
        raise ImproperlyConfigured(f"REST_FRAMEWORK['DEFAULT_THROTTLE_RATES'] has no rate {scope.value!r}") from None
    return rate_parse(rate)


def rate_check(scope: Scope, who: str, *, count: bool = True) -> int:
    """Whether one more request of ``who`` fits the scope's limit: 0 if it does (and, with ``count``,
    it is counted), else the whole seconds until one would (at least 1). One Redis round trip.

    Fails open: when Redis cannot be asked, the request is allowed, a warning is logged and
    ``spot_rate_limit_unchecked_total{scope}`` counted. The limits protect capacity from a greedy or
    hostile client; refusing everything while Redis is down would turn a Redis outage into an outage
    of the whole API, while intake keeps accepting orders without Redis (the sweeper pushes them
    later). The web's workers still bound the load, and authentication is cheap (no password hash),
    so an unlimited spell costs little.
    """
    limit, period_s = rate_of(scope)
    wait_ms = _wait_ms(scope, keys.rate_limit(scope.value, who), limit, period_s, count)
    return 0 if wait_ms <= 0 else max(1, math.ceil(wait_ms / 1000))


def _wait_ms(scope: Scope, key: str, limit: int, period_s: int, count: bool) -> int:
    url = settings.REDIS_URL
    breaker = _breaker(url)
    try:
        breaker.before_call()
    except CircuitOpen:
        metrics.RATE_LIMIT_UNCHECKED.labels(scope.value).inc()
        return 0
    try:
        wait_ms = _script(url)(keys=[key], args=[limit, period_s * 1000, int(count)])
    except redis.RedisError as exc:
        breaker.record_failure()
        metrics.RATE_LIMIT_UNCHECKED.labels(scope.value).inc()
        logger.warning("rate limit %s not checked, the request goes through: Redis failed: %s", scope.value, exc)
        return 0
    breaker.record_success()
    return int(wait_ms)


def client_address(request: HttpRequest | Request) -> str:
    """The client's IP address: ``REMOTE_ADDR``, or behind ``NUM_PROXIES`` trusted proxies the entry of
    ``X-Forwarded-For`` the nearest of them wrote (DRF's rule, ``BaseThrottle.get_ident``)."""
    return str(BaseThrottle().get_ident(request))


# -- a signed request's limits, checked in its key lookup ------------------------------------------


@dataclass(frozen=True, slots=True)
class Limit:
    """A rate limit checked inside another script's round trip (``orders.apikeys.api_key_lookup``):
    its scope, its Redis key, N requests a period of ``period_ms``, whether this request counts, and
    whether it applies only to an active key (a key's own limit) or to every request (an address's)."""

    scope: str
    key: str
    limit: int
    period_ms: int
    count: bool
    active_key_only: bool


def _limit(scope: Scope, who: str, *, count: bool, active_key_only: bool) -> Limit:
    limit, period_s = rate_of(scope)
    return Limit(scope.value, keys.rate_limit(scope.value, who), limit, period_s * 1000, count, active_key_only)


def signed_request_limits(request: HttpRequest, key_id: str) -> list[Limit]:
    """The limits a request signed with ``key_id`` is checked against in its key lookup, so that a
    signed request costs one Redis round trip before its view: the address's authentication
    failures, when ``AuthFailureLimitMiddleware`` left that check to the lookup (it does for a signed
    request to a key-authenticated view, unless a public read), then the key's own trading or read
    limit, counted. None when the limits are off.

    The key's limit is counted before the signature is checked (the script cannot check an HMAC):
    someone who knows a key id but not its secret can spend that key's allowance, but each such
    request is a 401 that counts against the sender's address, which is blocked after
    ``auth_failures`` of them; replaying a real request is refused the same way."""
    if not settings.RATE_LIMITS_ENABLED:
        return []
    limits = []
    if getattr(request, "auth_failure_check_deferred", False):
        who = f"ip:{client_address(request)}"
        limits.append(_limit(Scope.AUTH_FAILURES, who, count=False, active_key_only=False))
    scope = Scope.READ if request.method in SAFE_METHODS else Scope.TRADE
    limits.append(_limit(scope, f"key:{key_id}", count=True, active_key_only=True))
    return limits


def signed_request_refusal(waits: dict[str, int]) -> RateLimitExceeded | None:
    """The 429 for an address over its authentication failures, from the lookup's waits (ms), or None.
    A key's own limit is left to its throttle, which runs after authentication and the scope check."""
    wait_ms = waits.get(Scope.AUTH_FAILURES.value, 0)
    if wait_ms <= 0:
        return None
    wait_s = max(1, math.ceil(wait_ms / 1000))
    metrics.RATE_LIMITED.labels(Scope.AUTH_FAILURES.value).inc()
    return RateLimitExceeded(_auth_failure_message(wait_s), wait_s)


def deferred_auth_failure_refusal(request: HttpRequest) -> RateLimitExceeded | None:
    """For a signed request refused before its key lookup (malformed headers, a stale timestamp):
    the check of the address's authentication failures the middleware left to the lookup, made on its
    own; the 429 if the address is over, else None."""
    if not (settings.RATE_LIMITS_ENABLED and getattr(request, "auth_failure_check_deferred", False)):
        return None
    wait_s = rate_check(Scope.AUTH_FAILURES, f"ip:{client_address(request)}", count=False)
    if not wait_s:
        return None
    metrics.RATE_LIMITED.labels(Scope.AUTH_FAILURES.value).inc()
    return RateLimitExceeded(_auth_failure_message(wait_s), wait_s)


def _auth_failure_message(wait_s: int) -> str:
    return f"too many failed authentications from this address; retry after {wait_s} s"


# -- DRF throttles ---------------------------------------------------------------------------------


class _RedisThrottle(BaseThrottle):
    """One of the DRF-run limits. ``who`` names the client the request counts against, or None when
    the limit does not apply to it; a refused request raises ``RateLimitExceeded`` (429) at once, with
    a message naming the limit, rather than DRF's generic "Request was throttled"."""

    scope: Scope
    message: str  # "... of this {who}": "key", "user" or "address"

    def who(self, request: Request) -> tuple[str, str] | None:
        """(the key's suffix, the word for it in the message), or None when the limit does not apply."""
        raise NotImplementedError

    def allow_request(self, request: Request, view: Any) -> bool:
        if not settings.RATE_LIMITS_ENABLED:
            return True
        client = self.who(request)
        if client is None:
            return True
        # A signed request's key limit was checked (and counted) in its key lookup's round trip.
        checked = getattr(request.auth, "limit_waits", {}).get(self.scope.value)
        if checked is not None:
            wait_s = 0 if checked <= 0 else max(1, math.ceil(checked / 1000))
        else:
            wait_s = rate_check(self.scope, client[0])
        if not wait_s:
            return True
        metrics.RATE_LIMITED.labels(self.scope.value).inc()
        raise RateLimitExceeded(f"{self.message.format(who=client[1])}; retry after {wait_s} s", wait_s)


def _signed_in(request: Request) -> tuple[str, str] | None:
    """An API key's request counts against its key, a session's against its user."""
    key_id = getattr(request.auth, "key_id", None)
    if key_id:
        return f"key:{key_id}", "key"
    user = request.user
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}", "user"
    return None


class TradeThrottle(_RedisThrottle):
    """Writes of one key or session user: placing, batch placing (one request), canceling."""

    scope = Scope.TRADE
    message = "rate limit exceeded for trading requests of this {who}"

    def who(self, request: Request) -> tuple[str, str] | None:
        return None if request.method in SAFE_METHODS else _signed_in(request)


class ReadThrottle(_RedisThrottle):
    """Reads of one key or session user."""

    scope = Scope.READ
    message = "rate limit exceeded for reads of this {who}"

    def who(self, request: Request) -> tuple[str, str] | None:
        return _signed_in(request) if request.method in SAFE_METHODS else None


class AnonThrottle(_RedisThrottle):
    """Requests without credentials, per client address."""

    scope = Scope.ANON
    message = "rate limit exceeded for requests without credentials from this {who}"

    def who(self, request: Request) -> tuple[str, str] | None:
        if _signed_in(request) is not None:
            return None
        return f"ip:{client_address(request)}", "address"


# -- authentication failures -----------------------------------------------------------------------


class AuthFailureLimitMiddleware:
    """Counts 401 answers under ``/api/`` per client address; an address over ``auth_failures`` gets
    429 (the API's error shape, ``Retry-After``) before its credentials are looked at, for every
    request under ``/api/`` except public reads, until its allowance frees. Logging in is not a public
    read, so a password cannot be guessed from a blocked address either."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code == 401 and _limited(request):
            # Counting a failure of an address already over the limit changes nothing (GCRA refuses it).
            rate_check(Scope.AUTH_FAILURES, f"ip:{client_address(request)}")
        return response

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        if not _limited(request) or _public_read(request, view_func):
            return None
        if signed_api_request(request):
            # Checked in the key lookup's round trip (signed_request_limits): one Redis call, not two.
            request.auth_failure_check_deferred = True
            return None
        wait_s = rate_check(Scope.AUTH_FAILURES, f"ip:{client_address(request)}", count=False)
        if not wait_s:
            return None
        metrics.RATE_LIMITED.labels(Scope.AUTH_FAILURES.value).inc()
        message = _auth_failure_message(wait_s)
        return error_response(message, 429, headers={"Retry-After": str(wait_s)})


def _limited(request: HttpRequest) -> bool:
    return settings.RATE_LIMITS_ENABLED and request.path_info.startswith(API_PREFIX)


def _public_read(request: HttpRequest, view_func: Callable[..., Any]) -> bool:
    """A GET/HEAD/OPTIONS of a DRF view whose permissions are all ``AllowAny``: market data and the
    schema, and also ``GET /api/keys``, which checks its session itself; none of them takes a password
    or a signature, so none helps a guesser. Judged by the view's declared permissions, not by its
    authentication classes, so the middleware stays independent of how credentials are checked."""
    if request.method not in SAFE_METHODS:
        return False
    permissions = getattr(getattr(view_func, "cls", None), "permission_classes", None)
    return bool(permissions) and all(permission is AllowAny for permission in permissions)
