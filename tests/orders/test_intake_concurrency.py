"""Intake under a trader's own concurrency, with a real matcher settling at the same time: several
traders, each sending buys and sells from several threads at crossing prices, so intake's holds and
the matcher's balance updates lock the same rows all along. Not one placement may fail with a
database error (a deadlock or lock-wait timeout answered 503 before the lock order, docs/architecture.md),
every accepted order ends in a final or resting state, and the end state passes every invariant.

Two ways in: threads calling the service (``order_place``, each thread its own DB connection), and
threads of bots signing with API keys (``spot.client``) against gunicorn as the Procfile runs it.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db import OperationalError, connection
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from matching.commands import encode
from orders import invariants
from orders.apikeys import api_key_create
from orders.errors import ServiceUnavailable
from orders.models import Order, OrderStatus, Trade
from orders.outbox import order_command
from orders.services import order_place
from spot.client import SpotClient
from tests.faults.conftest import assert_end_state
from tests.pipeline import conftest as pipeline
from tests.pipeline.conftest import stream_settled, wait_until
from tests.spot.conftest import WebServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

matchers = pipeline.matchers  # the fixture that starts real matcher processes

TRADERS = 4
THREADS_PER_TRADER = 3
ORDERS_PER_THREAD = 100
WEB_WORKERS = 4  # as many requests in intake at once as the 2 cores can usefully run

LOCK_RETRIES = "spot_intake_lock_retries_total"

Place = Callable[[str, str, str], tuple[str, int | None]]  # (side, price, quantity) -> (outcome, order id)


def _innodb_deadlocks() -> int:
    """Deadlocks the server detected since it started, in any database: other tests running on the
    machine at the same time may add to the difference, so it is reported, not asserted."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'")
        return int(cursor.fetchone()[1])


def _orders(seed: int) -> list[tuple[str, str, str]]:
    """(side, price, quantity), buys and sells alternating within 10 USDT of 30,000, so most cross."""
    rng = random.Random(seed)
    orders = []
    for n in range(ORDERS_PER_THREAD):
        side = "buy" if (n + seed) % 2 == 0 else "sell"
        price = Decimal(30000) + Decimal(rng.randint(-20, 20)) / 2
        orders.append((side, f"{price:.2f}", f"0.0{rng.randint(1, 9)}"))
    return orders


def _stream_commands(market) -> list[str]:
    """The market's place commands in the order the matcher applied them (its ``seq``), as intake
    pushed them: the stream itself is trimmed once acknowledged."""
    orders = Order.objects.filter(coin=market.coin, currency=market.currency).order_by("seq")
    return [encode(order_command(order, "")) for order in orders]


def _service_placer(market, user) -> tuple[Place, Callable[[], None]]:
    def place(side: str, price: str, quantity: str) -> tuple[str, int | None]:
        try:
            order = order_place(user=user, market=market, side=side, order_type="limit", quantity=quantity, price=price)
        except (ServiceUnavailable, OperationalError) as exc:  # what the API answers 503
            return f"5xx {exc!r}", None
        return "accepted", order.id

    def close() -> None:
        connection.close()  # the calling thread's own connection: leave none open on the server

    return place, close


def _http_placer(market, user, base_url: str) -> tuple[Place, Callable[[], None]]:
    key, secret = api_key_create(user=user, label="concurrency", scopes="trade")
    client = SpotClient(base_url, key.key_id, secret)  # one per thread: a client is not thread-safe

    def place(side: str, price: str, quantity: str) -> tuple[str, int | None]:
        response = client.place(market.currency, market.coin, side, "limit", quantity, price=price)
        if response.status == 201:
            return "accepted", response.data["id"]
        prefix = "5xx" if response.status >= 500 else str(response.status)
        return f"{prefix} {response.body[:200]!r}", None

    return place, client.close


@pytest.mark.parametrize("way_in", ["service", "http"])
def test_traders_placing_buys_and_sells_from_several_threads_while_the_matcher_settles_never_get_a_5xx(
    way_in, market, traders, redis_client, matchers, tmp_path
):
    totals = invariants.asset_totals(["btc", "usdt"])
    web = None
    if way_in == "http":
        # Rate limits off: this test is about intake's locks, and a bot at full speed exceeds them.
        web = WebServer(tmp_path / "web", workers=WEB_WORKERS, env={"RATE_LIMITS_ENABLED": "false"})
    matchers.start()
    wait_until(lambda: redis_client.exists(f"lease:{market.code}"), 30, message="the matcher's lease")
    placers = []
    for t in range(TRADERS):
        for n in range(THREADS_PER_TRADER):
            user, seed = traders[t], t * THREADS_PER_TRADER + n
            if web is None:
                placers.append((seed, *_service_placer(market, user)))
            else:
                placers.append((seed, *_http_placer(market, user, f"http://127.0.0.1:{web.port}")))
    deadlocks_before, retries_before = _innodb_deadlocks(), _lock_retries(web)
    outcomes: Counter[str] = Counter()
    accepted: list[int] = []
    failures: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(len(placers))

    def trade(seed: int, place: Place, close: Callable[[], None]) -> None:
        start.wait()
        try:
            for side, price, quantity in _orders(seed):
                outcome, order_id = place(side, price, quantity)
                with lock:
                    outcomes[outcome.split()[0]] += 1
                    if order_id is None:
                        failures.append(outcome)
                    else:
                        accepted.append(order_id)
        finally:
            close()

    threads = [threading.Thread(target=trade, args=placer) for placer in placers]
    began = time.monotonic()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - began
        wait_until(
            lambda: not Order.objects.filter(status=OrderStatus.NEW).exists() and stream_settled(redis_client, market),
            90,
            message="the matcher to settle every order",
        )
        retries = _lock_retries(web) - retries_before
    finally:
        if web is not None:
            web.stop()
    deadlocks = _innodb_deadlocks() - deadlocks_before
    print(
        f"\n{way_in}: {sum(outcomes.values())} placements in {elapsed:.1f} s: {dict(outcomes)}; "
        f"{deadlocks} InnoDB deadlocks on the server meanwhile; intake's lock retries: {retries:.0f}; "
        f"first failures: {failures[:3]}"
    )

    assert not failures, failures[:5]
    assert outcomes == {"accepted": len(placers) * ORDERS_PER_THREAD}
    stored = dict(Order.objects.filter(coin=market.coin, currency=market.currency).values_list("id", "status"))
    assert sorted(stored) == sorted(accepted)  # each accepted order stored once, nothing else stored
    assert set(stored.values()) <= {OrderStatus.PENDING, OrderStatus.PARTIALLY_FILLED, OrderStatus.EXECUTED}
    assert Trade.objects.filter(coin=market.coin).count() > 100  # prices crossed: the matcher settled trades
    assert_end_state(market, _stream_commands(market), totals)


def _lock_retries(web: WebServer | None) -> float:
    """``spot_intake_lock_retries_total`` of intake in this process, or of the web's workers."""
    if web is None:
        return sum(
            REGISTRY.get_sample_value(LOCK_RETRIES, {"market": "btc_usdt", "error": error}) or 0
            for error in ("deadlock", "lock_wait_timeout")
        )
    text = web.get("/metrics", port=web.metrics_port).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == LOCK_RETRIES
    )
