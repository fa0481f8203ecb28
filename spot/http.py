"""The HTTP edge: what a request may be before the API reads it, and errors as JSON where DRF's
exception handler does not run. Standard library, Django and DRF only.

Outermost first:

- ``guard_charset`` wraps the WSGI application (``spot.wsgi``). Django's ``WSGIRequest`` decodes the
  query string with the charset the ``Content-Type`` names inside its constructor (setting
  ``encoding`` evaluates ``GET``), so a codec that is not a text encoding (``rot13``, ``base64``,
  ``zlib``, ``punycode`` ...) raises before any middleware runs. The wrapper answers 415 first.
- ``ApiEdgeMiddleware`` refuses a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (413) before anything reads
  it and the same charsets (415; Django's test client builds requests without the wrapper), and turns
  any error response under ``/api/`` that is not JSON (Django's HTML 400, 403, 404, 500 pages) into the
  API's error envelope (``spot.envelope``).
- ``ContentNegotiation`` picks a parser only for the exact media type it declares (DRF's default lets
  ``*/*`` or ``application/*`` select the JSON parser); ``ExactJSONParser`` and ``FormParser`` are the
  API's only parsers (no multipart: nothing in the API uploads files).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent
from django.http import HttpRequest, HttpResponse
from django.utils.http import parse_header_parameters
from rest_framework import parsers
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.utils.json import strict_constant

from spot.envelope import error_body, error_response

API_PREFIX = "/api/"

# Canonical codec names (``codecs.lookup(name).name``), so aliases such as ``UTF8``, ``us-ascii`` and
# ``latin-1`` pass. An allowlist, not ``CodecInfo._is_text_encoding`` (private): other text codecs
# either raise errors Django does not expect while decoding a query string (``idna``) or read ASCII
# as something else (``utf-16``, ``utf-7``, EBCDIC's ``cp037``), and no API client needs them. JSON
# is UTF-8 (RFC 8259); ISO-8859-1 stays for old form clients.
ACCEPTED_CHARSETS = frozenset({"utf-8", "ascii", "iso8859-1"})

# The API's documents nest at most 3 levels (a batch: object > orders list > order object); 32 leaves
# room for any client's wrapping and refuses what is only there to exhaust the stack.
JSON_MAX_DEPTH = 32

# After decoding, a valid surrogate pair is one code point above U+FFFF: anything left in this range
# is an unpaired surrogate (``"\\ud800"``), which has no UTF-8 form and cannot be stored or echoed.
_SURROGATE = re.compile("[\ud800-\udfff]")

WSGIApplication = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def charset_refusal(content_type: str) -> str | None:
    """Why a request with this ``Content-Type`` header is refused, or ``None`` when it is fine.

    Reads the header as Django does (``parse_header_parameters``, which itself raises on an RFC 2231
    parameter naming an unknown codec). A charset outside ``ACCEPTED_CHARSETS`` is refused, unknown
    ones included (Django would ignore those; a client naming one has a bug worth telling it about).
    """
    try:
        _, params = parse_header_parameters(content_type)
    except ValueError:
        return "the Content-Type header is malformed"
    charset = params.get("charset")
    if charset is None:
        return None
    try:
        name = codecs.lookup(charset).name
    except (LookupError, ValueError):  # unknown, or not a codec name at all (an embedded NUL)
        name = None
    if name in ACCEPTED_CHARSETS:
        return None
    shown = charset if len(charset) <= 40 else f"{charset[:40]}..."
    return f"charset {shown!r} is not supported: send utf-8"


def guard_charset(application: WSGIApplication) -> WSGIApplication:
    """``application`` behind a check of the request's charset: 415 JSON before Django sees a refused one.

    Such a request gets no correlation id and is not in the web's metrics: it never reaches the
    middleware that would give them.
    """

    def guarded(wsgi_env: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        refusal = charset_refusal(wsgi_env.get("CONTENT_TYPE", ""))
        if refusal is None:
            return application(wsgi_env, start_response)
        body = error_body(refusal)
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        start_response("415 Unsupported Media Type", headers)
        return [body]

    return guarded


class ApiEdgeMiddleware:
    """413 for a body over the limit and 415 for a refused charset, before anything reads the body;
    under ``/api/``, every error response that is not JSON becomes the error envelope.

    Put it right after the correlation id middleware: it sees every response the layers inside it
    make, including Django's own error pages for exceptions they raise (``DisallowedHost``, a 404 no
    route matched, a 500).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self._refusal(request)
        if response is None:
            response = self.get_response(request)
        if request.path_info.startswith(API_PREFIX) and response.status_code >= 400 and not _is_json(response):
            response = _as_json(response)
        return response

    def _refusal(self, request: HttpRequest) -> HttpResponse | None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # gunicorn refuses a malformed Content-Length itself; Django then reads nothing
        if limit is not None and length > limit:
            return error_response(f"the body is larger than {limit} bytes", 413)
        refusal = charset_refusal(request.META.get("CONTENT_TYPE", ""))
        if refusal is not None:
            return error_response(refusal, 415)
        return None


def _is_json(response: HttpResponse) -> bool:
    return str(response.get("Content-Type", "")).startswith("application/json")


def _as_json(response: HttpResponse) -> HttpResponse:
    """The same status and headers with the error envelope: the message is the status's reason phrase."""
    shaped = error_response(response.reason_phrase.lower(), response.status_code)
    for header, value in response.items():
        if header.lower() not in {"content-type", "content-length"}:
            shaped[header] = value
    return shaped


# -- DRF: content negotiation and parsers ---------------------------------------------------------


class ContentNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, except that a body is parsed only when its media type is exactly one a parser
    declares: ``*/*``, ``application/*`` or ``text/plain`` get 415, not the JSON parser."""

    def select_parser(self, request: Any, parsers: list[Any]) -> Any:
        try:
            media_type, _ = parse_header_parameters(request.content_type)
        except ValueError:
            return None
        return next((parser for parser in parsers if parser.media_type == media_type), None)


class JSONNumber(str):
    """A JSON number with a fraction or an exponent, kept as the text it was sent as.

    Never a ``float`` (money is exact) and not yet a ``Decimal``: ``1e99999999999999999999`` has no
    ``Decimal`` (``InvalidOperation``), so the field that receives it converts it and, when it cannot,
    says so naming itself. A ``str`` so that fields taking text take it as DRF takes a float.
    """

    __slots__ = ()


class ExactJSONParser(parsers.JSONParser):
    """JSON read exactly and defensively: numbers with a fraction or exponent as ``JSONNumber``;
    ``NaN``/``Infinity`` refused; nesting deeper than ``JSON_MAX_DEPTH`` refused (400, never a
    ``RecursionError``); a string or key with an unpaired surrogate refused naming where it is
    (``orders[3].type``), since it has no UTF-8 form to store or echo."""

    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict[str, Any] | None = None) -> Any:
        encoding = (parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET
        try:
            text = stream.read().decode(encoding)
        except UnicodeDecodeError:
            raise ParseError(f"the body is not valid {encoding}") from None
        try:
            document = json.loads(text, parse_float=JSONNumber, parse_constant=strict_constant)
        except RecursionError:
            raise ParseError(_TOO_DEEP) from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        _check_document(document)
        return document


class FormParser(parsers.FormParser):
    """DRF's form parser; too many fields is a 400 saying the limit."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict[str, Any] | None = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except TooManyFieldsSent:
            raise ParseError(f"too many form fields: at most {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS}") from None


_TOO_DEEP = f"JSON nesting too deep: at most {JSON_MAX_DEPTH} levels of arrays and objects"


def _check_document(document: Any) -> None:
    """Depth and unpaired surrogates, without recursion (a deep document must not exhaust the stack
    here either). Raises ``ParseError`` (too deep) or ``ValidationError`` naming the string's path."""
    stack: list[tuple[Any, str, int]] = [(document, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, dict | list) and depth > JSON_MAX_DEPTH:
            raise ParseError(_TOO_DEEP)
        if isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    _refuse_text(path, "has a key that is not valid Unicode (an unpaired surrogate)")
                stack.append((item, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{index}]", depth + 1) for index, item in enumerate(value))
        elif isinstance(value, str) and _SURROGATE.search(value):
            _refuse_text(path, "is not valid Unicode (an unpaired surrogate)")


def _refuse_text(path: str, problem: str) -> None:
    if not path:
        raise ParseError(f"the body {problem}")
    raise ValidationError({path: [problem]})
