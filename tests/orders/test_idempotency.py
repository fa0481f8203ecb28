"""Idempotent placement by ``client_order_id`` (issue 10): a bot that timed out and retries never
doubles its position. A retry returns the order the id already names (``existing`` True), holds
nothing more and pushes nothing more; concurrent retries, each on its own DB connection, make one
order between them, because the unique constraint decides and the loser's hold rolls back."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection

from orders.errors import OrderConflict, OrderNotCancelable, OrderNotFound, OrderRejected
from orders.models import Balance, Order
from orders.selectors import order_get
from orders.services import OrderRequest, order_cancel, order_place, order_place_many
from tests.factories import BalanceFactory, MarketFactory, UserFactory

pytestmark = pytest.mark.django_db

STREAM = "orders:btc_usdt"


@pytest.fixture
def market(redis_client):
    return MarketFactory(coin="btc", currency="usdt")


def _funded(usdt: str = "100000"):
    user = UserFactory()
    BalanceFactory(user=user, asset="usdt", total=Decimal(usdt))
    return user


def _held(user, asset: str = "usdt") -> Decimal:
    return Balance.objects.get(user=user, asset=asset).held


def _buy(user, market, client_order_id: str | None, price: str = "100"):
    return order_place(
        user=user,
        market=market,
        side="buy",
        order_type="limit",
        quantity="1",
        price=price,
        client_order_id=client_order_id,
    )


def test_a_new_order_with_a_client_order_id_is_not_existing_and_keeps_the_id(market, redis_client):
    user = _funded()

    order = _buy(user, market, "bot-7f3a")

    assert order.existing is False
    assert Order.objects.get(id=order.id).client_order_id == "bot-7f3a"
    assert redis_client.xlen(STREAM) == 1


def test_a_retried_client_order_id_returns_the_same_order_and_holds_and_pushes_nothing_more(market, redis_client):
    user = _funded()
    first = _buy(user, market, "retry-1")

    again = _buy(user, market, "retry-1", price="101")  # even with other values: the id decides

    assert (again.id, again.existing, again.price) == (first.id, True, Decimal("100"))
    assert Order.objects.count() == 1
    assert _held(user) == Decimal("100")
    assert redis_client.xlen(STREAM) == 1


def test_client_order_ids_are_per_user_and_compared_exactly(market, redis_client):
    alice, bob = _funded(), _funded()

    orders = [
        _buy(alice, market, "same"),
        _buy(bob, market, "same"),  # another user's id is no clash
        _buy(alice, market, "SAME"),  # case counts
        _buy(alice, market, "same "),  # so does a trailing space
    ]

    assert [o.existing for o in orders] == [False] * 4
    assert len({o.id for o in orders}) == 4
    assert (_held(alice), _held(bob)) == (Decimal("300"), Decimal("100"))


def test_orders_without_a_client_order_id_never_clash(market, redis_client):
    user = _funded()

    orders = [_buy(user, market, None) for _ in range(3)]

    assert len({o.id for o in orders}) == 3 and not any(o.existing for o in orders)


@pytest.mark.parametrize("bad", ["", "x" * 37, "caf\u00e9", "tab\there", "new\nline", "\x7f"])
def test_a_malformed_client_order_id_is_rejected_naming_the_field(market, redis_client, bad):
    user = _funded()

    with pytest.raises(OrderRejected) as error:
        _buy(user, market, bad)

    assert error.value.field == "client_order_id"
    assert Order.objects.count() == 0 and _held(user) == 0


def test_a_client_order_id_of_36_printable_characters_is_accepted(market, redis_client):
    user = _funded()
    name = " !~" + "a" * 33

    assert _buy(user, market, name).client_order_id == name


def test_the_order_is_read_and_canceled_by_its_client_order_id(market, redis_client):
    user, other = _funded(), _funded()
    order = _buy(user, market, "read-me")

    assert order_get(user=user, client_order_id="read-me")["id"] == order.id
    with pytest.raises(OrderNotFound) as error:
        order_get(user=other, client_order_id="read-me")
    assert error.value.field == "client_order_id"

    canceled = order_cancel(user=user, client_order_id="read-me")

    assert canceled.id == order.id
    assert redis_client.xlen(STREAM) == 2  # the place, then the cancel
    with pytest.raises(OrderNotFound):
        order_cancel(user=other, client_order_id="read-me")


def test_a_finished_order_named_by_its_client_order_id_is_not_cancelable(market, redis_client):
    user = _funded()
    order = _buy(user, market, "done")
    Order.objects.filter(id=order.id).update(status="executed")

    with pytest.raises(OrderNotCancelable):
        order_cancel(user=user, client_order_id="done")


# -- batches -----------------------------------------------------------------------------------------


def _request(user, client_order_id: str | None, price: str = "100") -> OrderRequest:
    return OrderRequest(user.pk, "buy", "limit", Decimal("1"), Decimal(price), client_order_id=client_order_id)


def test_a_batch_naming_one_client_order_id_twice_is_rejected_naming_the_second_item(market, redis_client):
    user = _funded()

    with pytest.raises(OrderRejected) as error:
        order_place_many(market=market, requests=[_request(user, "a"), _request(user, "b"), _request(user, "a")])

    assert (error.value.field, error.value.item) == ("client_order_id", 2)
    assert "orders[0]" in error.value.message
    assert Order.objects.count() == 0 and _held(user) == 0


def test_a_batch_retried_whole_returns_its_orders_in_request_order_and_holds_once(market, redis_client):
    user = _funded()
    first = order_place_many(market=market, requests=[_request(user, "a", "100"), _request(user, "b", "90")])

    again = order_place_many(market=market, requests=[_request(user, "b", "90"), _request(user, "a", "100")])

    assert [o.id for o in again] == [first[1].id, first[0].id]
    assert [o.existing for o in again] == [True, True]
    assert _held(user) == Decimal("190")
    assert Order.objects.count() == 2 and redis_client.xlen(STREAM) == 2


def test_a_batch_where_only_some_items_name_existing_orders_is_a_conflict_and_places_nothing(market, redis_client):
    user = _funded()
    [placed] = order_place_many(market=market, requests=[_request(user, "a")])

    with pytest.raises(OrderConflict) as error:
        order_place_many(market=market, requests=[_request(user, "new"), _request(user, "a"), _request(user, None)])

    assert error.value.status == 409
    assert (error.value.field, error.value.item, error.value.items) == ("client_order_id", 1, [1])
    assert error.value.existing == {1: placed.id}
    assert Order.objects.count() == 1 and _held(user) == Decimal("100")


# -- concurrent retries ------------------------------------------------------------------------------

RETRIES = 8  # concurrent requests with one id, as a bot's retries racing its first attempt
ROUNDS = 5


def _race(user, market, client_id: str) -> list[tuple[int, bool]]:
    """``RETRIES`` threads place the same order at once, each on its own DB connection; their
    ``(order id, existing)``. An exception in any thread is raised here."""
    start = threading.Barrier(RETRIES)

    def retry() -> tuple[int, bool]:
        try:
            start.wait()
            order = _buy(user, market, client_id)
            return order.id, order.existing
        finally:
            connection.close()  # this thread's own connection

    with ThreadPoolExecutor(max_workers=RETRIES) as pool:
        futures = [pool.submit(retry) for _ in range(RETRIES)]
    return [future.result() for future in futures]


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_of_one_client_order_id_make_exactly_one_order_and_hold_once(market, redis_client):
    user = _funded("1000")  # each round's order holds 100: a second hold would show

    for round_ in range(ROUNDS):
        results = _race(user, market, f"race-{round_}")

        made = Order.objects.filter(user=user, client_order_id=f"race-{round_}")
        assert made.count() == 1
        assert {order_id for order_id, _ in results} == {made.get().id}
        assert sorted(existing for _, existing in results) == [False] + [True] * (RETRIES - 1)
        assert _held(user) == Decimal("100") * (round_ + 1)
    assert redis_client.xlen(STREAM) == ROUNDS


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_that_only_one_hold_can_fund_still_return_the_one_order(market, redis_client):
    # Funds for exactly one order: the losers' holds would fail for want of funds once the winner
    # holds them; they must still answer with the winner's order, not "insufficient balance".
    user = _funded("100")

    results = _race(user, market, "all-in")

    assert Order.objects.count() == 1
    assert len({order_id for order_id, _ in results}) == 1
    assert sorted(existing for _, existing in results) == [False] + [True] * (RETRIES - 1)
    assert _held(user) == Decimal("100")
