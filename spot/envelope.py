"""The API's envelope: every answer under ``/api/v1/`` is one JSON object, rendered with orjson.

A success::

    {"success": true, "message": null, "dataVersion": "1", "data": <the route's data>}

An error (``spot.errors.exception_handler`` for DRF's and the services' errors; ``error_response`` for
the ones DRF never sees: ``spot.http``'s 413/415/404, the authentication-failure limiter's 429)::

    {"success": false, "message": "<text>", "dataVersion": "1", "data": null,
     "errors": {"<field>": ["<text>", ...]}}

``errors`` is always there, ``{}`` when no field is at fault. ``message`` of a success is null unless
the view says something (``envelope_message``: e.g. that a ``client_order_id`` already named an order).

``dataVersion`` is the version of the data's shapes (``DATA_VERSION``): it changes when a release
changes what a field of ``data`` means or how it is written, so a client written against one version
can tell it talks to another. A constant of the deployed code: it costs nothing per request (no query,
no Redis call). A 204 No Content has no body, hence no envelope.

The old system wrapped its answers the same way; its clients read ``data`` and ``success``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from django.http import HttpResponse
from django.utils.functional import Promise
from rest_framework.renderers import BaseRenderer
from rest_framework.response import Response

DATA_VERSION = "1"  # bump when a release changes a field of `data` (docs/API.md, "The envelope")

# The attribute a view sets on its Response for the envelope's `message` (``envelope_message``).
MESSAGE_ATTRIBUTE = "envelope_message"


def success_envelope(data: Any, message: str | None = None) -> dict[str, Any]:
    return {"success": True, "message": message, "dataVersion": DATA_VERSION, "data": data}


def error_envelope(message: str, errors: dict[str, list[str]] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "success": False,
        "message": message,
        "dataVersion": DATA_VERSION,
        "data": None,
        "errors": errors or {},
        **extra,
    }


def envelope_message(response: Response, message: str) -> Response:
    """``response`` whose envelope will carry ``message`` (a success's note to the client)."""
    setattr(response, MESSAGE_ATTRIBUTE, message)
    return response


def dumps(value: Any) -> bytes:
    """``value`` as JSON bytes (UTF-8). Decimals become plain strings (the API never writes money as
    a number); a string no UTF-8 can hold (an unpaired surrogate echoed from input) is written with
    ``?`` in its place instead of failing the response."""
    try:
        return orjson.dumps(value, default=_default)
    except orjson.JSONEncodeError:
        return orjson.dumps(printable(value), default=_default)


def error_body(message: str, errors: dict[str, list[str]] | None = None) -> bytes:
    """An error's envelope as JSON bytes (for a WSGI wrapper that answers before Django)."""
    return dumps(error_envelope(message, errors))


def error_response(
    message: str, status: int, *, errors: dict[str, list[str]] | None = None, headers: dict[str, str] | None = None
) -> HttpResponse:
    """An error in the envelope outside DRF (a middleware's refusal)."""
    return HttpResponse(
        error_body(message, errors), status=status, content_type="application/json", headers=headers or {}
    )


class EnvelopeRenderer(BaseRenderer):
    """DRF's renderer for the whole API: the view's data in the envelope, as orjson writes it.

    An error status (>= 400) renders the exception handler's ``{"message", "errors", ...}`` as an
    error envelope; anything else is a success with the data as given. Faster than DRF's
    ``JSONRenderer`` (the standard library's encoder) by a good margin on an order list.
    """

    media_type = "application/json"
    format = "json"
    charset = None  # JSON is UTF-8 (RFC 8259): no charset parameter

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: dict[str, Any] | None = None
    ) -> bytes:
        response = (renderer_context or {}).get("response")
        status = response.status_code if response is not None else 200
        if status == 204:
            return b""
        if status >= 400:
            return dumps(_as_error(data))
        return dumps(success_envelope(data, getattr(response, MESSAGE_ATTRIBUTE, None)))


def _as_error(data: Any) -> dict[str, Any]:
    """The exception handler's body (``{"message", "errors"?, **extra}``) as an error envelope."""
    if not isinstance(data, dict) or "message" not in data:
        return error_envelope(str(data) if data else "error")
    extra = {key: value for key, value in data.items() if key not in {"message", "errors"}}
    return error_envelope(str(data["message"]), data.get("errors"), **extra)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Promise):  # a lazily translated message (DRF's defaults)
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def printable(value: Any) -> Any:
    """``value`` with every string made encodable as UTF-8: an unpaired surrogate that reached a
    message (an echoed input) becomes ``?``."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {printable(key): printable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [printable(item) for item in value]
    return value
