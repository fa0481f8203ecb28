"""Production: every secret comes from the environment and the process refuses to start without it;
nothing can be left half-configured.

This is also what ``manage.py``, ``spot/wsgi.py`` and the Celery app load when ``DJANGO_SETTINGS_MODULE``
is not set: a deployment that forgets it stops here, naming what is missing, instead of running with
development settings. Development says ``settings.dev`` explicitly (``scripts/run.sh``, the Makefile).
``manage.py check --deploy`` passes with these settings (tests/spot/test_production_settings.py); the
deployment itself is described in docs/DEPLOY.md.
"""

import base64
import binascii

from django.core.exceptions import ImproperlyConfigured

from settings.base import *  # noqa: F403
from settings.env import env_bool, env_int, env_list, env_str

try:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY")
    # The application's own database account, never root (docs/DEPLOY.md lists the grants it needs).
    DATABASES["default"]["USER"] = env_str("MYSQL_USER")
    DATABASES["default"]["PASSWORD"] = env_str("MYSQL_PASSWORD")
except ImproperlyConfigured as exc:
    raise ImproperlyConfigured(
        f"{exc} by the production settings (settings.prod, also the default when DJANGO_SETTINGS_MODULE is "
        "not set); for development set DJANGO_SETTINGS_MODULE=settings.dev"
    ) from None
# Django's own deployment check (security.W009) asks for 50 characters, 5 of them different.
if SECRET_KEY.startswith(("insecure", "django-insecure")) or len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be a random string of at least 50 characters")

if DATABASES["default"]["USER"] == "root":
    raise ImproperlyConfigured("MYSQL_USER must not be root in production: create an account for the exchange")

DEBUG = False
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", [])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS is required in production")

# --- TLS ----------------------------------------------------------------------------------------
# gunicorn speaks plain HTTP behind a TLS-terminating proxy, which must set X-Forwarded-Proto (and
# strip it from what clients send): only then is a request secure.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = True
# Probes of the load balancer and Prometheus reach gunicorn directly, over plain HTTP on the host.
SECURE_REDIRECT_EXEMPT = [r"^health/", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)  # one year
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
# A browser's unsafe request (the admin, the session API) must come from the site itself.
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [f"https://{host}" for host in ALLOWED_HOSTS])
X_FRAME_OPTIONS = "DENY"

# --- API keys -----------------------------------------------------------------------------------
# The keys that encrypt API key secrets at rest, given explicitly: a default derived from
# DJANGO_SECRET_KEY (as in development) would make every API key unusable when that key is rotated.
API_KEY_ENCRYPTION_KEYS = env_list("API_KEY_ENCRYPTION_KEYS", [])
if not API_KEY_ENCRYPTION_KEYS:
    raise ImproperlyConfigured(
        "API_KEY_ENCRYPTION_KEYS is required in production: one or more Fernet keys, comma-separated "
        '(python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())")'
    )
for _key in API_KEY_ENCRYPTION_KEYS:
    try:
        _valid = len(base64.urlsafe_b64decode(_key.encode())) == 32
    except (binascii.Error, ValueError):
        _valid = False
    if not _valid:
        raise ImproperlyConfigured("each of API_KEY_ENCRYPTION_KEYS must be a Fernet key: 32 bytes, URL-safe base64")
