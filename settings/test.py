"""Tests use their own database and Redis databases, so a running demo is left alone."""

from settings.base import *  # noqa: F403
from settings.env import env_bool, env_str

REDIS_URL = env_str("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
MATCHING_REDIS_URL = REDIS_URL
CACHES["default"]["LOCATION"] = REDIS_URL
CELERY_BROKER_URL = env_str("TEST_CELERY_BROKER_URL", "redis://127.0.0.1:6379/10")
INSTALLED_APPS = [*INSTALLED_APPS, "bench"]  # manage.py loadtest; never in production
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast user factories
MATCHING_LEASE_TTL_MS = 3_000  # a killed matcher's lease frees quickly in fault tests
# Off unless asked: the suite's requests share one client address and one Redis database, so limits
# would tie unrelated tests together (one test's bad signatures would block the next test's requests).
# tests/spot/test_ratelimit*.py turn them on, the gunicorn ones with RATE_LIMITS_ENABLED=true.
RATE_LIMITS_ENABLED = env_bool("RATE_LIMITS_ENABLED", False)
