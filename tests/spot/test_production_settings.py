"""Production settings cannot be half-configured (issue 9): each entry point loads ``settings.prod``
unless told otherwise, ``settings.prod`` refuses to start without its secrets, and once configured it
passes Django's deployment checks, forces TLS and serves the API as JSON only.

Each case runs in a fresh interpreter: settings are read once per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.production import PRODUCTION_ENV

ROOT = Path(__file__).resolve().parents[2]

SECRETS = {name: value for name, value in PRODUCTION_ENV.items() if name != "DJANGO_SETTINGS_MODULE"}

# Requests through Django's test client under the production settings; only paths that need neither
# the DB nor Redis, so the check runs without an account for "spot".
PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client
client = Client()
plain = client.get("/api/v1/markets", HTTP_HOST="spot.example")
health = client.get("/health/live", HTTP_HOST="spot.example")
secure = client.get("/health/live", HTTP_HOST="spot.example", HTTP_X_FORWARDED_PROTO="https")
print(json.dumps({
    "module": settings.SETTINGS_MODULE,
    "debug": settings.DEBUG,
    "renderers": settings.REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"],
    "plain_status": plain.status_code,
    "plain_location": plain.get("Location"),
    "health_status": health.status_code,
    "hsts": secure.get("Strict-Transport-Security"),
}))
"""


def _run(
    args: list[str], *, settings_module: str | None = "settings.prod", **env: str
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MYSQL_USER", "MYSQL_PASSWORD"))}
    environ.update(env)
    if settings_module:
        environ["DJANGO_SETTINGS_MODULE"] = settings_module
    return subprocess.run(args, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120)


def _load(**env: str) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-c", "import django; django.setup(); print('started')"], **env)


def test_production_settings_refuse_to_start_without_a_secret_key_and_say_how_to_develop():
    result = _load()

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr and "DJANGO_SETTINGS_MODULE=settings.dev" in result.stderr


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"DJANGO_SECRET_KEY": "short"}, "at least 50 characters"),
        ({"DJANGO_SECRET_KEY": "k" * 60}, "at least 50 characters"),  # long, but one character
        ({"DJANGO_ALLOWED_HOSTS": ""}, "DJANGO_ALLOWED_HOSTS"),
        ({"MYSQL_USER": "root"}, "must not be root"),
        ({"API_KEY_ENCRYPTION_KEYS": ""}, "API_KEY_ENCRYPTION_KEYS is required"),
        ({"API_KEY_ENCRYPTION_KEYS": "not-a-fernet-key"}, "must be a Fernet key"),
    ],
)
def test_production_settings_refuse_a_weak_or_missing_value(change, complaint):
    result = _load(**{**SECRETS, **change})

    assert result.returncode != 0 and complaint in result.stderr


@pytest.mark.parametrize("missing", ["MYSQL_USER", "MYSQL_PASSWORD"])
def test_production_settings_need_the_database_account(missing):
    result = _load(**{k: v for k, v in SECRETS.items() if k != missing})

    assert result.returncode != 0 and missing in result.stderr


def test_production_settings_start_with_their_secrets_given():
    result = _load(**SECRETS)

    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout


@pytest.mark.parametrize(
    "entry_point",
    [
        ["manage.py", "check"],
        ["-c", "import spot.wsgi"],
        ["-c", "from spot.celery import app; app.loader.import_default_modules()"],
    ],
    ids=["manage.py", "wsgi", "celery"],
)
def test_without_a_settings_module_every_entry_point_loads_production_and_refuses_to_run_unconfigured(entry_point):
    result = _run([sys.executable, *entry_point], settings_module=None)

    assert result.returncode != 0
    assert "required by the production settings" in result.stderr, result.stderr[-2000:]


def test_the_csrf_middleware_is_djangos_so_its_silenced_name_check_loses_nothing():
    # settings/base.py silences security.W003, which looks for Django's class by name only.
    from django.conf import settings
    from django.middleware.csrf import CsrfViewMiddleware
    from django.utils.module_loading import import_string

    csrf = [import_string(name) for name in settings.MIDDLEWARE if name.endswith(".CsrfViewMiddleware")]
    assert len(csrf) == 1 and issubclass(csrf[0], CsrfViewMiddleware)


def test_check_deploy_is_clean_under_production_settings():
    result = _run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], **SECRETS)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_forces_tls_sends_hsts_and_renders_json_only():
    result = _run([sys.executable, "-c", PROBE], **SECRETS)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])

    assert seen["module"] == "settings.prod" and seen["debug"] is False
    assert seen["plain_status"] == 301 and seen["plain_location"] == "https://spot.example/api/v1/markets"
    assert seen["health_status"] == 200  # probes reach gunicorn over plain HTTP
    assert seen["hsts"] == "max-age=31536000; includeSubDomains; preload"
    assert seen["renderers"] == ["spot.envelope.EnvelopeRenderer"]  # the API's envelope; no browsable API
