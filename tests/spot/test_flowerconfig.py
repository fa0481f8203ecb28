"""flowerconfig.py, which ``celery -A spot flower`` reads from the repository root."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

CONFIG = str(Path(__file__).resolve().parents[2] / "flowerconfig.py")


def test_flower_waits_long_enough_for_the_solo_matchers_to_answer(monkeypatch):
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "settings.dev")
    monkeypatch.delenv("FLOWER_INSPECT_TIMEOUT", raising=False)

    assert runpy.run_path(CONFIG)["inspect_timeout"] >= 3000  # ms; a slice is at most ~1.3 s


def test_flower_refuses_to_start_without_authentication_outside_development(monkeypatch):
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "settings.prod")
    monkeypatch.delenv("FLOWER_BASIC_AUTH", raising=False)

    with pytest.raises(SystemExit, match="set FLOWER_BASIC_AUTH=user:password"):
        runpy.run_path(CONFIG)


def test_flower_refuses_credentials_without_a_password(monkeypatch):
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "settings.prod")
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "admin")

    with pytest.raises(SystemExit, match="user:password pairs"):
        runpy.run_path(CONFIG)


def test_flower_starts_with_basic_auth_outside_development(monkeypatch):
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "settings.prod")
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "ops:a-long-secret")

    assert "inspect_timeout" in runpy.run_path(CONFIG)
