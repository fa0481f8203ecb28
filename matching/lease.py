"""One writer per market: a Redis lease with renewal, plus a DB epoch that fences a stale owner."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid

import redis

from spot import keys

logger = logging.getLogger(__name__)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class MarketLease:
    """``lease:<market>`` holds ``<host>:<pid>:<uuid>`` of the owner for ``ttl_ms``.

    ``acquire()`` and ``renew()`` return whether this process owns the market. A stalled owner that
    wakes after losing the lease cannot write: each new owner bumps the market's epoch in the DB, and
    a batch commits only under its own epoch (``matching.worker.store``).
    """

    def __init__(self, client: redis.Redis, market: str, ttl_ms: int) -> None:
        self.client = client
        self.market = market
        self.key = keys.lease(market)
        self.ttl_ms = ttl_ms
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._renewed_at = 0.0
        self._held = False
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    @property
    def held(self) -> bool:
        return self._held

    def owner(self) -> str | None:
        value = self.client.get(self.key)
        return None if value is None else value.decode()

    def acquire(self) -> bool:
        now = time.monotonic()
        if self.client.set(self.key, self.token, nx=True, px=self.ttl_ms):
            self._held, self._renewed_at = True, now
            logger.info("lease %s acquired by %s", self.key, self.token)
            return True
        return self.renew()

    def renew(self) -> bool:
        now = time.monotonic()
        ok = bool(self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))
        if ok:
            self._renewed_at = now
        elif self._held:
            logger.error("lease %s lost (owner now %s)", self.key, self.owner())
        self._held = ok
        return ok

    def renew_if_due(self) -> bool:
        """Renew once a third of the TTL has passed; returns whether the lease is still held."""
        if not self._held:
            return False
        if (time.monotonic() - self._renewed_at) * 1000 >= self.ttl_ms / 3:
            return self.renew()
        return True

    def release(self) -> None:
        if self._held:
            self._release(keys=[self.key], args=[self.token])
            self._held = False
