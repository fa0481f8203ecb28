"""End-state checks of a market (invariants INV-1 to INV-4, docs/requirements.md), for tests, the
loadtest and operators.

Each check returns a list of violations in words; an empty list means it holds. ``end_state`` runs
them all. Every check is shown to fail on a state built broken on purpose (tests/orders/test_invariants.py).
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from collections.abc import Iterable
from decimal import ROUND_FLOOR, Context, Decimal

from django.db import connection
from django.db.models import Count, Max, Min, Sum

from matching import replay
from matching.core import OPEN_STATUSES, RESTING_STATUSES
from orders.models import Balance, Market, Order, OrderStatus, Side, Trade


def asset_totals(assets: Iterable[str]) -> dict[str, Decimal]:
    """Per asset, the sum of every balance (the fee account included)."""
    rows = Balance.objects.filter(asset__in=list(assets)).values("asset").annotate(total=Sum("total"))
    return {row["asset"]: row["total"] or Decimal(0) for row in rows}


def holds(market: Market) -> list[str]:
    """``held`` of every balance in the market's assets equals what the user's open orders still need.

    A new order, and a stop order waiting for its trigger (``stopping``), needs what it held; a resting
    buy needs price x unfilled quantity, a resting sell its unfilled quantity. Assumes no other market shares these assets' holds (true in tests and the
    loadtest, which use their own markets).
    """
    need: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    open_orders = Order.objects.filter(coin=market.coin, currency=market.currency, status__in=OPEN_STATUSES)
    for order in open_orders.only("user_id", "trade_type", "status", "held", "price", "quantity", "executed_quantity"):
        if order.status in (OrderStatus.NEW, OrderStatus.STOPPING):
            amount = order.held
        elif order.trade_type == "buy":
            amount = order.price * (order.quantity - order.executed_quantity)
        else:
            amount = order.quantity - order.executed_quantity
        need[(order.user_id, market.currency if order.trade_type == "buy" else market.coin)] += amount
    problems = []
    for balance in Balance.objects.filter(asset__in=[market.coin, market.currency]):
        expected = need.pop((balance.user_id, balance.asset), Decimal(0))
        if balance.held != expected:
            problems.append(f"user {balance.user_id} holds {balance.held} {balance.asset}; open orders need {expected}")
    problems.extend(
        f"user {u} has open orders needing {a} {asset} but no balance row" for (u, asset), a in need.items()
    )
    return problems


def lost_orders(market: Market) -> list[str]:
    """Every accepted order reached a final or resting state: none is still ``new`` (never matched)."""
    new = Order.objects.filter(coin=market.coin, currency=market.currency, status=OrderStatus.NEW).count()
    return [f"{new} orders are still new"] if new else []


def crossed_book(market: Market) -> list[str]:
    """The resting orders in the DB do not cross, and no order is left half-processed."""
    problems = []
    resting = Order.objects.filter(coin=market.coin, currency=market.currency, status__in=RESTING_STATUSES)
    best_bid = resting.filter(trade_type="buy").aggregate(p=Max("price"))["p"]
    best_ask = resting.filter(trade_type="sell").aggregate(p=Min("price"))["p"]
    if best_bid is not None and best_ask is not None and best_bid >= best_ask:
        problems.append(f"book is crossed: bid {best_bid} >= ask {best_ask}")
    overfilled = Order.objects.filter(coin=market.coin, currency=market.currency, executed_quantity__gt=0).exclude(
        status__in=(OrderStatus.PARTIALLY_FILLED, OrderStatus.EXECUTED, OrderStatus.CANCELED)
    )
    if overfilled.exists():
        problems.append(f"{overfilled.count()} orders have fills but a status that says otherwise")
    return problems


def duplicate_trades(market: Market) -> list[str]:
    """No pair of orders traded twice (the schema refuses it too: uniq_trades_buy_sell)."""
    trades = Trade.objects.filter(coin=market.coin, currency=market.currency)
    dupes = trades.values("buy_order_id", "sell_order_id").annotate(n=Count("id")).filter(n__gt=1)
    return [f"{dupes.count()} duplicate trades"] if dupes.exists() else []


def executed_quantities(market: Market) -> list[str]:
    """Each order's executed quantity is the sum of its trades' quantities."""
    problems = []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT COUNT(*) FROM orders o
            LEFT JOIN (
                SELECT order_id, SUM(quantity) AS filled FROM (
                    SELECT buy_order_id AS order_id, quantity FROM trades WHERE coin = %s AND currency = %s
                    UNION ALL
                    SELECT sell_order_id, quantity FROM trades WHERE coin = %s AND currency = %s
                ) legs GROUP BY order_id
            ) t ON t.order_id = o.id
            WHERE o.coin = %s AND o.currency = %s AND o.executed_quantity <> COALESCE(t.filled, 0)
            """,
            [market.coin, market.currency] * 3,
        )
        (mismatched,) = cursor.fetchone()
    if mismatched:
        problems.append(f"{mismatched} orders' executed quantity differs from the sum of their trades")
    return problems


def fees(market: Market) -> list[str]:
    """Every trade charged ``floor(amount x rate)`` in base units (1e-10) to each side, in the asset it
    received, the taker at the taker rate and the maker at the maker rate; each order's ``fee`` is the
    sum of what its trades charged it."""
    problems = []
    rates = {True: market.taker_fee_rate, False: market.maker_fee_rate}  # keyed by "is the taker"
    charged: dict[int, Decimal] = defaultdict(Decimal)
    for trade in Trade.objects.filter(coin=market.coin, currency=market.currency).order_by("id"):
        buyer_rate, seller_rate = rates[trade.taker_side == Side.BUY], rates[trade.taker_side == Side.SELL]
        buyer_fee = _floor_base(_EXACT.multiply(trade.quantity, buyer_rate))
        seller_fee = _floor_base(_EXACT.multiply(_EXACT.multiply(trade.price, trade.quantity), seller_rate))
        if (trade.buyer_fee, trade.seller_fee) != (buyer_fee, seller_fee):
            problems.append(
                f"trade {trade.id} charged fees {trade.buyer_fee} / {trade.seller_fee}, "
                f"the rates give {buyer_fee} / {seller_fee}"
            )
        charged[trade.buy_order_id] += trade.buyer_fee
        charged[trade.sell_order_id] += trade.seller_fee
    orders = Order.objects.filter(coin=market.coin, currency=market.currency).exclude(fee=0, executed_quantity=0)
    for order_id, fee in orders.values_list("id", "fee"):
        if fee != charged.get(order_id, Decimal(0)):
            problems.append(f"order {order_id} shows fee {fee}, its trades charged {charged.get(order_id, 0)}")
    return problems[:10] + ([f"... and {len(problems) - 10} more fee problems"] if len(problems) > 10 else [])


_EXACT = Context(prec=80)  # wider than any product of two DECIMAL(30, 10) amounts and a rate: never rounds


def _floor_base(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("1E-10"), rounding=ROUND_FLOOR, context=_EXACT)


def conservation(before: dict[str, Decimal], after: dict[str, Decimal]) -> list[str]:
    """Per asset, balances plus fees (the fee account is a balance) did not change."""
    return [
        f"{asset}: total was {before.get(asset, 0)}, now {after.get(asset, 0)}"
        for asset in sorted(set(before) | set(after))
        if before.get(asset, Decimal(0)) != after.get(asset, Decimal(0))
    ]


def replay_events(stream_commands: Iterable[str]) -> list[dict]:
    """Events of ``python -m matching.replay`` for these command lines (run in process)."""
    out, err = io.StringIO(), io.StringIO()
    status = replay.run(io.StringIO("\n".join(stream_commands) + "\n"), out, err)
    if status != 0:
        raise ValueError(f"replay refused the stream: {err.getvalue().strip()}")
    return [json.loads(line) for line in out.getvalue().splitlines()]


def trades_against_replay(market: Market, stream_commands: list[str]) -> list[str]:
    """The market's trades and final order statuses equal the replay's of the same command stream."""
    events = replay_events(stream_commands)
    expected_trades = [
        (e["taker"], e["maker"], Decimal(e["price"]), Decimal(e["quantity"])) for e in events if e["event"] == "trade"
    ]
    actual_trades = []
    for trade in Trade.objects.filter(coin=market.coin, currency=market.currency).order_by("id"):
        taker, maker = (trade.buy_order_id, trade.sell_order_id)
        if trade.taker_side == "sell":
            taker, maker = maker, taker
        actual_trades.append((taker, maker, trade.price, trade.quantity))
    problems = []
    if actual_trades != expected_trades:
        first = next(
            (i for i, (a, b) in enumerate(zip(actual_trades, expected_trades, strict=False)) if a != b),
            min(len(actual_trades), len(expected_trades)),
        )
        problems.append(
            f"trades differ from the replay's at #{first}: {len(actual_trades)} in the DB, {len(expected_trades)} replayed"
        )
    # Each order's final status as the replay has it: its own order events, then fills as a maker.
    quantities = {c["id"]: Decimal(c["quantity"]) for c in map(json.loads, stream_commands) if c["op"] == "place"}
    filled: dict[int, Decimal] = defaultdict(Decimal)
    final: dict[int, str] = {}
    for event in events:
        kind = event["event"]
        if kind == "order":
            final[event["id"]] = event["status"]
        elif kind == "trade":
            maker = event["maker"]
            filled[event["taker"]] += Decimal(event["quantity"])
            filled[maker] += Decimal(event["quantity"])
            final[maker] = "executed" if filled[maker] == quantities[maker] else "partially_filled"
        elif kind == "reject" and event["id"] in quantities and event["id"] not in final:
            final[event["id"]] = "rejected"
    statuses = dict(Order.objects.filter(id__in=list(quantities)).values_list("id", "status"))
    wrong = [(i, statuses.get(i), status) for i, status in final.items() if statuses.get(i) != status]
    problems.extend(f"order {i} is {db} in the DB, {rp} in the replay" for i, db, rp in wrong[:10])
    if len(wrong) > 10:
        problems.append(f"... and {len(wrong) - 10} more orders differ")
    return problems


def book_against_replay(market: Market, stream_commands: list[str]) -> list[str]:
    """The resting orders in the DB, aggregated by price, equal the replay's final book."""
    book = replay_events(stream_commands)[-1]
    expected = {side: [(Decimal(p), Decimal(q)) for p, q in book[side]] for side in ("bids", "asks")}
    actual = {}
    for side, trade_type, order in (("bids", "buy", "-price"), ("asks", "sell", "price")):
        rows = (
            Order.objects.filter(
                coin=market.coin,
                currency=market.currency,
                trade_type=trade_type,
                status__in=RESTING_STATUSES,
            )
            .values("price")
            .annotate(quantity=Sum("quantity"), executed=Sum("executed_quantity"))
            .order_by(order)
        )
        actual[side] = [(r["price"], r["quantity"] - r["executed"]) for r in rows]
    return [
        f"{side}: the DB rests {len(actual[side])} levels, the replay {len(expected[side])}"
        + (
            f" (first difference at level {next(i for i, (a, b) in enumerate(zip(actual[side], expected[side], strict=False)) if a != b) if any(a != b for a, b in zip(actual[side], expected[side], strict=False)) else min(len(actual[side]), len(expected[side]))})"
        )
        for side in ("bids", "asks")
        if actual[side] != expected[side]
    ]


def end_state(market: Market, stream_commands: list[str], totals_before: dict[str, Decimal]) -> list[str]:
    """Every check of the market's end state after ``stream_commands`` went through a pipeline, with the
    per-asset totals taken before it started."""
    after = asset_totals([market.coin, market.currency])
    return [
        *lost_orders(market),
        *trades_against_replay(market, stream_commands),
        *book_against_replay(market, stream_commands),
        *holds(market),
        *crossed_book(market),
        *duplicate_trades(market),
        *executed_quantities(market),
        *fees(market),
        *conservation(totals_before, after),
    ]
