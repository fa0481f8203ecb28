"""``python -m matching.replay < commands.jsonl > events.jsonl``: offline, deterministic replay.

The contract is ``shared/contracts/replay.md``. Reads one JSON command per line on standard input,
writes one JSON event per line on standard output; exits 2 with a message naming the line on a
malformed line (events of the lines before it are already written). Amounts are exact: prices and
quantities are carried as integers of 1e-10 (the schema's ``decimal_places``); an amount finer than
that is rejected as an invalid value. Blank lines are skipped.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, TextIO

from matching.commands import MalformedCommand, PlaceCommand, decode
from matching.core import CancelResult, PlaceResult, from_units, plain
from matching.matcher import MarketMatcher, Rejected

STEP = Decimal("1E-10")  # DecimalField(30, 10): the finest amount the exchange stores


def _amount(units: int) -> str:
    return plain(from_units(units, STEP))


def run(stdin: Iterable[str | bytes], stdout: TextIO, stderr: TextIO) -> int:
    """Replay ``stdin`` into ``stdout``; returns the exit status (0, or 2 on a malformed line).

    ``stdin`` yields text lines, or byte lines that must be UTF-8 (a line that is not is malformed).
    """
    matcher = MarketMatcher(STEP, STEP)
    seen: set[int] = set()  # every id ever placed: ids are unique per place command
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    write = stdout.write

    def emit(event: dict[str, Any]) -> None:
        write(dumps(event))
        write("\n")

    for number, raw in enumerate(stdin, start=1):
        if not raw.strip():
            continue
        try:
            if isinstance(raw, bytes):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise MalformedCommand(f"not UTF-8 ({exc})") from None
            else:
                line = raw
            command = decode(line)
        except MalformedCommand as exc:
            stdout.flush()
            stderr.write(f"replay: line {number}: {exc}\n")
            return 2
        if isinstance(command, PlaceCommand):
            if command.id in seen:
                emit({"event": "reject", "id": command.id, "reason": "duplicate order id"})
                continue
            seen.add(command.id)
        outcome = matcher.apply(command)
        if isinstance(outcome, Rejected):
            emit({"event": "reject", "id": outcome.order_id, "reason": outcome.reason})
        elif isinstance(outcome, PlaceResult):
            for trade in outcome.trades:
                emit(
                    {
                        "event": "trade",
                        "taker": trade.taker_id,
                        "maker": trade.maker_id,
                        "price": _amount(trade.price),
                        "quantity": _amount(trade.quantity),
                    }
                )
            emit(
                {
                    "event": "order",
                    "id": outcome.order_id,
                    "status": outcome.status.value,
                    "executed_quantity": _amount(outcome.filled),
                }
            )
        else:
            assert isinstance(outcome, CancelResult)
            emit(
                {
                    "event": "order",
                    "id": outcome.order_id,
                    "status": "canceled",
                    "executed_quantity": _amount(outcome.filled),
                }
            )
    bids, asks = matcher.book.depth()
    emit(
        {
            "event": "book",
            "bids": [[_amount(p), _amount(q)] for p, q in bids],
            "asks": [[_amount(p), _amount(q)] for p, q in asks],
        }
    )
    return 0


def main() -> int:
    # Bytes, decoded line by line: a text stdin decodes ahead in chunks with the locale's encoding, so
    # a bad byte would escape as a traceback before the lines preceding it are replayed.
    return run(sys.stdin.buffer, sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
