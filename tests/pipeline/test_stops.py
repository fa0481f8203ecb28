"""Stop orders through the pipeline (issue 10): intake holds, the engine keeps waiting stops out of the
book (``stopping`` rows, funds held) and settles the ones a trade triggers as placed orders. The same
stream fed to ``python -m matching.replay`` gives the same trades, statuses and book (INV-4), and every
end-state invariant holds. A waiting stop survives a restart of the engine (rebuilt from its row, and
the last trade price from the market's latest trade)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from matching.commands import decode
from matching.queue import RedisStreamOrderQueue
from matching.worker import registry
from orders import invariants
from orders.models import Balance, Order, Trade
from orders.selectors import order_get
from orders.services import order_cancel, order_place
from spot import keys
from tests.conftest import drain_all
from tests.pipeline.conftest import stream_settled, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


class Scenario:
    """Places orders through intake and remembers the stream's command lines before the engine trims
    them (the replay gets exactly what the matcher got)."""

    def __init__(self, market, redis_client, engine=None) -> None:
        self.market = market
        self.engine = engine
        self.queue = RedisStreamOrderQueue(redis_client, market.code)
        self.commands: list[str] = []
        self.totals = invariants.asset_totals([market.coin, market.currency])
        self._seen = "-"

    def place(self, user, side: str, order_type: str, quantity: str, **fields) -> Order:
        order = order_place(
            user=user, market=self.market, side=side, order_type=order_type, quantity=quantity, **fields
        )
        self._collect()
        return order

    def cancel(self, user, order: Order) -> None:
        order_cancel(user=user, order_id=order.id)
        self._collect()

    def drain(self) -> int:
        return drain_all(self.engine)

    def end_state(self) -> list[str]:
        return invariants.end_state(self.market, self.commands, self.totals)

    def replay(self) -> list[dict]:
        return invariants.replay_events(self.commands)

    def _collect(self) -> None:
        start = "-" if self._seen == "-" else f"({self._seen}"
        for entry_id, fields in self.queue.client.xrange(self.queue.key, start, "+"):
            self.commands.append(fields[b"c"].decode())
            self._seen = entry_id.decode()


@pytest.fixture
def scenario(engine, market, traders, redis_client) -> Scenario:
    return Scenario(market, redis_client, engine)


def _status(*orders: Order) -> list[str]:
    return [Order.objects.get(id=order.id).status for order in orders]


def _seq(order: Order) -> int:
    seq = Order.objects.get(id=order.id).seq
    assert seq is not None
    return seq


def _held(user, asset: str) -> Decimal:
    return Balance.objects.get(user=user, asset=asset).held


@pytest.mark.parametrize("drain_each", [False, True], ids=["one-stream", "drained-after-each"])
def test_stops_triggered_by_one_trade_enter_in_placement_order_cascade_and_equal_the_replay(
    scenario, traders, drain_each
):
    s = scenario
    maker, a, b, c, d, e = traders

    def step(order: Order) -> Order:
        if drain_each:
            s.drain()
        return order

    ask_100 = step(s.place(maker, "sell", "limit", "1", price="100.00"))
    ask_101 = step(s.place(maker, "sell", "limit", "1", price="101.00"))
    ask_102 = step(s.place(maker, "sell", "limit", "1", price="102.00"))
    # No trade yet: every stop waits, whatever its condition.
    stop_a = step(s.place(a, "buy", "stop_limit", "0.5", price="101.00", base_price="100.00", stop_condition="ge"))
    stop_b = step(s.place(b, "buy", "stop_market", "0.7", base_price="100.00", stop_condition="ge"))
    stop_c = step(s.place(c, "buy", "stop_limit", "0.3", price="103.00", base_price="101.00", stop_condition="ge"))
    stop_d = step(s.place(d, "sell", "stop_market", "0.2", base_price="99.00", stop_condition="le"))
    stop_e = step(s.place(e, "buy", "stop_limit", "0.2", price="99.00", base_price="100.00", stop_condition="ge"))
    bid_99 = step(s.place(maker, "buy", "limit", "0.2", price="99.00"))  # before E triggers, after E is placed
    if drain_each:
        assert _status(stop_a, stop_b, stop_c, stop_d, stop_e) == ["stopping"] * 5
        assert s.engine.matcher.book.stop_count == 5
    # A trade at 100 triggers A, B and E (placed in that order); B's trade at 101 then triggers C.
    trigger = step(s.place(maker, "buy", "limit", "0.1", price="100.00"))
    # The best bids are now 99.00: the plain bid (time priority from its placement) ahead of E (from its
    # trigger). This sell fills the plain bid; its trade at 99 triggers D, which fills E.
    last = step(s.place(traders[0], "sell", "market", "0.2"))
    s.drain()

    assert s.end_state() == []
    events = s.replay()
    assert [ev["id"] for ev in events if ev["event"] == "trigger"] == [
        stop_a.id,
        stop_b.id,
        stop_e.id,
        stop_c.id,
        stop_d.id,
    ]
    assert _seq(trigger) < _seq(stop_a) < _seq(stop_b) < _seq(stop_e) < _seq(stop_c) < _seq(last) < _seq(stop_d)
    assert _seq(bid_99) < _seq(stop_e)
    assert _status(stop_a, stop_b, stop_c, stop_d, stop_e, bid_99, ask_100, ask_101, ask_102) == [
        "executed",
        "executed",
        "executed",
        "executed",
        "executed",
        "executed",
        "executed",
        "partially_filled",
        "pending",
    ]
    maker_of = {(t.buy_order_id, t.sell_order_id) for t in Trade.objects.all()}
    assert (bid_99.id, last.id) in maker_of and (stop_e.id, stop_d.id) in maker_of
    # A stop market buy spent at most its budget (0.7 x 100 x 1.05 = 73.5) and released the rest.
    assert Order.objects.get(id=stop_b.id).executed_quote == Decimal("70.3")
    assert [_held(user, "usdt") for user in (a, b, c, e)] == [0, 0, 0, 0]
    assert s.engine.matcher.book.stop_count == 0


def test_a_stop_whose_condition_the_last_trade_already_meets_triggers_at_its_placement(scenario, traders):
    s = scenario
    maker, taker, stopper = traders[:3]
    s.place(maker, "sell", "limit", "1", price="100.00")
    s.place(taker, "buy", "limit", "0.1", price="100.00")  # last trade price 100
    s.place(maker, "sell", "limit", "1", price="101.00")
    at_once = s.place(stopper, "buy", "stop_limit", "0.2", price="101.00", base_price="99.00", stop_condition="ge")
    waits = s.place(stopper, "buy", "stop_limit", "0.2", price="101.00", base_price="100.01", stop_condition="ge")
    s.drain()

    assert _status(at_once, waits) == ["executed", "stopping"]
    assert [ev for ev in s.replay() if ev["event"] == "trigger"] == [
        {"event": "trigger", "id": at_once.id, "price": "100"}
    ]
    assert s.end_state() == []
    assert _held(stopper, "usdt") == Decimal("20.2")  # the waiting one's 0.2 x 101


@pytest.mark.parametrize("order_type", ["stop_limit", "stop_market"])
@pytest.mark.parametrize("side", ["buy", "sell"])
def test_canceling_a_waiting_stop_releases_all_it_held(scenario, traders, side, order_type):
    s = scenario
    user = traders[0]
    price = {"price": "101.00"} if order_type == "stop_limit" else {}
    stop = s.place(user, side, order_type, "0.5", base_price="150.00", stop_condition="ge", **price)
    asset = "usdt" if side == "buy" else "btc"
    s.drain()
    held = Order.objects.get(id=stop.id).held
    assert (_status(stop), _held(user, asset)) == (["stopping"], held)

    s.cancel(user, stop)
    s.drain()

    assert _status(stop) == ["canceled"]
    assert (_held(user, "usdt"), _held(user, "btc")) == (0, 0)
    assert s.engine.matcher.book.stop_count == 0
    assert s.end_state() == []


def test_a_stop_placed_and_canceled_in_one_batch_releases_its_hold_and_never_triggers(scenario, traders):
    s = scenario
    maker, user = traders[:2]
    s.place(maker, "sell", "limit", "1", price="100.00")
    stop = s.place(user, "buy", "stop_limit", "0.5", price="101.00", base_price="100.00", stop_condition="ge")
    s.cancel(user, stop)
    s.place(traders[2], "buy", "limit", "0.1", price="100.00")  # would have triggered it
    s.drain()

    assert _status(stop) == ["canceled"]
    assert _held(user, "usdt") == 0
    assert s.end_state() == []


def _restart(market):
    """A new engine for the market, as a restarted matcher process starts one: lease, epoch, rebuild."""
    registry.forget_engines()
    engine = registry.engine_for(market.code)
    engine.start()
    return engine


def test_waiting_stops_survive_a_restart_and_trigger_afterwards_once(scenario, market, traders):
    s = scenario
    maker, taker, up, down = traders[:4]
    s.place(maker, "sell", "limit", "1", price="100.00")
    s.place(taker, "buy", "limit", "0.1", price="100.00")  # last trade price 100
    s.place(maker, "sell", "limit", "1", price="105.00")
    s.place(maker, "buy", "limit", "1", price="95.00")
    stop_up = s.place(up, "buy", "stop_limit", "0.2", price="106.00", base_price="105.00", stop_condition="ge")
    stop_down = s.place(down, "sell", "stop_market", "0.3", base_price="95.00", stop_condition="le")
    stop_up_2 = s.place(up, "buy", "stop_market", "0.1", base_price="104.00", stop_condition="ge")
    s.drain()
    assert _status(stop_up, stop_down, stop_up_2) == ["stopping"] * 3

    s.engine.stop()
    s.engine = _restart(market)

    book = s.engine.matcher.book
    assert (book.stop_count, book.last_price) == (3, 10000)  # 100.00 in ticks of 0.01
    assert [stop.id for stop in book.stops()] == [stop_up.id, stop_down.id, stop_up_2.id]
    book.check_invariants()
    # The rebuilt last price decides: below it nothing triggers, a stop it already meets triggers at once.
    at_once = s.place(up, "buy", "stop_limit", "0.1", price="101.00", base_price="100.00", stop_condition="le")
    s.place(taker, "buy", "limit", "0.1", price="100.00")  # trades at 100: still no trigger
    s.drain()
    assert _status(stop_up, stop_down, stop_up_2, at_once) == ["stopping", "stopping", "stopping", "executed"]
    # Trades at 100 (what is left there) then at 105 trigger both buy stops, in placement order; the
    # sell stop still waits.
    s.place(taker, "buy", "limit", "1", price="105.00")
    s.drain()

    assert _status(stop_up, stop_down, stop_up_2) == ["executed", "stopping", "executed"]
    assert _seq(stop_up) < _seq(stop_up_2)
    assert [ev["id"] for ev in s.replay() if ev["event"] == "trigger"] == [at_once.id, stop_up.id, stop_up_2.id]
    assert s.end_state() == []


def test_a_restarted_engine_does_not_apply_a_stop_twice_when_its_entry_comes_again(scenario, market, traders):
    s = scenario
    maker, user = traders[:2]
    s.place(maker, "sell", "limit", "1", price="100.00")
    stop = s.place(user, "buy", "stop_limit", "0.2", price="101.00", base_price="100.00", stop_condition="ge")
    s.drain()
    entry = s.commands[-1]
    assert decode(entry).id == stop.id

    s.engine.stop()
    s.engine = _restart(market)
    s.engine.queue.push(entry)  # a duplicate of the stop's place entry: already waiting, ignored
    s.drain()
    s.place(traders[2], "buy", "limit", "0.1", price="100.00")
    s.drain()

    assert _status(stop) == ["executed"]
    assert Trade.objects.filter(buy_order_id=stop.id).count() == 1
    assert s.end_state() == []


def test_a_triggered_stop_is_read_from_the_db_while_its_cache_still_says_stopping(scenario, traders, redis_client):
    s = scenario
    maker, user = traders[:2]
    s.place(maker, "sell", "limit", "1", price="100.00")
    stop = s.place(user, "buy", "stop_limit", "0.2", price="101.00", base_price="100.00", stop_condition="ge")
    s.drain()
    s.place(traders[2], "buy", "limit", "0.1", price="100.00")
    s.drain()
    # What a cache write lost after the batch's commit leaves behind (the recovery refreshes the
    # command's orders and their counterparties, not the stops the command triggered).
    redis_client.hset(keys.order(stop.id), "status", "stopping")

    assert order_get(user=user, order_id=stop.id)["status"] == "executed"


@pytest.mark.slow
def test_waiting_stops_survive_a_killed_matcher_process_and_trigger_in_its_successor(
    market, traders, redis_client, matchers
):
    s = Scenario(market, redis_client, engine=None)
    maker, taker, up, down = traders[:4]
    first = matchers.start()
    s.place(maker, "sell", "limit", "1", price="100.00")
    s.place(taker, "buy", "limit", "0.1", price="100.00")  # last trade price 100
    s.place(maker, "sell", "limit", "1", price="105.00")
    stops = [
        s.place(up, "buy", "stop_limit", "0.2", price="106.00", base_price="105.00", stop_condition="ge"),
        s.place(down, "sell", "stop_market", "0.3", base_price="95.00", stop_condition="le"),
        s.place(up, "buy", "stop_market", "0.1", base_price="104.00", stop_condition="ge"),
    ]
    wait_until(lambda: _status(*stops) == ["stopping"] * 3, 60, message="the stops to wait")

    first.kill()  # kill -9: its book, waiting stops included, is gone
    matchers.start()
    s.place(taker, "buy", "limit", "1", price="105.00")  # trades at 100, then 105: both buy stops trigger
    wait_until(lambda: _status(*stops) == ["executed", "stopping", "executed"], 60, message="the successor")
    wait_until(lambda: stream_settled(redis_client, market), 30, message="the stream to settle")

    assert _seq(stops[0]) < _seq(stops[2])
    assert s.end_state() == []
