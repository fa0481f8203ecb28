"""Errors of the matcher worker. The drain task decides what each means: ``NotOwner`` stands by,
``Fenced`` stands down, a transient DB or Redis error is retried, anything else isolates its batch."""

from __future__ import annotations


class NotOwner(Exception):
    """Another matcher holds this market's lease; this one does not match."""


class Fenced(Exception):
    """The market's epoch moved on: another matcher owns it now. Nothing was written."""


class MissingBalance(Exception):
    """A balance row the batch settles does not exist (intake creates them); nothing was written."""


class BatchRejected(Exception):
    """The DB matched fewer order rows than the batch changes (a row vanished); nothing was written."""
