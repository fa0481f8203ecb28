"""Errors of the orders domain, each with the HTTP status it answers (rendered by ``spot.errors``)."""

from __future__ import annotations

from spot.errors import ApplicationError


class OrderRejected(ApplicationError):
    """The order breaks a rule of its market or of the API; nothing was written."""


class InsufficientFunds(ApplicationError):
    status = 400


class MarketUnavailable(ApplicationError):
    status = 400


class MarketNotFound(ApplicationError):
    """No market has this code (a market route: its book, its trades)."""

    status = 404


class OrderNotCancelable(ApplicationError):
    status = 409


class OrderNotFound(ApplicationError):
    """No such order for this user (another user's order is reported the same way)."""

    status = 404


class ServiceUnavailable(ApplicationError):
    """A dependency (DB, Redis) is down; the request may be retried."""

    status = 503


class InvalidInput(ApplicationError):
    """The request's fields fail the API's shape rules; ``errors`` names each one."""


class DeadLetterNotFound(ApplicationError):
    """No dead letter has this id."""

    status = 404


class DeadLetterNotRequeueable(ApplicationError):
    """The dead letter is not ``dead`` any more (already requeued or discarded): neither a requeue nor
    a discard applies to it."""

    status = 409


class InvalidApiKey(ApplicationError):
    """An API key's scopes, IP allowlist or label are not acceptable; ``field`` names which."""


class ApiKeyNotFound(ApplicationError):
    """No such API key (or another user's, reported the same way)."""

    status = 404
