"""The process's Redis client for streams, leases and the order cache (one pool per process)."""

from __future__ import annotations

import functools

import redis
from django.conf import settings


@functools.cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30)


def redis_client() -> redis.Redis:
    """A client for ``MATCHING_REDIS_URL``; pooled, safe to share between threads."""
    return _client(settings.MATCHING_REDIS_URL)
