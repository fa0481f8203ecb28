"""``python manage.py seed_demo``: demo markets, funded demo traders and an admin, idempotently.

Run again, it keeps existing passwords (an operator may have changed the admin's); ``--reset-passwords``
sets them again. It creates users with known passwords, so it refuses to run under production
settings.
"""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from orders.balances import balance_deposit
from orders.models import Balance, Market

MARKETS = [
    # coin, currency, tick, lot, min quantity, min notional
    ("btc", "usdt", Decimal("0.01"), Decimal("0.0001"), Decimal("0.0001"), Decimal("1")),
    ("eth", "usdt", Decimal("0.01"), Decimal("0.001"), Decimal("0.001"), Decimal("1")),
]
FUNDING = {"usdt": Decimal("1000000"), "btc": Decimal("20"), "eth": Decimal("300")}
DEMO_SETTINGS = ("settings.dev", "settings.test")  # the settings modules it runs under with DEBUG off too


def _refuse_production() -> None:
    """Demo users with published passwords have no place in production: ``settings.prod``, or any
    settings with DEBUG off other than the test settings."""
    module = settings.SETTINGS_MODULE
    if module == "settings.prod" or (not settings.DEBUG and module not in DEMO_SETTINGS):
        raise CommandError(
            f"seed_demo creates users with known passwords and does not run under production settings "
            f"({module}, DEBUG {'on' if settings.DEBUG else 'off'}); use DJANGO_SETTINGS_MODULE=settings.dev",
            returncode=2,
        )


class Command(BaseCommand):
    help = "Create the demo markets (BTC/USDT, ETH/USDT), funded demo traders and an admin user."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--traders", type=int, default=20, help="demo traders to create (default 20)")
        parser.add_argument(
            "--admin-password",
            default="",
            help="password for 'admin': a new admin's, or the existing admin's (default: a new admin gets a random one)",
        )
        parser.add_argument(
            "--reset-passwords",
            action="store_true",
            help="set the existing admin's password (random unless --admin-password) and traderN's to traderN-demo",
        )

    def handle(self, *args: Any, traders: int, admin_password: str, reset_passwords: bool, **options: Any) -> None:
        _refuse_production()
        if traders < 0:
            raise CommandError("--traders must not be negative", returncode=2)
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
                if created or reset_passwords:
                    user.set_password(f"trader{n}-demo")
                    user.save(update_fields=["password"])
                for asset, amount in FUNDING.items():
                    if not Balance.objects.filter(user=user, asset=asset).exists():
                        balance_deposit(user=user, asset=asset, amount=amount)
            admin, created = User.objects.get_or_create(
                username="admin", defaults={"is_staff": True, "is_superuser": True}
            )
            admin.is_staff = admin.is_superuser = True
            password = None
            if created or reset_passwords or admin_password:
                password = admin_password or secrets.token_urlsafe(9)
                admin.set_password(password)
            admin.save()
        self.stdout.write(f"demo data ready: {len(MARKETS)} markets, {traders} traders (traderN / traderN-demo)")
        if password is None:
            self.stdout.write("admin login: admin, password unchanged (seed_demo --reset-passwords sets a new one)")
        else:
            self.stdout.write(f"admin login: admin / {password}")
