"""``manage.py seed_demo``: idempotent demo data that keeps an operator's passwords and stays out of
production."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import override_settings

from orders.models import Balance, Market
from tests.production import PRODUCTION_ENV

pytestmark = pytest.mark.django_db


def _seed(*args: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", "--traders", "2", *args, stdout=out)
    return out.getvalue()


def _printed_password(output: str) -> str:
    (line,) = [line for line in output.splitlines() if line.startswith("admin login: admin / ")]
    return line.removeprefix("admin login: admin / ")


def test_it_creates_the_markets_funded_traders_and_an_admin_whose_password_it_prints():
    output = _seed()

    assert sorted(m.code for m in Market.objects.all()) == ["btc_usdt", "eth_usdt"]
    User = get_user_model()
    assert User.objects.get(username="trader2").check_password("trader2-demo")
    assert Balance.objects.filter(user__username="trader1").count() == 3
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(_printed_password(output))


def test_run_again_it_keeps_the_admins_password_and_says_so():
    first = _printed_password(_seed())
    admin = get_user_model().objects.get(username="admin")
    admin.set_password("chosen-by-the-operator")
    admin.save()

    output = _seed()

    admin.refresh_from_db()
    assert admin.check_password("chosen-by-the-operator")
    assert not admin.check_password(first)
    assert "admin login: admin, password unchanged (seed_demo --reset-passwords sets a new one)" in output
    assert Market.objects.count() == 2 and Balance.objects.filter(user__username="trader1").count() == 3


def test_reset_passwords_sets_the_admins_and_the_traders_passwords_again():
    _seed()
    User = get_user_model()
    for name in ("admin", "trader1"):
        user = User.objects.get(username=name)
        user.set_password("changed")
        user.save()

    output = _seed("--reset-passwords")

    assert User.objects.get(username="admin").check_password(_printed_password(output))
    assert User.objects.get(username="trader1").check_password("trader1-demo")


def test_an_explicit_admin_password_is_set_on_the_existing_admin():
    _seed()

    _seed("--admin-password", "s3cret-for-the-demo")

    assert get_user_model().objects.get(username="admin").check_password("s3cret-for-the-demo")


@pytest.mark.parametrize("module, debug", [("settings.prod", False), ("settings.prod", True), ("settings.base", False)])
def test_it_refuses_production_settings_and_writes_nothing(module, debug):
    with override_settings(SETTINGS_MODULE=module, DEBUG=debug), pytest.raises(CommandError) as refused:
        _seed()

    assert refused.value.returncode == 2
    assert f"does not run under production settings ({module}" in str(refused.value)
    assert not get_user_model().objects.exists() and not Market.objects.exists()


def test_a_negative_number_of_traders_is_refused_with_the_option_named():
    with pytest.raises(CommandError, match="--traders must not be negative"):
        call_command("seed_demo", "--traders", "-1")


@pytest.mark.slow
def test_run_as_typed_under_settings_prod_it_exits_2_with_the_reason():
    root = Path(__file__).resolve().parents[2]
    env = dict(
        os.environ,
        **PRODUCTION_ENV,
        MYSQL_DATABASE="seed_demo_must_not_touch_this",  # no such database: a refusal that failed would show
    )

    run = subprocess.run(
        [sys.executable, "manage.py", "seed_demo"], cwd=root, env=env, capture_output=True, text=True, timeout=60
    )

    assert run.returncode == 2, run.stderr
    assert "does not run under production settings (settings.prod, DEBUG off)" in run.stderr
    assert "Traceback" not in run.stderr
