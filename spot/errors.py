"""One application error, rendered in one place (HackSoft style), and the one error shape of the API.

``exception_handler`` turns DRF's exceptions (parse errors, authentication, permissions, 404, 405,
406, 415, throttling with its ``Retry-After``, validation) and the services' ``ApplicationError``\\ s
into ``{"message": "<text>", "errors": {"<field>": ["<text>", ...]}}`` (``errors`` left out when no
field is at fault), which ``spot.envelope.EnvelopeRenderer`` writes as the API's error envelope
(``success`` false, ``data`` null, ``errors`` always present). A field inside a list is named by its
position: ``orders[3].price``. ``spot.http`` gives the errors DRF never sees the same envelope.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from spot.envelope import printable

logger = logging.getLogger(__name__)

FIELDS_IN_MESSAGE = 5  # a batch can name hundreds of fields; the message lists the first few


class ApplicationError(Exception):
    """A business error with a message fit for the client; ``status`` is the HTTP status to answer.

    ``item`` is the position of the offending entry when a service took a list (a batch of orders):
    the view that knows the list's field name renames ``field`` to ``orders[3].price``.
    """

    status = 400

    def __init__(
        self, message: str, *, field: str | None = None, extra: dict[str, Any] | None = None, item: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra or {}
        self.item = item


def exception_handler(exc: Exception, context: dict[str, Any]) -> Any:
    from rest_framework.response import Response

    if isinstance(exc, ApplicationError):
        body: dict[str, Any] = {"message": exc.message, **exc.extra}
        if exc.field:
            body["errors"] = {exc.field: [exc.message]}
        return Response(printable(body), status=exc.status)
    # A dependency is down or busy: nothing was accepted (the transaction rolled back) and the client
    # may retry, so this is a 503, not a 500.
    if isinstance(exc, OperationalError | InterfaceError):
        logger.warning("database unavailable: %s", exc)
        return Response({"message": "the database is unavailable; try again shortly"}, status=503)
    if isinstance(exc, redis.RedisError):
        logger.warning("redis unavailable: %s", exc)
        return Response({"message": "a service is unavailable; try again shortly"}, status=503)
    # Django's own refusals while reading the body (request.body, request.POST): DRF passes them on,
    # and Django would answer them with an HTML 400.
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"message": f"the body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes"}, status=413
        )
    if isinstance(exc, SuspiciousOperation):
        logger.warning("suspicious request: %s", exc)
        return Response({"message": "the request is malformed or exceeds a limit"}, status=400)
    if isinstance(exc, UnicodeError):  # a body that is not valid in the charset it names
        return Response({"message": "the body is not valid text in its charset"}, status=400)
    response = drf_exception_handler(exc, context)  # keeps WWW-Authenticate and Retry-After
    if response is not None:
        response.data = printable(_shaped(response.data))
    return response


def error_fields(detail: Any) -> dict[str, list[str]]:
    """DRF's nested error detail as ``{"orders[3].price": [message, ...]}``; messages about an object as
    a whole (``non_field_errors``) go under the object's own name, ``""`` at the top."""
    fields: dict[str, list[str]] = {}

    def visit(value: Any, name: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():  # DRF keys a list's items by their index (an int)
                visit(item, name if key == api_settings.NON_FIELD_ERRORS_KEY else _join(name, key))
        elif isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
            for index, item in enumerate(value):
                visit(item, f"{name}[{index}]")
        elif isinstance(value, list):
            fields.setdefault(name, []).extend(str(item) for item in value)
        else:
            fields.setdefault(name, []).append(str(value))

    visit(detail, "")
    return fields


def _join(name: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{name}[{key}]"
    return f"{name}.{key}" if name else key


def _shaped(data: Any) -> dict[str, Any]:
    """DRF's ``{"detail": ...}`` or a validation error's field detail, in the one shape."""
    if isinstance(data, dict) and set(data) == {"detail"}:
        return {"message": str(data["detail"])}
    fields = error_fields(data)
    general = fields.pop("", [])
    if not fields:
        return {"message": "; ".join(general) or "invalid input"}
    names = list(fields)
    listed = ", ".join(names[:FIELDS_IN_MESSAGE])
    if len(names) > FIELDS_IN_MESSAGE:
        listed += f" and {len(names) - FIELDS_IN_MESSAGE} more"
    message = "; ".join([*general, f"invalid input: {listed}"])
    return {"message": message, "errors": fields}
