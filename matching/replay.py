"""``python -m matching.replay < commands.jsonl > events.jsonl``: offline, deterministic replay.

The interface is described in ``docs/replay.md``. Reads one JSON command per line on standard input,
writes one JSON event per line on standard output; exits 2 with a message naming the line on a
malformed line (events of the lines before it are already written). Amounts are exact: prices and
quantities are carried as integers of 1e-10 (the schema's ``decimal_places``); an amount finer than
that is rejected as an invalid value. Blank lines are skipped.

Events are written byte for byte as ``json.dumps(event, separators=(",", ":"))`` writes them, but
formatted directly: every value but a reject's reason is an integer, a plain decimal string or a
status name, none of which JSON escapes; the reason goes through ``json`` (escaped to ASCII). The
output is therefore ASCII. It is collected and written in chunks of many events.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import BinaryIO, TextIO, cast

from matching.commands import MalformedCommand, PlaceCommand, decode
from matching.core import OrderStatus, PlaceResult, units_text
from matching.matcher import MarketMatcher, Rejected

STEP = Decimal("1E-10")  # DecimalField(30, 10): the finest amount the exchange stores
PLACES = 10  # STEP is 10**-PLACES

STATUS = {status: status.value for status in OrderStatus}  # cheaper than .value, an enum property

CHUNK = 4096  # events collected before one write
AMOUNTS = 1 << 16  # amounts kept formatted (prices and quantities repeat); the cache starts over beyond


def run(stdin: Iterable[str | bytes], stdout: TextIO | BinaryIO, stderr: TextIO) -> int:
    """Replay ``stdin`` into ``stdout``; returns the exit status (0, or 2 on a malformed line).

    ``stdin`` yields text lines, or byte lines that must be UTF-8 (a line that is not is malformed).
    ``stdout`` is a text stream, or a binary one (``io.BufferedIOBase``, ``io.RawIOBase``) that gets
    the same text as ASCII bytes.
    """
    matcher = MarketMatcher(STEP, STEP)
    place, cancel = matcher.place, matcher.cancel
    seen: set[int] = set()  # every id ever placed: ids are unique per place command
    reason_text = json.JSONEncoder().encode  # as the whole event was encoded before: ASCII, escaped
    write = _text_writer(stdout)
    chunk: list[str] = []
    emit = chunk.append
    amounts: dict[int, str] = {}

    def amount(units: int) -> str:
        text = amounts.get(units)
        if text is None:
            if len(amounts) >= AMOUNTS:
                amounts.clear()
            text = amounts[units] = units_text(units, PLACES)
        return text

    try:
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
                write("".join(chunk))
                chunk.clear()
                stdout.flush()
                stderr.write(f"replay: line {number}: {exc}\n")
                return 2
            if isinstance(command, PlaceCommand):
                if command.id in seen:
                    emit(f'{{"event":"reject","id":{command.id},"reason":"duplicate order id"}}\n')
                    continue
                seen.add(command.id)
                outcome = place(command)
                if isinstance(outcome, PlaceResult):
                    # The command's own order, then each stop order it triggered, in the order they
                    # entered the book (issue 10); a stop that entered says so with a trigger event.
                    for entered in (outcome, *outcome.triggered) if outcome.triggered else (outcome,):
                        if entered.trigger_price is not None:
                            emit(
                                f'{{"event":"trigger","id":{entered.order_id},'
                                f'"price":"{amount(entered.trigger_price)}"}}\n'
                            )
                        for taker, maker, _, _, _, price, quantity, _ in entered.trades:
                            emit(
                                f'{{"event":"trade","taker":{taker},"maker":{maker},'
                                f'"price":"{amounts.get(price) or amount(price)}",'
                                f'"quantity":"{amounts.get(quantity) or amount(quantity)}"}}\n'
                            )
                        emit(
                            f'{{"event":"order","id":{entered.order_id},"status":"{STATUS[entered.status]}",'
                            f'"executed_quantity":"{amounts.get(entered.filled) or amount(entered.filled)}"}}\n'
                        )
                else:
                    emit(f'{{"event":"reject","id":{outcome.order_id},"reason":{reason_text(outcome.reason)}}}\n')
            else:
                result = cancel(command)
                if isinstance(result, Rejected):
                    emit(f'{{"event":"reject","id":{result.order_id},"reason":{reason_text(result.reason)}}}\n')
                else:
                    emit(
                        f'{{"event":"order","id":{result.order_id},"status":"canceled",'
                        f'"executed_quantity":"{amount(result.filled)}"}}\n'
                    )
            if len(chunk) >= CHUNK:
                write("".join(chunk))
                chunk.clear()
        bids, asks = matcher.book.depth()
        emit(
            '{"event":"book","bids":['
            + ",".join(f'["{amount(p)}","{amount(q)}"]' for p, q in bids)
            + '],"asks":['
            + ",".join(f'["{amount(p)}","{amount(q)}"]' for p, q in asks)
            + "]}\n"
        )
    finally:
        write("".join(chunk))  # what was replayed is written, even if something fails
        stdout.flush()
    return 0


def _text_writer(stream: TextIO | BinaryIO) -> Callable[[str], object]:
    """``stream.write`` for text; for a binary stream, a write that encodes (the events are ASCII)."""
    if isinstance(stream, io.BufferedIOBase | io.RawIOBase):
        binary = stream.write
        return lambda text: binary(text.encode("ascii"))
    return cast(TextIO, stream).write


def main() -> int:
    # Bytes, decoded line by line: a text stdin decodes ahead in chunks with the locale's encoding, so
    # a bad byte would escape as a traceback before the lines preceding it are replayed. Bytes out too:
    # the events are ASCII, and a binary stream takes the chunks without a text layer.
    return run(sys.stdin.buffer, sys.stdout.buffer, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
