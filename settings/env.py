"""Typed readers for settings from the environment. Each fails loudly with ``ImproperlyConfigured``."""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

_MISSING = object()


def env_str(name: str, default: object = _MISSING) -> str:
    """The variable's value; without a default, a missing variable is an error."""
    value = os.environ.get(name)
    if value is None:
        if default is _MISSING:
            raise ImproperlyConfigured(f"environment variable {name} is required")
        return str(default)
    return value


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_int_map(name: str, default: dict[str, int]) -> dict[str, int]:
    """``key=integer`` pairs, comma-separated (``match_btc=9101,match_eth=9102``)."""
    raw = os.environ.get(name)
    if raw is None:
        return dict(default)
    result: dict[str, int] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        key, sep, value = (piece.strip() for piece in item.partition("="))
        if not sep or not key:
            raise ImproperlyConfigured(f"{name} must be key=integer pairs separated by commas, not {raw!r}")
        try:
            result[key] = int(value)
        except ValueError:
            raise ImproperlyConfigured(f"{name}: the value of {key!r} must be an integer, not {value!r}") from None
    return result


# Units of DRF's SimpleRateThrottle.parse_rate, which would take any word by its first letter ("5/sec").
_RATE_UNITS = frozenset("smhd")


def env_rate(name: str, default: str) -> str:
    """A rate limit ``N/s``, ``N/m``, ``N/h`` or ``N/d`` (N >= 1), returned as ``"N/u"``.

    Checked here so that a typo stops start-up instead of failing every request in DRF's parser.
    """
    raw = os.environ.get(name, default)
    count, sep, unit = (part.strip() for part in raw.partition("/"))
    if not sep or not count.isascii() or not count.isdigit() or int(count) < 1 or unit not in _RATE_UNITS:
        raise ImproperlyConfigured(
            f"{name} must be a number of requests (1 or more) per s, m, h or d, like 50/s, not {raw!r}"
        )
    return f"{int(count)}/{unit}"
