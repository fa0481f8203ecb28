"""A batch: the stream entries popped together, their settled effects, and what to acknowledge.

One name from the stream to the DB and back: the engine fills it (``matching.worker.engine``), the
writer commits it in one transaction (``matching.worker.store``) and then acknowledges and publishes
it (``matching.worker.writer``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from matching.queue import Entry
from matching.worker.settlement import Settlement


@dataclass(slots=True)
class Batch:
    entries: list[Entry]
    effects: Settlement
    to_ack: list[str] = field(default_factory=list)  # applied now, or committed before a crash
    retry: list[str] = field(default_factory=list)  # malformed, to be delivered again (then dead-lettered)
    # Orders of the entries acknowledged by the checkpoint (committed before a crash or a Redis failure
    # that may have lost their cache writes): the writer refreshes them and the orders they traded with.
    refresh: list[int] = field(default_factory=list)
    last_entry: str = "0-0"  # the checkpoint this batch commits
    last_seq: int = 0  # the highest order sequence number given so far
    snapshot: str | None = None  # the top of book to publish after the commit (JSON), if due
