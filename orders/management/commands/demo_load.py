"""``python manage.py demo_load``: a gentle stream of random orders so the admin, Flower and the
metrics show life. Goes through the running web over HTTP, as a bot would: each demo trader gets a
fresh trade-scoped API key at start (made with the service, so the secrets stay in this process's
memory) and signs its requests with ``spot.client``; the keys are revoked when it stops."""

from __future__ import annotations

import random
import time
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from orders.apikeys import api_key_create, api_key_revoke
from orders.models import Market, Order, OrderStatus
from spot.client import SpotClient, SpotResponse

MIDS = {"btc_usdt": Decimal("30000"), "eth_usdt": Decimal("2000")}


class Command(BaseCommand):
    help = (
        "Send random orders to the demo markets over HTTP (signed with a fresh API key per trader) at a "
        "gentle rate until interrupted (or --seconds)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--rate", type=float, default=20.0, help="orders per second (default 20)")
        parser.add_argument("--seconds", type=float, default=0.0, help="stop after this long (default: never)")
        parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
        parser.add_argument(
            "--url", default="http://127.0.0.1:8000", help="the web to send to (default http://127.0.0.1:8000)"
        )

    def handle(self, *args: Any, rate: float, seconds: float, seed: int | None, url: str, **options: Any) -> None:
        if rate <= 0:
            raise CommandError("--rate must be positive")
        traders = list(get_user_model().objects.filter(username__startswith="trader"))
        markets = list(Market.objects.filter(enabled=True))
        if not traders or not markets:
            raise CommandError("no demo traders or markets: run `python manage.py seed_demo` first")
        rng = random.Random(seed)
        mids = {m.code: MIDS.get(m.code, Decimal("100")) for m in markets}
        keys = [api_key_create(user=user, label="demo_load", scopes="trade") for user in traders]
        clients = {
            user.pk: SpotClient(url, key.key_id, secret) for user, (key, secret) in zip(traders, keys, strict=True)
        }
        started = time.monotonic()
        sent = refused = 0
        self.stdout.write(f"sending about {rate:g} orders/s to {', '.join(mids)} at {url}; Ctrl-C stops")
        try:
            while not seconds or time.monotonic() - started < seconds:
                market = rng.choice(markets)
                user = rng.choice(traders)
                try:
                    if rng.random() < 0.1:
                        response = self._cancel_one(clients[user.pk], user, rng)
                    else:
                        response = self._place_one(clients[user.pk], market, mids, rng)
                except OSError as exc:
                    raise CommandError(f"could not reach {url} ({exc}): is the web running? (scripts/run.sh)") from exc
                if response is not None:
                    sent += 1
                    if response.status >= 400:
                        refused += 1
                        self.stderr.write(f"refused ({response.status}): {_message(response)}")
                time.sleep(rng.expovariate(rate))
        except KeyboardInterrupt:
            pass
        finally:
            for client in clients.values():
                client.close()
            for key, _ in keys:
                api_key_revoke(key_id=key.key_id)
        self.stdout.write(f"sent {sent} commands ({refused} refused); revoked its {len(keys)} API keys")

    @staticmethod
    def _place_one(client: SpotClient, market: Market, mids: dict[str, Decimal], rng: random.Random) -> SpotResponse:
        mid = mids[market.code] = (mids[market.code] + rng.choice((-1, 0, 1)) * market.tick_size * 10).quantize(
            market.tick_size
        )
        side = rng.choice(("buy", "sell"))
        offset = rng.randint(-3, 30) * market.tick_size * 5
        price = mid - offset if side == "buy" else mid + offset
        quantity = market.lot_size * rng.randint(10, 500)
        return client.place(market.currency, market.coin, side, "limit", quantity, price=price)

    @staticmethod
    def _cancel_one(client: SpotClient, user: Any, rng: random.Random) -> SpotResponse | None:
        # The open orders come from the DB (this command runs beside it), so the key needs no `read`.
        open_ids = list(
            Order.objects.filter(user=user, status__in=(OrderStatus.PENDING, OrderStatus.PARTIALLY_FILLED))
            .order_by("-id")
            .values_list("id", flat=True)[:20]
        )
        return client.cancel(rng.choice(open_ids)) if open_ids else None


def _message(response: SpotResponse) -> str:
    try:
        return str(response.message)
    except ValueError:  # not the API's JSON envelope (a proxy's error page)
        return repr(response.body[:200])
