"""``python manage.py seed_demo``: demo markets, funded demo traders and an admin, idempotently."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from orders.balances import balance_deposit
from orders.models import Balance, Market

MARKETS = [
    # coin, currency, tick, lot, min quantity, min notional
    ("btc", "usdt", Decimal("0.01"), Decimal("0.0001"), Decimal("0.0001"), Decimal("1")),
    ("eth", "usdt", Decimal("0.01"), Decimal("0.001"), Decimal("0.001"), Decimal("1")),
]
FUNDING = {"usdt": Decimal("1000000"), "btc": Decimal("20"), "eth": Decimal("300")}


class Command(BaseCommand):
    help = "Create the demo markets (BTC/USDT, ETH/USDT), funded demo traders and an admin user."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--traders", type=int, default=20, help="demo traders to create (default 20)")
        parser.add_argument("--admin-password", default="", help="password for 'admin' (default: a new random one)")

    def handle(self, *args: Any, traders: int, admin_password: str, **options: Any) -> None:
        if traders < 0:
            self.stderr.write("--traders must not be negative")
            raise SystemExit(2)
        User = get_user_model()
        with transaction.atomic():
            for coin, currency, tick, lot, min_qty, min_notional in MARKETS:
                Market.objects.get_or_create(
                    coin=coin,
                    currency=currency,
                    defaults={
                        "tick_size": tick,
                        "lot_size": lot,
                        "min_quantity": min_qty,
                        "min_notional": min_notional,
                    },
                )
            for n in range(1, traders + 1):
                user, created = User.objects.get_or_create(username=f"trader{n}")
                if created:
                    user.set_password(f"trader{n}-demo")
                    user.save(update_fields=["password"])
                for asset, amount in FUNDING.items():
                    if not Balance.objects.filter(user=user, asset=asset).exists():
                        balance_deposit(user=user, asset=asset, amount=amount)
            admin, _ = User.objects.get_or_create(username="admin", defaults={"is_staff": True, "is_superuser": True})
            password = admin_password or secrets.token_urlsafe(9)
            admin.is_staff = admin.is_superuser = True
            admin.set_password(password)
            admin.save()
        self.stdout.write(f"demo data ready: {len(MARKETS)} markets, {traders} traders (traderN / traderN-demo)")
        self.stdout.write(f"admin login: admin / {password}")
