"""Errors of the orders domain, each with the HTTP status it answers (rendered by ``spot.errors``)."""

from __future__ import annotations

from spot.errors import ApplicationError


class OrderRejected(ApplicationError):
    """The order breaks a rule of its market or of the API; nothing was written."""


class OrderConflict(ApplicationError):
    """Some orders of a batch name existing orders by ``client_order_id`` and others do not: the
    batch is neither a retry nor new, so nothing is placed (issue 10). ``items`` are the positions
    of the ones that name existing orders (``item`` the first of them); ``existing`` maps each
    position to the id of the order it names."""

    status = 409

    def __init__(self, message: str, *, existing: dict[int, int]) -> None:
        items = sorted(existing)
        super().__init__(message, field="client_order_id", item=items[0] if items else None)
        self.items = items
        self.existing = existing


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
