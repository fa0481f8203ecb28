"""One application error, rendered in one place (HackSoft style)."""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.db import InterfaceError, OperationalError
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """A business error with a message fit for the client; ``status`` is the HTTP status to answer."""

    status = 400

    def __init__(self, message: str, *, field: str | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra or {}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Any:
    from rest_framework.response import Response

    if isinstance(exc, ApplicationError):
        body: dict[str, Any] = {"message": exc.message, **exc.extra}
        if exc.field:
            body["errors"] = {exc.field: [exc.message]}
        return Response(body, status=exc.status)
    # A dependency is down or busy: nothing was accepted (the transaction rolled back) and the client
    # may retry, so this is a 503, not a 500.
    if isinstance(exc, OperationalError | InterfaceError):
        logger.warning("database unavailable: %s", exc)
        return Response({"message": "the database is unavailable; try again shortly"}, status=503)
    if isinstance(exc, redis.RedisError):
        logger.warning("redis unavailable: %s", exc)
        return Response({"message": "a service is unavailable; try again shortly"}, status=503)
    return drf_exception_handler(exc, context)
