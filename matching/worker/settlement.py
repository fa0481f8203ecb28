"""Settlement: what a matched command does to order rows and balances. Pure: no Django, no I/O.

The engine (a batch of commands, one transaction) and the benchmark's naive pipeline (one command,
one transaction) both settle through this module, so "the same rules" holds by construction.

Money is integer here: the core's ticks and lots, and *base units* of 1e-10 (the schema's
``decimal_places``) for balances and fees, so every sum is exact and conserved:

- a fill moves ``quantity`` of the coin from seller to buyer and ``price x quantity`` of the currency
  from buyer to seller, both out of what the payer held;
- fees are ``floor(amount x rate)`` in the asset each side receives, the taker at the taker rate and
  the maker at the maker rate, credited to the fee account;
- whatever an order held beyond what its fills consumed is released when it finishes (and a resting
  buy's price improvement at once);
- a stop order that waits (``stopping``) moves no funds: it keeps what intake held until it triggers,
  and then settles exactly as a placed order with that holding; canceled while waiting, it releases
  all of it.

Effects are named records (``OrderRow``, ``TradeRow``, ``BalanceRow``) whose field order is the column
order of the engine's statements (``matching.worker.store``), so they serialize as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import NamedTuple, Protocol

from matching.commands import PlaceCommand
from matching.core import CancelResult, OrderStatus, PlaceResult, Side, Trade, to_units, units_text
from matching.core.lock_order import balance_lock_order

BASE = Decimal("1E-10")  # one base unit: the finest amount a DecimalField(30, 10) holds
BASE_PLACES = 10
REASON_MAX = 200  # orders.reject_reason is a VARCHAR(200)


class MarketRow(Protocol):
    """What settlement reads of a market (``orders.models.Market`` has these)."""

    id: int
    code: str
    coin: str
    currency: str
    tick_size: Decimal
    lot_size: Decimal
    maker_fee_rate: Decimal
    taker_fee_rate: Decimal


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """A market's steps and fee rates as settlement needs them, with the steps in base units."""

    id: int
    code: str
    coin: str
    currency: str
    tick_size: Decimal
    lot_size: Decimal
    maker_fee: tuple[int, int]  # rate as numerator, denominator
    taker_fee: tuple[int, int]
    lot_base: int  # one lot in base units
    notional_base: int  # one tick x one lot in base units

    @classmethod
    def from_market(cls, market: MarketRow) -> MarketSpec:
        tick, lot = market.tick_size, market.lot_size
        return cls(
            id=market.id,
            code=market.code,
            coin=market.coin,
            currency=market.currency,
            tick_size=tick,
            lot_size=lot,
            maker_fee=Decimal(market.maker_fee_rate).as_integer_ratio(),
            taker_fee=Decimal(market.taker_fee_rate).as_integer_ratio(),
            lot_base=to_units(lot, BASE, what="lot size"),
            # Market.clean() refuses a tick x lot finer than 1e-10: it could not settle exactly.
            notional_base=to_units(tick * lot, BASE, what="tick size x lot size"),
        )


class OrderState(NamedTuple):
    """What an order's row needs beyond the book's price and quantity: lots filled, quote executed in
    tick-lots, fee charged in base units. The engine keeps one per resting order. A NamedTuple: built
    once per fill and once per resting order at start-up, about twice as cheap as a frozen dataclass."""

    filled: int = 0
    quote: int = 0
    fee: int = 0


class OrderRow(NamedTuple):
    """An order row's new values (amounts as decimal strings, ``seq``/``reason`` None to keep)."""

    id: int
    status: str
    executed_quantity: str
    executed_quote: str
    average_price: str | None
    fee: str
    seq: int | None
    reason: str | None


class TradeRow(NamedTuple):
    buy_order: int
    sell_order: int
    taker_side: str
    price: str
    quantity: str
    buyer_fee: str
    seller_fee: str


class BalanceRow(NamedTuple):
    """A change of one balance row, relative: ``total += total``, ``held += held``."""

    user: int
    asset: str
    total: str
    held: str


class Settlement:
    """The settled effects of any number of commands of one market, in the order they were applied.

    ``place``, ``reject`` and ``cancel`` add a command's effects and return the order states that
    change; they change nothing else (the caller owns its book and its states). A later command's
    row of the same order replaces the earlier one: one row per order, with its latest values.
    """

    __slots__ = ("_balances", "fee_account", "orders", "spec", "trades")

    def __init__(self, spec: MarketSpec, fee_account: int) -> None:
        self.spec = spec
        self.fee_account = fee_account
        self.orders: dict[int, OrderRow] = {}
        self.trades: list[TradeRow] = []
        self._balances: dict[tuple[int, str], list[int]] = {}  # (user, asset) -> [total, held] base units

    def __bool__(self) -> bool:
        return bool(self.orders)

    def balance_rows(self) -> list[BalanceRow]:
        """The balance changes in ``balance_lock_order``: the matcher's balance ``UPDATE`` locks the
        rows in this order, as intake's hold does, so the two never wait on each other in a cycle
        (``matching.core.lock_order`` says why)."""
        balances = self._balances
        rows = []
        for key in balance_lock_order(balances):
            total, held = balances[key]
            if total or held:
                rows.append(BalanceRow(key[0], key[1], units_text(total), units_text(held)))
        return rows

    def balance_delta(self, user: int, asset: str) -> tuple[int, int]:
        """(total, held) change of one balance so far, in base units."""
        total, held = self._balances.get((user, asset), (0, 0))
        return total, held

    # -- commands ------------------------------------------------------------------------------

    def place(
        self, command: PlaceCommand, result: PlaceResult, makers: dict[int, OrderState]
    ) -> list[tuple[int, OrderState | None]]:
        """Settle a placed order: its trades, each maker's row, its own row, and its held funds.

        ``makers`` has the state of every maker in ``result.trades`` (each fills once per incoming order).
        Returns the new state of each order touched, in trade order then the incoming order: ``None``
        for an order that left the book (fully executed, or the incoming order when nothing rests).
        """
        spec = self.spec
        coin, currency, fees = spec.coin, spec.currency, self.fee_account
        lot_base, notional_base = spec.lot_base, spec.notional_base
        move = self._move
        taker_buys = command.side is Side.BUY
        # Fee rates by role: the buyer receives base, the seller quote; the taker pays the taker rate.
        (buy_num, buy_den), (sell_num, sell_den) = (
            (spec.taker_fee, spec.maker_fee) if taker_buys else (spec.maker_fee, spec.taker_fee)
        )
        changed: list[tuple[int, OrderState | None]] = []
        taker_fee = 0
        trade: Trade
        for trade in result.trades:
            qty_base = trade.quantity * lot_base
            quote_base = trade.price * trade.quantity * notional_base
            buyer_fee = qty_base * buy_num // buy_den
            seller_fee = quote_base * sell_num // sell_den
            if taker_buys:
                buyer, seller, buy_id, sell_id = trade.taker_user, trade.maker_user, trade.taker_id, trade.maker_id
                taker_fee += buyer_fee
                maker_fee = seller_fee
            else:
                buyer, seller, buy_id, sell_id = trade.maker_user, trade.taker_user, trade.maker_id, trade.taker_id
                taker_fee += seller_fee
                maker_fee = buyer_fee
            # Fills consume held funds: the buyer's quote at the trade price, the seller's base.
            move(buyer, coin, qty_base - buyer_fee, 0)
            move(buyer, currency, -quote_base, -quote_base)
            move(seller, coin, -qty_base, -qty_base)
            move(seller, currency, quote_base - seller_fee, 0)
            move(fees, coin, buyer_fee, 0)
            move(fees, currency, seller_fee, 0)
            self.trades.append(
                TradeRow(
                    buy_id,
                    sell_id,
                    command.side.value,
                    str(trade.price * spec.tick_size),
                    str(trade.quantity * spec.lot_size),
                    units_text(buyer_fee),
                    units_text(seller_fee),
                )
            )
            before = makers[trade.maker_id]
            maker = OrderState(
                before.filled + trade.quantity, before.quote + trade.price * trade.quantity, before.fee + maker_fee
            )
            if trade.maker_remaining:
                self._row(trade.maker_id, OrderStatus.PARTIALLY_FILLED, maker)
                changed.append((trade.maker_id, maker))
            else:
                self._row(trade.maker_id, OrderStatus.EXECUTED, maker)
                changed.append((trade.maker_id, None))

        state = OrderState(result.filled, result.notional, taker_fee)
        self._row(command.id, result.status, state, seq=result.seq)
        # What the order held beyond what its fills consumed: a buy's price improvement, and all of the
        # unfilled remainder once the order is finished.
        held = self._held(command)
        if result.remaining:
            changed.append((command.id, state))
            if taker_buys:
                assert command.price is not None, "a resting order has a price"
                limit = to_units(command.price, spec.tick_size)
                release = (limit * result.filled - result.notional) * notional_base
            else:
                release = 0
        else:
            changed.append((command.id, None))
            release = held - (result.notional * notional_base if taker_buys else result.filled * lot_base)
        if release:
            move(command.user, currency if taker_buys else coin, 0, -release)
        return changed

    def wait(self, command: PlaceCommand, seq: int) -> None:
        """A stop order now waits for its trigger: its row (``stopping``, its placement ``seq``); it keeps
        what it holds, so no balance moves."""
        self.orders[command.id] = OrderRow(command.id, OrderStatus.STOPPING, "0", "0", None, "0", seq, None)

    def reject(self, command: PlaceCommand, seq: int, reason: str) -> None:
        """The engine refused the order: nothing filled, everything it held released."""
        self.orders[command.id] = OrderRow(
            command.id, OrderStatus.REJECTED, "0", "0", None, "0", seq, reason[:REASON_MAX]
        )
        held = self._held(command)
        if held:
            asset = self.spec.currency if command.side is Side.BUY else self.spec.coin
            self._move(command.user, asset, 0, -held)

    def cancel_stop(self, result: CancelResult, command: PlaceCommand) -> None:
        """A waiting stop order canceled (``result.stop``): its row, and the release of all it held
        (``command`` is its place command, which says what)."""
        self._row(result.order_id, OrderStatus.CANCELED, OrderState())
        held = self._held(command)
        if held:
            asset = self.spec.currency if command.side is Side.BUY else self.spec.coin
            self._move(command.user, asset, 0, -held)

    def cancel(self, result: CancelResult, state: OrderState) -> None:
        """A resting order canceled: its row, and the release of what its remainder held."""
        assert not result.stop, "a waiting stop is canceled by cancel_stop"
        spec = self.spec
        self._row(result.order_id, OrderStatus.CANCELED, state)
        if result.side is Side.BUY:
            self._move(result.user, spec.currency, 0, -result.price * result.canceled * spec.notional_base)
        else:
            self._move(result.user, spec.coin, 0, -result.canceled * spec.lot_base)

    # -- internals -----------------------------------------------------------------------------

    def _move(self, user: int, asset: str, total: int, held: int) -> None:
        delta = self._balances.get((user, asset))
        if delta is None:
            self._balances[(user, asset)] = [total, held]
        else:
            delta[0] += total
            delta[1] += held

    def _row(self, order_id: int, status: str, state: OrderState, seq: int | None = None) -> None:
        spec = self.spec
        executed = state.filled * spec.lot_size
        executed_quote = state.quote * spec.tick_size * spec.lot_size
        average = None
        if state.filled:
            average = str((executed_quote / executed).quantize(BASE, rounding=ROUND_HALF_EVEN))
        if seq is None and (previous := self.orders.get(order_id)) is not None:
            seq = previous.seq  # placed earlier in the same batch, filled as a maker since
        self.orders[order_id] = OrderRow(
            order_id, status, str(executed), str(executed_quote), average, units_text(state.fee), seq, None
        )

    @staticmethod
    def _held(command: PlaceCommand) -> int:
        """What intake held for the order, in base units; the engine refuses a command without it."""
        assert command.held is not None, "a place command settles only with what it holds"
        return to_units(command.held, BASE, what="held")
