"""``python manage.py demo_load``: a gentle stream of random orders so the admin, Flower and the
metrics show life. Goes through the real intake (``order_place``), like a client would."""

from __future__ import annotations

import random
import time
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from orders.models import Market, Order, OrderStatus
from orders.services import order_cancel, order_place
from spot.errors import ApplicationError

MIDS = {"btc_usdt": Decimal("30000"), "eth_usdt": Decimal("2000")}


class Command(BaseCommand):
    help = "Send random orders to the demo markets at a gentle rate until interrupted (or --seconds)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--rate", type=float, default=20.0, help="orders per second (default 20)")
        parser.add_argument("--seconds", type=float, default=0.0, help="stop after this long (default: never)")
        parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")

    def handle(self, *args: Any, rate: float, seconds: float, seed: int | None, **options: Any) -> None:
        if rate <= 0:
            raise CommandError("--rate must be positive")
        traders = list(get_user_model().objects.filter(username__startswith="trader"))
        markets = list(Market.objects.filter(enabled=True))
        if not traders or not markets:
            raise CommandError("no demo traders or markets: run `python manage.py seed_demo` first")
        rng = random.Random(seed)
        mids = {m.code: MIDS.get(m.code, Decimal("100")) for m in markets}
        started = time.monotonic()
        sent = errors = 0
        self.stdout.write(f"sending about {rate:g} orders/s to {', '.join(mids)}; Ctrl-C stops")
        try:
            while not seconds or time.monotonic() - started < seconds:
                market = rng.choice(markets)
                user = rng.choice(traders)
                try:
                    if rng.random() < 0.1:
                        self._cancel_one(user, rng)
                    else:
                        self._place_one(market, user, mids, rng)
                    sent += 1
                except ApplicationError as exc:
                    errors += 1
                    self.stderr.write(f"refused: {exc.message}")
                time.sleep(rng.expovariate(rate))
        except KeyboardInterrupt:
            pass
        self.stdout.write(f"sent {sent} commands ({errors} refused)")

    @staticmethod
    def _place_one(market: Market, user: Any, mids: dict[str, Decimal], rng: random.Random) -> None:
        mid = mids[market.code] = (mids[market.code] + rng.choice((-1, 0, 1)) * market.tick_size * 10).quantize(
            market.tick_size
        )
        side = rng.choice(("buy", "sell"))
        offset = rng.randint(-3, 30) * market.tick_size * 5
        price = mid - offset if side == "buy" else mid + offset
        quantity = market.lot_size * rng.randint(10, 500)
        order_place(user=user, market=market, side=side, order_type="limit", quantity=quantity, price=price)

    @staticmethod
    def _cancel_one(user: Any, rng: random.Random) -> None:
        open_ids = list(
            Order.objects.filter(user=user, status__in=(OrderStatus.PENDING, OrderStatus.PARTIALLY_FILLED))
            .order_by("-id")
            .values_list("id", flat=True)[:20]
        )
        if open_ids:
            order_cancel(user=user, order_id=rng.choice(open_ids))
