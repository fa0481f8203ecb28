"""Production: every secret comes from the environment; the process refuses to start without it."""

from django.core.exceptions import ImproperlyConfigured

from settings.base import *  # noqa: F403
from settings.env import env_list, env_str

SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if SECRET_KEY.startswith("insecure") or len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be a random string of at least 32 characters")
DATABASES["default"]["PASSWORD"] = env_str("MYSQL_PASSWORD")
DEBUG = False
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", [])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS is required in production")
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
