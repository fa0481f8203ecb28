"""Log lines carry the correlation id of the work they are about (FR-OB-002), including the lines
``django.request`` writes about a response after the correlation middleware has returned."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from django.conf import settings

from spot.correlation import HEADER, PATTERN, CorrelationIdFilter, bind, unbind

CID = "20260123-a1b2c3d4e5f67890"


class _Lines(logging.Handler):
    """A handler set up as settings.LOGGING's console handler: the correlation filter, the plain format."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(CorrelationIdFilter())
        self.setFormatter(logging.Formatter(settings.LOGGING["formatters"]["plain"]["format"]))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def request_log() -> Iterator[_Lines]:
    handler = _Lines()
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("test", logging.WARNING, __file__, 1, "message", (), None)
    for name, value in extra.items():
        setattr(record, name, value)
    return record


@pytest.mark.django_db
def test_a_4xx_logged_by_django_request_after_the_middleware_returned_carries_the_request_id(client, request_log):
    # The API answers 401 as a response (not an exception): django.request logs it in the handler,
    # outside every middleware, where the id is no longer bound.
    response = client.get("/api/v1/orders/pending", headers={HEADER: CID})

    assert response.status_code == 401
    assert any("Unauthorized: /api/v1/orders/pending" in line for line in request_log.lines), request_log.lines
    assert all(f"[{CID}]" in line for line in request_log.lines), request_log.lines


@pytest.mark.django_db
def test_a_request_without_an_id_gets_one_on_its_log_line_that_matches_the_response_header(client, request_log):
    response = client.get("/api/v1/orders/pending")

    cid = response[HEADER]
    assert PATTERN.match(cid)
    assert request_log.lines and all(f"[{cid}]" in line for line in request_log.lines), request_log.lines


def test_an_id_given_by_the_caller_wins_over_the_request_and_the_bound_one():
    token = bind("20260101-0000000000000001")
    try:
        given = _record(correlation_id="20260101-0000000000000002", request=type("R", (), {"correlation_id": "x"})())
        from_request = _record(request=type("R", (), {"correlation_id": "20260101-0000000000000003"})())
        request_without_id = _record(request=object())
        bound = _record()
        for record in (given, from_request, request_without_id, bound):
            assert CorrelationIdFilter().filter(record)
    finally:
        unbind(token)

    assert given.correlation_id == "20260101-0000000000000002"
    assert from_request.correlation_id == "20260101-0000000000000003"
    assert request_without_id.correlation_id == "20260101-0000000000000001"
    assert bound.correlation_id == "20260101-0000000000000001"


def test_a_line_outside_any_work_reads_a_dash():
    record = _record()
    CorrelationIdFilter().filter(record)

    assert record.correlation_id == "-"
