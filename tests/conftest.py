"""Shared fixtures: real MariaDB (pytest-django's test database) and a real Redis database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from django.conf import settings


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """The test Redis database, emptied before and after the test."""
    client = redis.Redis.from_url(settings.MATCHING_REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()
