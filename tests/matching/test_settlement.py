"""Settlement, pure: fees, holds, order rows and balance deltas of matched commands (no DB, no Redis)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest

from matching.commands import PlaceCommand
from matching.core import CancelResult, OrderStatus, OrderType, PlaceResult, Side, Trade
from matching.worker.settlement import BalanceRow, MarketSpec, OrderRow, OrderState, Settlement, TradeRow

FEES = 99  # the fee account's user id


@dataclass
class _Market:
    id: int = 1
    code: str = "btc_usdt"
    coin: str = "btc"
    currency: str = "usdt"
    tick_size: Decimal = Decimal("0.01")
    lot_size: Decimal = Decimal("0.0001")
    maker_fee_rate: Decimal = Decimal("0.001")
    taker_fee_rate: Decimal = Decimal("0.002")


SPEC = MarketSpec.from_market(_Market())


def _buy(order_id: int, user: int, price: str, quantity: str) -> PlaceCommand:
    held = Decimal(price) * Decimal(quantity)
    return PlaceCommand(order_id, user, Side.BUY, OrderType.LIMIT, Decimal(quantity), Decimal(price), held=held)


def test_the_spec_holds_the_steps_in_base_units_and_the_fee_rates_as_exact_ratios():
    assert SPEC.lot_base == 10**6  # 0.0001 in units of 1e-10
    assert SPEC.notional_base == 10**4  # 0.01 x 0.0001
    assert SPEC.maker_fee == (1, 1000)
    assert SPEC.taker_fee == (1, 500)


def test_a_buy_taker_pays_the_makers_price_the_taker_rate_in_coin_and_gets_its_improvement_back():
    # Maker 1 (user 10) sells 0.5 BTC at 30000.00; taker 2 (user 20) buys 0.5 at 30010.00.
    command = _buy(2, 20, "30010.00", "0.5")
    trade = Trade(2, 1, 20, 10, Side.BUY, 3_000_000, 5000, 0)
    result = PlaceResult(2, OrderStatus.EXECUTED, 5000, 0, 3_000_000 * 5000, seq=7, trades=[trade])
    effects = Settlement(SPEC, FEES)

    changed = effects.place(command, result, {1: OrderState()})

    assert changed == [(1, None), (2, None)]  # both left the book
    assert effects.trades == [TradeRow(2, 1, "buy", "30000.00", "0.5000", "0.001", "15")]
    assert effects.orders[1] == OrderRow(1, "executed", "0.5000", "15000.000000", "30000.0000000000", "15", None, None)
    assert effects.orders[2] == OrderRow(2, "executed", "0.5000", "15000.000000", "30000.0000000000", "0.001", 7, None)
    # The buyer held 15005 USDT; 15000 paid, 5 of price improvement released. Fees: 0.001 BTC at the
    # taker rate (0.2 % of 0.5), 15 USDT at the maker rate (0.1 % of 15000).
    assert effects.balance_rows() == [
        BalanceRow(10, "btc", "-0.5", "-0.5"),
        BalanceRow(10, "usdt", "14985", "0"),
        BalanceRow(20, "btc", "0.499", "0"),
        BalanceRow(20, "usdt", "-15000", "-15005"),
        BalanceRow(FEES, "btc", "0.001", "0"),
        BalanceRow(FEES, "usdt", "15", "0"),
    ]


def test_fees_round_down_to_the_base_unit_and_balances_are_conserved():
    # A grid so fine that one tick x one lot is one base unit (1e-10): 7 ticks x 1 lot is 7 base units
    # of quote, whose 0.1 % maker fee (0.007 units) rounds down to nothing.
    spec = MarketSpec.from_market(_Market(tick_size=Decimal("0.00000001"), lot_size=Decimal("0.01")))
    command = _buy(2, 20, "0.00000007", "0.01")
    result = PlaceResult(2, OrderStatus.EXECUTED, 1, 0, 7, seq=1, trades=[Trade(2, 1, 20, 10, Side.BUY, 7, 1, 0)])
    effects = Settlement(spec, FEES)

    effects.place(command, result, {1: OrderState()})

    assert effects.balance_delta(FEES, "usdt") == (0, 0)
    assert effects.balance_delta(FEES, "btc") == (200_000, 0)  # 0.01 BTC x 0.2 % = 0.00002 BTC
    for asset in ("btc", "usdt"):
        assert sum(effects.balance_delta(user, asset)[0] for user in (10, 20, FEES)) == 0


def test_a_resting_buy_keeps_its_unfilled_hold_and_a_maker_keeps_resting_with_its_state():
    command = _buy(3, 20, "30000.00", "1.0")
    trade = Trade(3, 1, 20, 10, Side.BUY, 3_000_000, 2000, 1000)  # maker 1 keeps 0.1 BTC resting
    result = PlaceResult(3, OrderStatus.PARTIALLY_FILLED, 2000, 8000, 3_000_000 * 2000, seq=4, trades=[trade])
    effects = Settlement(SPEC, FEES)

    changed = effects.place(command, result, {1: OrderState(filled=500, quote=3_000_000 * 500, fee=7)})

    assert changed[0][0] == 1 and changed[0][1] == OrderState(
        2500, 3_000_000 * 2500, 7 + 6 * 10**10
    )  # 6 USDT at the maker rate
    assert changed[1] == (3, OrderState(2000, 3_000_000 * 2000, 4 * 10**6))  # 0.0004 BTC at the taker rate
    assert effects.orders[1].status == "partially_filled" and effects.orders[1].seq is None
    assert effects.balance_delta(20, "usdt") == (-6_000 * 10**10, -6_000 * 10**10)  # only what was paid


def test_a_rejected_order_releases_everything_it_held():
    command = _buy(4, 20, "30000.00", "0.1")
    effects = Settlement(SPEC, FEES)

    effects.reject(command, 9, "x" * 300)

    assert effects.orders[4] == OrderRow(4, "rejected", "0", "0", None, "0", 9, "x" * 200)
    assert effects.balance_rows() == [BalanceRow(20, "usdt", "0", "-3000")]


def test_a_cancel_releases_what_the_remainder_held():
    effects = Settlement(SPEC, FEES)

    effects.cancel(CancelResult(5, 20, Side.SELL, 3_000_000, 1000, 4000), OrderState(1000, 3_000_000 * 1000, 3))

    assert effects.orders[5].status == "canceled"
    assert effects.orders[5].executed_quantity == "0.1000"
    assert effects.balance_rows() == [BalanceRow(20, "btc", "0", "-0.4")]


def test_a_place_without_what_it_holds_cannot_be_settled():
    command = PlaceCommand(6, 20, Side.SELL, OrderType.LIMIT, Decimal("0.1"), Decimal("30000"))
    result = PlaceResult(6, OrderStatus.PENDING, 0, 1000, 0, seq=1)

    with pytest.raises(AssertionError, match="holds"):
        Settlement(SPEC, FEES).place(command, result, {})
