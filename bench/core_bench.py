"""Micro-benchmark of the matching core: ``python bench/core_bench.py --commands 200000 --seed 7``.

Builds the project's seeded workload up front (``bench.workload``, the loadtest's stream: mostly gtc
limit orders a few ticks around a drifting mid price, 10% cancels, a few % ioc, fok and market
orders), in ticks and lots, then times only its replay through ``OrderBook.place``/``cancel``.
``--stop-share 0.1`` makes that share of the places stop orders (issue 10; ``workload.generate``
says how they are drawn); the default, 0, is the stream measured before stop orders existed.
``--clock cpu`` times the process's CPU time instead of wall time: steadier on a machine that other
processes share (the loop does no I/O, so the two agree on an idle machine). Each
repetition replays into a fresh book; the best and median rates are reported, and the book's
invariants are checked after the timing. Not a test: it asserts nothing about speed.

The workload picks a cancel's target among all earlier gtc places, three in four of which have filled
by then; here each cancel is retargeted (seeded) to an order still resting at that point, so that
cancels do the real work: update the level, leave a dead heap entry that matching later skips.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from the repo root

from bench import workload
from matching.core import OrderBook, OrderStatus, OrderType, Side, StopCondition, TimeInForce, to_units

TICK = Decimal("0.01")  # workload.generate's defaults
LOT = Decimal("0.0001")

PLACE = 0
CANCEL = 1

# (PLACE, id, user, side, lots, price or None, type, tif, base price or None, stop condition or None)
# or (CANCEL, id)
CoreCommand = tuple[object, ...]


def build_stream(count: int, seed: int, stop_share: float = 0.0) -> list[CoreCommand]:
    """The workload's ``count`` commands in the core's terms (ids from 1, prices in ticks, lots), each
    cancel naming an order resting (or a stop waiting) at that point, found by feeding a scratch book
    as it is built."""
    rng = random.Random(seed)
    book = OrderBook()
    resting: list[int] = []  # ids that rested or waited; pruned lazily once they leave the book
    stream: list[CoreCommand] = []
    for command in workload.generate(count, seed=seed, tick=TICK, lot=LOT, stop_share=stop_share):
        if isinstance(command, workload.Cancel):
            order_id = _pop_resting(rng, resting, book)
            if order_id is not None:
                book.cancel(order_id)
                stream.append((CANCEL, order_id))
            continue
        order_id = command.ref + 1
        side, order_type, tif = Side(command.side), OrderType(command.type), TimeInForce(command.tif)
        lots = to_units(command.quantity, LOT, what="quantity")
        price = None if command.price is None else to_units(command.price, TICK, what="price")
        base = None if command.base_price is None else to_units(command.base_price, TICK, what="base price")
        condition = None if command.stop_condition is None else StopCondition(command.stop_condition)
        result = book.place(order_id, command.user, side, lots, price, order_type, tif, None, None, base, condition)
        if result.remaining or result.status is OrderStatus.STOPPING:
            resting.append(order_id)
        resting.extend(entered.order_id for entered in result.triggered if entered.remaining)
        stream.append((PLACE, order_id, command.user, side, lots, price, order_type, tif, base, condition))
    return stream


def _pop_resting(rng: random.Random, resting: list[int], book: OrderBook) -> int | None:
    """Remove and return a random id of ``resting`` still in ``book`` (dropping filled ones), or None."""
    while resting:
        index = rng.randrange(len(resting))
        order_id = resting[index]
        resting[index] = resting[-1]
        resting.pop()
        if order_id in book:
            return order_id
    return None


def replay(
    stream: list[CoreCommand], clock: Callable[[], float] = time.perf_counter
) -> tuple[float, int, int, OrderBook]:
    """Replay ``stream`` into a fresh book; returns (seconds, trades, stops triggered, book): trades and
    triggers include the stops'. Only the loop is timed."""
    gc.collect()  # start each run without the previous run's garbage; the collector stays on while timed
    book = OrderBook()
    place = book.place
    cancel = book.cancel
    trades = 0
    triggered = 0
    start = clock()
    for command in stream:
        if command[0] == PLACE:
            _, order_id, user, side, lots, price, order_type, tif, base, condition = command
            if base is None:  # the call every benchmark before stop orders made
                result = place(order_id, user, side, lots, price, order_type, tif)  # type: ignore[arg-type]
            else:
                result = place(order_id, user, side, lots, price, order_type, tif, None, None, base, condition)  # type: ignore[arg-type]
                if result.trigger_price is not None:  # triggered at once, at its placement
                    triggered += 1
            trades += len(result.trades)
            if result.triggered:
                triggered += len(result.triggered)
                trades += sum(len(entered.trades) for entered in result.triggered)
        else:
            cancel(command[1])  # type: ignore[arg-type]
    elapsed = clock() - start
    return elapsed, trades, triggered, book


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time the matching core on a seeded workload.")
    parser.add_argument("--commands", type=int, default=200_000, help="commands in the stream")
    parser.add_argument("--seed", type=int, default=7, help="seed of the stream")
    parser.add_argument("--repeat", type=int, default=5, help="timed replays; best and median reported")
    parser.add_argument(
        "--stop-share", type=float, default=0.0, help="share of the places that are stop orders (0 to 1; default 0)"
    )
    parser.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall", help="time wall clock (default) or this process's CPU"
    )
    args = parser.parse_args(argv)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    if not 0 <= args.stop_share <= 1:
        parser.error("--stop-share must be between 0 and 1")

    built = time.perf_counter()
    stream = build_stream(args.commands, args.seed, args.stop_share)
    built = time.perf_counter() - built
    cancels = sum(1 for command in stream if command[0] == CANCEL)
    stops = sum(1 for command in stream if command[0] == PLACE and command[8] is not None)
    print(
        f"stream: {len(stream)} commands ({cancels} cancels, {stops} stop orders), seed {args.seed}, "
        f"built in {built:.2f} s"
    )

    rates = []
    for run in range(1, args.repeat + 1):
        elapsed, trades, triggered, book = replay(stream, clock)
        rate = len(stream) / elapsed
        rates.append(rate)
        print(
            f"run {run}: {elapsed:.3f} s, {rate:,.0f} commands/s, {trades} trades, {triggered} stops triggered, "
            f"{len(book)} resting orders, {book.stop_count} stops waiting"
        )
        book.check_invariants()  # after the timing: it is O(n) and not part of the hot path
        del book
    print(f"best {max(rates):,.0f} commands/s, median {statistics.median(rates):,.0f} commands/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
