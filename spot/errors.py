"""One application error, rendered in one place (HackSoft style)."""

from __future__ import annotations

from typing import Any

from rest_framework.views import exception_handler as drf_exception_handler


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
    return drf_exception_handler(exc, context)
