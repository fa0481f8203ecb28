"""Correlation ids (FR-OB-002): ``{YYYYMMDD}-{16 hex}``, e.g. ``20260123-a1b2c3d4e5f67890``.

An id enters with a request (header ``X-Correlation-ID``, or a new one), travels with the order into
its stream entry and dead letter, and is stamped on every log line of the work done for it.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime

from django.http import HttpRequest, HttpResponse

HEADER = "X-Correlation-ID"
PATTERN = re.compile(r"^\d{8}-[0-9a-f]{16}$")

_current: ContextVar[str] = ContextVar("correlation_id", default="-")


def new_correlation_id(now: datetime | None = None) -> str:
    """A fresh id for today (UTC)."""
    day = (now or datetime.now(UTC)).strftime("%Y%m%d")
    return f"{day}-{secrets.token_hex(8)}"


def current() -> str:
    """The correlation id of the work in progress, or ``-``."""
    return _current.get()


def bind(correlation_id: str) -> object:
    """Make ``correlation_id`` current; returns a token for ``unbind``."""
    return _current.set(correlation_id)


def unbind(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


class CorrelationIdFilter(logging.Filter):
    """Adds ``record.correlation_id`` so formatters can print it.

    In order of precedence: an id the call gave (``extra={"correlation_id": ...}``, e.g. a stream
    entry's), the id of the record's request (``django.request`` logs 4xx/5xx responses with
    ``request=`` after the middleware has returned, when the id is no longer bound), the bound one.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "correlation_id"):
            request = getattr(record, "request", None)
            record.correlation_id = getattr(request, "correlation_id", None) or _current.get()
        return True


class CorrelationIdMiddleware:
    """Takes a valid incoming ``X-Correlation-ID`` or makes one; echoes it on the response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get(HEADER, "")
        correlation_id = incoming if PATTERN.match(incoming) else new_correlation_id()
        request.correlation_id = correlation_id  # type: ignore[attr-defined]
        token = bind(correlation_id)
        try:
            response = self.get_response(request)
        finally:
            unbind(token)
        response[HEADER] = correlation_id
        return response
