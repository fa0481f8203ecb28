"""API keys: create, revoke and list them, and the lookup every signed request makes
(``orders.authentication``).

A key is a public ``key_id`` and a secret shown once. Checking an HMAC needs the secret itself, so the
row keeps it encrypted (Fernet, ``API_KEY_ENCRYPTION_KEYS``), never in plain text and never hashed.

The lookup costs no DB query on the hot path: what a request needs (user, scopes, allowlist, the
still-encrypted secret) is cached in Redis under ``apikey:<key_id>`` for ``CACHE_TTL_S``, and read in
the same round trip (one Lua call) that records the request's signature for replay protection. A web
process decrypts a secret once (``_decrypt`` is memoised on the ciphertext). Revoking overwrites the
entry with a tombstone, so every web worker refuses the key from its next request on; a fill from the
DB is ``SET NX`` and cannot overwrite that tombstone with a row read before the revoke.

If Redis is unreachable the lookup reads the DB and replay protection falls back to this process's
memory: trading goes on (as intake does without Redis), but a replay sent to another web worker within
the receive window is not caught until Redis returns.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import secrets
import string
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from orders.errors import ApiKeyNotFound, InvalidApiKey, ServiceUnavailable
from orders.models import ApiKey, ApiKeyScope
from spot import keys
from spot.ratelimit import GCRA_LUA_FUNCTION, Limit
from spot.redis import redis_client

logger = logging.getLogger(__name__)

# Letters and digits only: a key id or secret never starts with "-" (read as an option by a command
# line) and needs no quoting in a URL, a header or a shell.
ALPHABET = string.ascii_letters + string.digits
KEY_ID_LENGTH = 24  # about 143 bits: unguessable, though it is not a secret
SECRET_LENGTH = 43  # 43 x log2(62) = 256 bits, as strong as a 32-byte random secret
CACHE_TTL_S = 300  # a key's cached lookup; also how stale last_used_at may be
UNKNOWN_TTL_S = 60  # an id that matches no key: probes with junk ids cost the DB one query a minute each
SCOPES = frozenset(ApiKeyScope)

_REVOKED = b"-"  # the cache's tombstone: the key is unknown, revoked, or its user inactive


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What authenticating a request with a key needs; the secret is still encrypted."""

    key_id: str
    user_id: int
    username: str
    scopes: frozenset[str]
    allowed_ips: tuple[str, ...]
    secret_encrypted: str

    def secret(self) -> bytes:
        """The secret's bytes, the HMAC key (decrypted once per process)."""
        return _decrypt(self.secret_encrypted, tuple(settings.API_KEY_ENCRYPTION_KEYS))

    def allows(self, address: str) -> bool:
        """Whether a request from ``address`` may use the key (any address when no allowlist)."""
        return not self.allowed_ips or _address_allowed(address, self.allowed_ips)

    def to_cache(self) -> bytes:
        return json.dumps(
            [self.user_id, self.username, ",".join(sorted(self.scopes)), list(self.allowed_ips), self.secret_encrypted]
        ).encode()

    @classmethod
    def from_cache(cls, key_id: str, raw: bytes) -> KeyRecord:
        user_id, username, scopes, allowed_ips, secret_encrypted = json.loads(raw)
        return cls(key_id, user_id, username, frozenset(scopes.split(",")), tuple(allowed_ips), secret_encrypted)

    @classmethod
    def from_row(cls, key: ApiKey) -> KeyRecord:
        return cls(
            key.key_id,
            key.user_id,
            key.user.get_username(),
            key.scope_set,
            tuple(key.allowed_ips),
            key.secret_encrypted,
        )


# -- writes ------------------------------------------------------------------------------------------


def api_key_create(
    *, user: AbstractBaseUser, label: str = "", scopes: str | Iterable[str], allowed_ips: Iterable[str] = ()
) -> tuple[ApiKey, str]:
    """A new key for ``user``; returns the row and the secret, which nothing can show again.

    Raises ``InvalidApiKey`` naming the field for an unknown or missing scope, a malformed IP address
    or network, or a label over 100 characters.
    """
    scope_text = parse_scopes(scopes)
    networks = parse_networks(allowed_ips)
    label = label.strip()
    if len(label) > 100:
        raise InvalidApiKey("the label is longer than 100 characters", field="label")
    secret = _random(SECRET_LENGTH)
    key = ApiKey.objects.create(
        user=user,
        key_id=_random(KEY_ID_LENGTH),
        label=label,
        scopes=scope_text,
        allowed_ips=networks,
        secret_encrypted=_cipher().encrypt(secret.encode()).decode(),
    )
    return key, secret


def api_key_revoke(*, key_id: str, user: AbstractBaseUser | None = None) -> ApiKey:
    """Revoke the key (``user``'s own, when given); idempotent. Every web worker refuses it from its
    next request on.

    Raises ``ApiKeyNotFound`` for an unknown key or another user's, and ``ServiceUnavailable`` if Redis
    could not be told (the revoke is committed; the cached lookup may accept the key for up to
    ``CACHE_TTL_S``): revoking again, once Redis answers, completes it.
    """
    with transaction.atomic():
        found = ApiKey.objects.select_for_update().filter(key_id=key_id)
        if user is not None:
            found = found.filter(user=user)
        key = found.first()
        if key is None:
            raise ApiKeyNotFound(f"no API key {key_id}", field="key_id")
        if key.revoked_at is None:
            key.revoked_at = timezone.now()
            key.save(update_fields=["revoked_at"])
    try:
        redis_client().set(keys.api_key(key_id), _REVOKED, ex=CACHE_TTL_S)
    except redis.RedisError as exc:
        logger.error("API key %s revoked in the DB but not in the cache: %s", key_id, exc)
        raise ServiceUnavailable(
            f"API key {key_id} is revoked, but the web's cache could not be told and may accept it for up "
            f"to {CACHE_TTL_S} s; revoke it again once Redis answers"
        ) from exc
    return key


def api_key_reencrypt() -> int:
    """Encrypt every key's secret under the first of ``API_KEY_ENCRYPTION_KEYS`` (after a rotation);
    returns how many rows changed. Their cached lookups, which hold the old ciphertext, are dropped,
    so once this returns the old encryption key can be removed."""
    cipher = _cipher()
    changed = []
    for key in ApiKey.objects.only("id", "key_id", "secret_encrypted").iterator():
        rotated = cipher.rotate(key.secret_encrypted.encode()).decode()
        if rotated != key.secret_encrypted:
            ApiKey.objects.filter(id=key.id).update(secret_encrypted=rotated)
            changed.append(key.key_id)
    if changed:
        redis_client().delete(*(keys.api_key(key_id) for key_id in changed))
    return len(changed)


def api_keys_forget_user(user_id: int) -> None:
    """Drop the cached lookups of a user's keys (the user was deactivated, deleted or changed): the
    next request reads the rows and the user again."""
    ids = list(ApiKey.objects.filter(user_id=user_id).values_list("key_id", flat=True))
    if not ids:
        return
    try:
        redis_client().delete(*(keys.api_key(key_id) for key_id in ids))
    except redis.RedisError:
        logger.exception("could not drop the cached API keys of user %s", user_id)


# -- reads -------------------------------------------------------------------------------------------


def api_key_list(*, user: AbstractBaseUser | None = None, include_revoked: bool = True) -> QuerySet[ApiKey]:
    """Keys, newest first (``user``'s only, when given); never the secrets."""
    found = ApiKey.objects.select_related("user").defer("secret_encrypted").order_by("-created_at", "-id")
    if user is not None:
        found = found.filter(user=user)
    if not include_revoked:
        found = found.filter(revoked_at__isnull=True)
    return found


@dataclass(frozen=True, slots=True)
class KeyLookup:
    """The answer of ``api_key_lookup``: the active key (None if unknown, revoked or its user
    inactive), whether the signature is new, and each checked limit's wait in ms (0: allowed; a limit
    not checked is absent: Redis could not be asked, the key was not cached, or an earlier limit
    refused the request)."""

    record: KeyRecord | None
    fresh: bool
    waits: dict[str, int]


def api_key_lookup(key_id: str, signature: str, window_ms: int, limits: Sequence[Limit] = ()) -> KeyLookup:
    """The active key ``key_id``, whether ``signature`` is new for it (recorded now, so the same
    signature within ``2 x window_ms`` is not), and the request's ``limits`` checked (GCRA, as
    ``spot.ratelimit`` does; the first that refuses stops the others from counting).

    Cost on a warm cache: one Redis round trip for all of it, no DB query. On a miss, one DB query and
    one more round trip (fill and record); a key's own limits are then left to the throttles. Without
    Redis, one DB query and this process's memory, no limit checked (the throttles fail open).
    """
    seen_key = keys.api_key_seen(key_id, signature)
    ttl_ms = 2 * window_ms
    args: list[Any] = [ttl_ms]
    for limit in limits:
        args += [limit.limit, limit.period_ms, int(limit.count), 0 if limit.active_key_only else 1]
    try:
        client = redis_client()
        raw, fresh, waits = _lookup_script(client)(
            keys=[keys.api_key(key_id), seen_key, *(limit.key for limit in limits)], args=args
        )
        checked = {limit.scope: int(wait) for limit, wait in zip(limits, waits, strict=True) if int(wait) >= 0}
        if raw is not None:
            if raw == _REVOKED:
                return KeyLookup(None, bool(fresh), checked)
            return KeyLookup(KeyRecord.from_cache(key_id, raw), bool(fresh), checked)
        record = _from_db(key_id)
        pipe = client.pipeline(transaction=False)
        if record is None:
            pipe.set(keys.api_key(key_id), _REVOKED, ex=UNKNOWN_TTL_S, nx=True)
            pipe.execute()
            return KeyLookup(None, True, checked)
        pipe.set(keys.api_key(key_id), record.to_cache(), ex=CACHE_TTL_S, nx=True)
        pipe.set(seen_key, b"1", px=ttl_ms, nx=True)
        _, fresh = pipe.execute()
        return KeyLookup(record, bool(fresh), checked)
    except redis.RedisError:
        logger.warning("API key cache unavailable; key %s read from the DB", key_id, exc_info=True)
        record = _from_db(key_id, touch=False)
        return KeyLookup(record, _LOCAL_SEEN.add(seen_key, ttl_ms / 1000), {})


# -- validation --------------------------------------------------------------------------------------


def parse_scopes(value: str | Iterable[str]) -> str:
    """Scopes as stored: sorted, comma-separated. Accepts ``"read,trade"`` or a list; raises
    ``InvalidApiKey`` for none or an unknown one."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = {str(item).strip() for item in items if str(item).strip()}
    unknown = sorted(names - SCOPES)
    if unknown:
        raise InvalidApiKey(
            f"unknown scope {', '.join(repr(s) for s in unknown)}; the scopes are read and trade", field="scopes"
        )
    if not names:
        raise InvalidApiKey("a key needs at least one scope: read, trade", field="scopes")
    return ",".join(sorted(names))


def parse_networks(values: Iterable[str]) -> list[str]:
    """IP addresses and CIDR networks as stored (``203.0.113.7/32``, ``10.0.0.0/8``, IPv6 alike);
    raises ``InvalidApiKey`` naming the first that is neither."""
    if isinstance(values, str):
        values = [values]
    networks = []
    for value in values:
        try:
            networks.append(str(ipaddress.ip_network(str(value).strip(), strict=False)))
        except ValueError:
            raise InvalidApiKey(f"{value!r} is not an IP address or network", field="allowed_ips") from None
    return sorted(set(networks), key=networks.index)


# -- internals ---------------------------------------------------------------------------------------


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


@functools.cache
def _fernet(encryption_keys: tuple[str, ...]) -> MultiFernet:
    if not encryption_keys:
        raise ImproperlyConfigured("API_KEY_ENCRYPTION_KEYS is empty")
    try:
        return MultiFernet([Fernet(key) for key in encryption_keys])
    except ValueError:
        raise ImproperlyConfigured(
            "each of API_KEY_ENCRYPTION_KEYS must be a Fernet key: 32 bytes, URL-safe base64"
        ) from None


def _cipher() -> MultiFernet:
    return _fernet(tuple(settings.API_KEY_ENCRYPTION_KEYS))


@functools.lru_cache(maxsize=4096)
def _decrypt(token: str, encryption_keys: tuple[str, ...]) -> bytes:
    """Memoised on the ciphertext: a worker pays the decryption (about 20 us) once per key."""
    return _fernet(encryption_keys).decrypt(token.encode())


@functools.lru_cache(maxsize=1024)
def _networks(allowed: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(network) for network in allowed)


def _address_allowed(address: str, allowed: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:203.0.113.7 from a dual-stack listener is 203.0.113.7
    return any(ip in network for network in _networks(allowed))


def _from_db(key_id: str, *, touch: bool = True) -> KeyRecord | None:
    """The active key from its row (one query, with its user); records the use in ``last_used_at``."""
    key = ApiKey.objects.select_related("user").filter(key_id=key_id, revoked_at__isnull=True).first()
    if key is None or not key.user.is_active:
        return None
    if touch:
        ApiKey.objects.filter(id=key.id).update(last_used_at=timezone.now())
    return KeyRecord.from_row(key)


# One round trip: the cached lookup; the request's rate limits (KEYS[3...], four ARGV each: limit,
# period ms, count, and 1 if it applies whatever the key, 0 for an active cached key only), in order,
# the first refusal leaving the rest unchecked; and, for a cached active key only, the signature
# recorded with SET NX (so ids that match no key leave nothing behind). Returns {entry or nil, 1 if
# the signature is new, {wait ms per limit, -1 when not checked}}.
_LOOKUP_LUA = (
    GCRA_LUA_FUNCTION
    + """
local entry = redis.call('GET', KEYS[1])
local active = entry and entry ~= '-'
local waits = {}
local refused = false
for i = 3, #KEYS do
    local a = 2 + (i - 3) * 4
    if refused or not (ARGV[a + 3] == '1' or active) then
        waits[#waits + 1] = -1
    else
        local wait = gcra(KEYS[i], tonumber(ARGV[a]), tonumber(ARGV[a + 1]), ARGV[a + 2])
        waits[#waits + 1] = wait
        refused = wait > 0
    end
end
if not active then
    return {entry, 1, waits}
end
local fresh = redis.call('SET', KEYS[2], '1', 'PX', ARGV[1], 'NX')
return {entry, fresh and 1 or 0, waits}
"""
)


@functools.cache
def _lookup_script(client: redis.Redis) -> Any:
    return client.register_script(_LOOKUP_LUA)


class _SeenSignatures:
    """Signatures seen by this process, each kept ``ttl`` seconds: replay protection while Redis is
    unreachable. Bounded, oldest first out (they are also the first to expire)."""

    def __init__(self, limit: int = 100_000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def add(self, signature: str, ttl: float) -> bool:
        """True if the signature was not seen within its ``ttl``; records it."""
        now = time.monotonic()
        with self._lock:
            while self._seen and (next(iter(self._seen.values())) < now or len(self._seen) >= self._limit):
                self._seen.popitem(last=False)
            if signature in self._seen:
                return False
            self._seen[signature] = now + ttl
            return True


_LOCAL_SEEN = _SeenSignatures()


def _user_changed(sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    if update_fields is not None and set(update_fields) <= {"last_login", "password"}:
        return  # a login (or a new password) changes nothing a key's lookup holds
    api_keys_forget_user(instance.pk)


def connect_signals() -> None:
    """A user deactivated, changed or deleted: their keys' cached lookups are dropped at once
    (``OrdersConfig.ready``)."""
    from django.db.models.signals import post_save, pre_delete

    user_model = get_user_model()
    post_save.connect(_user_changed, sender=user_model, dispatch_uid="apikeys-user-saved")
    pre_delete.connect(_user_changed, sender=user_model, dispatch_uid="apikeys-user-deleted")
