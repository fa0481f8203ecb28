"""Every setting of the project, read from the environment (``settings.env`` helpers fail loudly).

``dev.py``, ``test.py`` and ``prod.py`` only override. Defaults work on a development machine:
MariaDB and Redis on 127.0.0.1, root with an empty password.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from settings.env import env_bool, env_float, env_int, env_int_map, env_list, env_rate, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

# A development-only key; prod.py refuses to start without DJANGO_SECRET_KEY.
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "insecure-development-key-do-not-use-in-production")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI's files as static files: the docs page loads nothing from a CDN (no internet here).
    "drf_spectacular_sidecar",
    "django_prometheus",
    "orders",
    "matching.worker.apps.MatcherWorkerConfig",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "spot.correlation.CorrelationIdMiddleware",
    # 429 for an address over its authentication failures, before its credentials are checked (spot.ratelimit)
    "spot.ratelimit.AuthFailureLimitMiddleware",
    # 413/415 before anything reads the body; every error under /api/ as JSON (spot.http)
    "spot.http.ApiEdgeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Django's session, CSRF, auth and messages middleware, skipped for requests signed with an API
    # key (spot.browser): a bot's order pays for none of them; a browser's request is unchanged.
    "spot.browser.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "spot.browser.CsrfViewMiddleware",
    "spot.browser.AuthenticationMiddleware",
    "spot.browser.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "spot.urls"
WSGI_APPLICATION = "spot.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# MariaDB/MySQL through mysqlclient. READ COMMITTED: the matcher and intake touch disjoint rows
# and need no gap locks; REPEATABLE READ's gap locks turn concurrent intake inserts into deadlocks.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.mysql",
        "NAME": env_str("MYSQL_DATABASE", "spot"),
        "USER": env_str("MYSQL_USER", "root"),
        "PASSWORD": env_str("MYSQL_PASSWORD", ""),
        "HOST": env_str("MYSQL_HOST", "127.0.0.1"),
        "PORT": env_int("MYSQL_PORT", 3306),
        "CONN_MAX_AGE": env_int("MYSQL_CONN_MAX_AGE", 60),
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {"charset": "utf8mb4", "isolation_level": "read committed"},
        "TEST": {"NAME": env_str("MYSQL_TEST_DATABASE", "test_spot"), "CHARSET": "utf8mb4"},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Bots sign each request with an API key (docs/API.md); people in a browser use the session
        # (CSRF enforced). No HTTP Basic: it hashed the account password on every request.
        "orders.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "orders.authentication.HasKeyScope",  # an API key needs `read` for GET, `trade` to place/cancel
    ],
    "EXCEPTION_HANDLER": "spot.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# --- Request bodies (docs/API.md, "Errors"; spot.http) ----------------------------------------------
# The API's bodies are small: a batch of 50 orders is about 10 KB. 1 MiB leaves room for the admin's
# forms and answers 413 to what is only there to fill memory (Django's default is 2.5 MB).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1_048_576)
# Form fields in one request, 400 above it. Django's default, stated: an order form has 6 fields; the
# admin's list actions post one per selected row (100 on a page).
DATA_UPLOAD_MAX_NUMBER_FIELDS = env_int("DATA_UPLOAD_MAX_NUMBER_FIELDS", 1_000)
# Only the declared media types are parsed, each by its exact name (no */*), and no multipart.
REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"] = ["spot.http.ExactJSONParser", "spot.http.FormParser"]
REST_FRAMEWORK["DEFAULT_CONTENT_NEGOTIATION_CLASS"] = "spot.http.ContentNegotiation"
REST_FRAMEWORK["TEST_REQUEST_DEFAULT_FORMAT"] = "json"  # DRF's test client would send multipart
# Every answer in the API's envelope ({"success", "message", "dataVersion", "data"}), written by orjson
# (spot.envelope); no browsable API.
REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] = ["spot.envelope.EnvelopeRenderer"]

# The OpenAPI schema at /api/schema/ and its docs page at /api/docs/ (docs/API.md); the signing
# scheme and the error shape are described in orders/schema.py.
SPECTACULAR_SETTINGS = {
    "TITLE": "Spot exchange API",
    "DESCRIPTION": (
        "Orders, balances and market data of the spot exchange. Every error is JSON in one shape, "
        "the `Error` component. Trading requests are signed with an API key (the `apiKey` scheme)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,  # the schema route is not part of the API it describes
    "SERVE_PUBLIC": True,
    "SERVE_AUTHENTICATION": [],  # public: fetching the schema needs no key and no session
    # Requests and responses get their own components: a required field of an input is not a
    # required field of an output, and inputs state minLength where blank is refused.
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "orders.schema.postprocess"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- API keys (docs/API.md, "Authentication") -----------------------------------------------------
# A signed request whose timestamp is further than this from the server's clock, either way, is
# refused; a signature is remembered for twice as long, so a replay within the window is refused too.
API_RECV_WINDOW_MS = env_int("API_RECV_WINDOW_MS", 5_000)
# Fernet keys (comma-separated) that encrypt API key secrets at rest: the first encrypts, every one
# decrypts. To rotate, put a new key first, run `manage.py apikey reencrypt`, then drop the old one.
# Development and tests derive one from SECRET_KEY; prod.py requires the variable.
API_KEY_ENCRYPTION_KEYS = env_list(
    "API_KEY_ENCRYPTION_KEYS",
    [base64.urlsafe_b64encode(hashlib.sha256(b"api-key-secrets:" + SECRET_KEY.encode()).digest()).decode()],
)

# --- Rate limits (docs/API.md, "Rate limits"; spot.ratelimit) -------------------------------------
# Kept in Redis (REDIS_URL), shared by every web worker. A rate N/period lets N requests through at
# once, then refills at N per period. The defaults: one key may send 50 writes a second (an order,
# a batch of up to 50, a cancel each count one), 5 % of the 1,000 orders a second a 2-core machine
# is built to take, so no single bot crowds out the rest; 100 reads a second, since reads come
# from the order cache and bots poll their orders and balances; 20 requests a second per address
# without credentials, twice what a client needs to follow a book the matcher publishes ~10 times a
# second; 30 authentication failures a minute per address: enough for a bot with a skewed clock or a
# person mistyping to notice, while a guesser gets one try every 2 s.
RATE_LIMITS_ENABLED = env_bool("RATE_LIMITS_ENABLED", True)
REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = [
    "spot.ratelimit.TradeThrottle",
    "spot.ratelimit.ReadThrottle",
    "spot.ratelimit.AnonThrottle",
]
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {
    "trade": env_rate("RATE_LIMIT_TRADE", "50/s"),
    "read": env_rate("RATE_LIMIT_READ", "100/s"),
    "anon": env_rate("RATE_LIMIT_ANON", "20/s"),
    "auth_failures": env_rate("RATE_LIMIT_AUTH_FAILURES", "30/m"),  # spot.ratelimit.AuthFailureLimitMiddleware
}
# Reverse proxies in front of the web that append the client's address to X-Forwarded-For. 0: the
# client is REMOTE_ADDR and X-Forwarded-For is ignored (a client could write anything in it).
REST_FRAMEWORK["NUM_PROXIES"] = env_int("NUM_PROXIES", 0)
if REST_FRAMEWORK["NUM_PROXIES"] < 0:
    raise ImproperlyConfigured(f"NUM_PROXIES must be 0 or more, not {REST_FRAMEWORK['NUM_PROXIES']}")

# --- Celery -------------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "redis://127.0.0.1:6379/1")
CELERY_RESULT_BACKEND = None  # matching tasks report through the DB and metrics, not results
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery >= 5.6 closes Django's DB connection around every task unless this is set; the matcher
# runs thousands of tasks a second and must keep its connections.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1_000_000)
CELERY_WORKER_SEND_TASK_EVENTS = True  # Flower shows tasks live
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # LOGGING below formats every line, with its correlation id
# No "task-sent" events: they come from whoever sends a task, and every drain slice is one (Flower's
# task list filled with drains); workers' received/started/succeeded events show every task but the
# drains (matching.drain sets send_events = False).
CELERY_TASK_SEND_SENT_EVENT = False

# --- Matching -----------------------------------------------------------------------------------
MATCHING_BATCH_SIZE = env_int("MATCHING_BATCH_SIZE", 50)  # FR-PF-005; larger trades latency for throughput
MATCHING_CONSUMER_GROUP = "matching-engine-group"  # FR-DS-003
MATCHING_RECLAIM_IDLE_MS = env_int("MATCHING_RECLAIM_IDLE_MS", 60_000)  # FR-DS-003: reclaim after 60 s
MATCHING_MAX_DELIVERIES = env_int("MATCHING_MAX_DELIVERIES", 3)  # FR-RL-003: then the dead letter queue
MATCHING_LEASE_TTL_MS = env_int("MATCHING_LEASE_TTL_MS", 10_000)
MATCHING_IDLE_BLOCK_MS = env_int("MATCHING_IDLE_BLOCK_MS", 1_000)
# Market code -> Celery queue; a market not listed goes to "match_<coin>" (btc_usdt -> match_btc).
MATCHING_QUEUES: dict[str, str] = {}
MATCHING_REDIS_URL = env_str("MATCHING_REDIS_URL", REDIS_URL)
MATCHING_RECORD_LATENCY = env_bool("MATCHING_RECORD_LATENCY", False)  # per-order latencies for the loadtest
# Each matcher serves /metrics and /health (FR-OB-001, FR-RL-004) on a port of its queue
# (matching.worker.server): MATCHER_METRICS_PORT > 0 overrides, < 0 serves none; 0 derives it from
# MATCHER_METRICS_PORTS, else MATCHER_METRICS_BASE_PORT + the queue's rank.
MATCHER_METRICS_PORT = env_int("MATCHER_METRICS_PORT", 0)
MATCHER_METRICS_PORTS = env_int_map("MATCHER_METRICS_PORTS", {"match_btc": 9101, "match_eth": 9102})
MATCHER_METRICS_BASE_PORT = env_int("MATCHER_METRICS_BASE_PORT", 9100)
MATCHER_METRICS_HOST = env_str("MATCHER_METRICS_HOST", "127.0.0.1")
ORDER_CACHE_TTL = 3600  # FR-DS-002
# Each process keeps a market it read this long (orders.market_cache): no query per order for it. A
# change saved through Django clears the saving process's copy at once; the others see it when theirs
# expires. 0 turns the cache off.
MARKET_CACHE_TTL_S = env_float("MARKET_CACHE_TTL_S", 1.0)
ORDER_SWEEP_AFTER_S = env_int("ORDER_SWEEP_AFTER_S", 5)  # a `new` order this old is re-pushed
# A market buy given in base quantity holds quantity x reference price x (1 + collar); it never
# spends more than that (price protection, as large exchanges do).
MARKET_BUY_COLLAR = env_str("MARKET_BUY_COLLAR", "0.05")
# Intake runs its hold transaction again after a deadlock or lock-wait timeout (orders.services):
# 2 retries, three attempts in all, waiting base x 2**retry plus up to 100 % jitter between them.
INTAKE_LOCK_RETRIES = env_int("INTAKE_LOCK_RETRIES", 2)
INTAKE_LOCK_RETRY_BASE_S = env_float("INTAKE_LOCK_RETRY_BASE_S", 0.005)
FEE_ACCOUNT_USERNAME = "fees"

# --- Resilience (FR-RL-001, FR-RL-002) -----------------------------------------------------------
RETRY_MAX_RETRIES = env_int("RETRY_MAX_RETRIES", 3)
RETRY_BASE_S = env_float("RETRY_BASE_S", 0.1)
RETRY_CAP_S = env_float("RETRY_CAP_S", 30.0)
RETRY_JITTER = env_float("RETRY_JITTER", 0.1)
BREAKER_FAILURE_THRESHOLD = env_int("BREAKER_FAILURE_THRESHOLD", 5)
BREAKER_RESET_S = env_float("BREAKER_RESET_S", 30.0)
BREAKER_HALF_OPEN_CALLS = env_int("BREAKER_HALF_OPEN_CALLS", 3)

# --- The web's metrics (FR-OB-001) ------------------------------------------------------------------
# /metrics is served on this listener only, never on the API's port: deploy/gunicorn.conf.py adds it
# to gunicorn's binds and spot.exporter answers 404 on any other port. "" serves the web's metrics nowhere.
WEB_METRICS_BIND = env_str("WEB_METRICS_BIND", "127.0.0.1:9100")

# --- Health checks (FR-RL-004) --------------------------------------------------------------------
# Connect and read timeout of /health/ready's DB and Redis checks: a dependency slower than this is
# reported down rather than hanging the probe.
HEALTH_CHECK_TIMEOUT_S = env_float("HEALTH_CHECK_TIMEOUT_S", 1.0)
# A matcher whose heartbeat (its last drain) is older than this is stale: /health/ready answers 503.
MATCHER_HEARTBEAT_STALE_S = env_float("MATCHER_HEARTBEAT_STALE_S", 30.0)

# --- Dead letter queue (FR-RL-003) --------------------------------------------------------------
DEAD_LETTER_RETENTION_DAYS = env_int("DEAD_LETTER_RETENTION_DAYS", 7)  # handled letters; `dead` ones stay
# Each dead letter is the task ``deadletters.record`` on this queue (spot.celery), whoever sends it.
CELERY_TASK_ROUTES = {"deadletters.record": {"queue": "dead_letter"}}

# Redis broker (kombu): a message a worker took and never acknowledged (it was killed, or lost its
# connection) is delivered again once it is older than the visibility timeout. A retried task waits
# for its countdown unacknowledged too, so the timeout must exceed the longest one (RETRY_CAP_S).
_visibility_timeout_s = env_int("CELERY_VISIBILITY_TIMEOUT_S", 300)
if _visibility_timeout_s <= RETRY_CAP_S:
    raise ImproperlyConfigured(
        f"CELERY_VISIBILITY_TIMEOUT_S ({_visibility_timeout_s}) must exceed RETRY_CAP_S ({RETRY_CAP_S}): "
        "a task waiting for its retry would be delivered twice"
    )
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": _visibility_timeout_s,
    # Look for such messages every 10 s (kombu's default scans every 10th time, i.e. every 100 s), so
    # a killed worker's messages come back within about the visibility timeout plus 10 s.
    "unacked_restore_interval": 10,
    "unacked_restore_throttle": 1,
}
# With acks_late, a task whose worker process died mid-run goes back to its queue instead of being
# acknowledged as failed (the dead letter record task is idempotent, as are the drain slices).
CELERY_TASK_REJECT_ON_WORKER_LOST = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"correlation": {"()": "spot.correlation.CorrelationIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["correlation"]},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# Django caps Meta.indexes names at 30 characters for Oracle; MariaDB allows 64 and FR-DB-001 names
# an index idx_orders_currency_coin_status (31 characters). security.W003 looks for Django's CSRF
# middleware by its dotted name; MIDDLEWARE has spot.browser's subclass of it, which checks every
# request but the ones signed with an API key (tests/spot/test_production_settings.py checks that).
SILENCED_SYSTEM_CHECKS = ["models.E034", "security.W003"]

CELERY_BEAT_SCHEDULE = {
    "ensure-matchers": {"task": "matching.ensure_matchers", "schedule": 2.0, "options": {"expires": 2.0}},
    "sweep-unqueued-orders": {"task": "orders.sweep_unqueued", "schedule": 5.0, "options": {"expires": 5.0}},
    # FR-RL-003: handled dead letters are kept DEAD_LETTER_RETENTION_DAYS days.
    "purge-dead-letters": {"task": "deadletters.purge", "schedule": 24 * 3600.0, "options": {"expires": 3600.0}},
}
