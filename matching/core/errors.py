"""Errors of the matching core. Each carries a message fit to show a client or an operator."""

from __future__ import annotations


class MatchingError(Exception):
    """Base of every error the core raises on purpose."""


class InvalidOrder(MatchingError):
    """The command's values break a rule (non-positive quantity, missing price, ...)."""


class DuplicateOrder(InvalidOrder):
    """An order with this id is already resting in the book."""


class UnknownOrder(MatchingError):
    """A cancel named an order that is not resting: never seen, already filled or canceled."""


class UnitError(InvalidOrder):
    """A decimal amount is not a whole multiple of its step (tick or lot)."""
