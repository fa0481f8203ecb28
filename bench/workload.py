"""A seeded, realistic command stream for one market: the loadtest's and the pipeline tests' input.

Mostly gtc limit orders a few ticks around a drifting mid price (some crossing it), a few percent
ioc / fok / market orders, and cancels of earlier resting orders, spread over many users. With
``stop_share`` above 0 (the core benchmark's ``--stop-share``), that share of the places are stop
orders (issue 10); the default, 0, gives the stream the loadtest and the pipeline tests have always
used. Pure and deterministic: the same seed and shares give the same stream.
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
    base_price: Decimal | None = None  # stop orders only
    stop_condition: str | None = None  # stop orders only: "ge" or "le"


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
    stop_share: float = 0.0,
) -> list[Command]:
    """``count`` commands. Limit prices sit within 20 ticks of a mid that random-walks one tick at a
    time; about one limit order in six crosses the mid and trades on arrival.

    Stop orders (``stop_share`` of the places, half stop_limit, half stop_market) have a base price 1
    to 20 ticks from the mid: mostly breakouts (a buy triggering at or above a price over the mid, a
    sell at or below one under it), one in four the other way (a buy on a dip, a sell on a rise);
    a stop limit's price is 0 to 3 ticks beyond its base price. As the mid walks, most of them
    trigger, some several at once."""
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
        if stop_share and rng.random() < stop_share:  # drawn only when asked: the default stream is kept
            commands.append(_stop(rng, places, user, side, quantity, mid_ticks, tick))
            places += 1
            continue
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


def _stop(
    rng: random.Random, ref: int, user: int, side: str, quantity: Decimal, mid_ticks: int, tick: Decimal
) -> Place:
    """A stop order around the mid (see ``generate``)."""
    up = (side == "buy") == (rng.random() < 0.75)  # does it wait for the price to rise?
    distance = rng.randint(1, 20)
    base = mid_ticks + distance if up else mid_ticks - distance
    condition = "ge" if up else "le"
    if rng.random() < 0.5:
        return Place(ref, user, side, "stop_market", quantity, None, "ioc", base * tick, condition)
    beyond = rng.randint(0, 3)
    price = base + beyond if side == "buy" else base - beyond
    return Place(ref, user, side, "stop_limit", quantity, price * tick, "gtc", base * tick, condition)
