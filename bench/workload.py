"""A seeded, realistic command stream for one market: the loadtest's and the pipeline tests' input.

Mostly gtc limit orders a few ticks around a drifting mid price (some crossing it), a few percent
ioc / fok / market orders, and cancels of earlier resting orders, spread over many users. Pure and
deterministic: the same seed gives the same stream.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Place:
    ref: int  # index of this order among the stream's places
    user: int  # index into the funded users
    side: str
    type: str
    quantity: Decimal
    price: Decimal | None
    tif: str


@dataclass(frozen=True, slots=True)
class Cancel:
    ref: int  # index of the place it cancels


Command = Place | Cancel


def generate(
    count: int,
    *,
    seed: int = 7,
    users: int = 200,
    mid: Decimal = Decimal("30000.00"),
    tick: Decimal = Decimal("0.01"),
    lot: Decimal = Decimal("0.0001"),
    cancel_share: float = 0.10,
    market_share: float = 0.03,
    ioc_share: float = 0.03,
    fok_share: float = 0.02,
) -> list[Command]:
    """``count`` commands. Limit prices sit within 20 ticks of a mid that random-walks one tick at a
    time; about one limit order in six crosses the mid and trades on arrival."""
    rng = random.Random(seed)
    mid_ticks = int(mid / tick)
    commands: list[Command] = []
    resting: list[int] = []  # refs of gtc limit places a cancel may target
    places = 0
    for _ in range(count):
        mid_ticks += rng.choice((-1, 0, 0, 1))
        roll = rng.random()
        if roll < cancel_share and resting:
            commands.append(Cancel(resting.pop(rng.randrange(len(resting)))))
            continue
        side = "buy" if rng.random() < 0.5 else "sell"
        quantity = rng.randint(1, 50) * lot
        user = rng.randrange(users)
        roll = rng.random()
        if roll < market_share:
            commands.append(Place(places, user, side, "market", quantity, None, "ioc"))
        else:
            # Distance from the mid on the passive side; negative crosses the spread.
            offset = rng.randint(-3, 20)
            ticks = mid_ticks - offset if side == "buy" else mid_ticks + offset
            tif = "gtc"
            if roll < market_share + ioc_share:
                tif = "ioc"
            elif roll < market_share + ioc_share + fok_share:
                tif = "fok"
            commands.append(Place(places, user, side, "limit", quantity, ticks * tick, tif))
            if tif == "gtc":
                resting.append(places)
        places += 1
    return commands
