from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from spot.correlation import HEADER, PATTERN, new_correlation_id

ROOT = Path(__file__).resolve().parents[2]


def test_correlation_ids_have_the_fr_ob_002_shape():
    cid = new_correlation_id(datetime(2026, 1, 23, tzinfo=UTC))

    assert cid.startswith("20260123-")
    assert PATTERN.match(cid)
    assert len(cid) == len("20260123-a1b2c3d4e5f67890")


@pytest.mark.django_db
def test_a_request_gets_a_correlation_id_and_a_valid_incoming_one_is_kept(client):
    fresh = client.get("/api/markets")
    kept = client.get("/api/markets", headers={HEADER: "20260123-a1b2c3d4e5f67890"})
    replaced = client.get("/api/markets", headers={HEADER: "not-an-id"})

    assert PATTERN.match(fresh[HEADER])
    assert kept[HEADER] == "20260123-a1b2c3d4e5f67890"
    assert replaced[HEADER] != "not-an-id" and PATTERN.match(replaced[HEADER])


def _load_prod(**env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MYSQL_PASSWORD"))}
    environ.update(env, DJANGO_SETTINGS_MODULE="settings.prod")
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_settings_refuse_to_start_without_a_secret_key():
    result = _load_prod()

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_settings_refuse_a_weak_secret_key_and_missing_hosts():
    weak = _load_prod(DJANGO_SECRET_KEY="short", MYSQL_PASSWORD="x", DJANGO_ALLOWED_HOSTS="spot.example")
    no_hosts = _load_prod(DJANGO_SECRET_KEY="k" * 50, MYSQL_PASSWORD="x")

    assert weak.returncode != 0 and "at least 32 characters" in weak.stderr
    assert no_hosts.returncode != 0 and "DJANGO_ALLOWED_HOSTS" in no_hosts.stderr


def test_production_settings_start_with_their_secrets_given():
    result = _load_prod(DJANGO_SECRET_KEY="k" * 50, MYSQL_PASSWORD="x", DJANGO_ALLOWED_HOSTS="spot.example")

    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout
