"""End-state checks of a market (the architecture's invariants), for tests, the loadtest and operators.

Each function returns a list of violations in words; an empty list means the check holds.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal

from django.db import connection
from django.db.models import Count, Max, Min, Sum

from matching import replay
from orders.models import Balance, Market, Order, OrderStatus, Trade


def asset_totals(assets: Iterable[str]) -> dict[str, Decimal]:
    """Per asset, the sum of every balance (the fee account included)."""
    rows = Balance.objects.filter(asset__in=list(assets)).values("asset").annotate(total=Sum("total"))
    return {row["asset"]: row["total"] or Decimal(0) for row in rows}


def audit_holds(market: Market) -> list[str]:
    """``held`` of every balance in the market's assets equals what the user's open orders still need.

    A new order needs what it held; a resting buy needs price x unfilled quantity, a resting sell its
    unfilled quantity. Assumes no other market shares these assets' holds (true in tests and the
    loadtest, which use their own markets).
    """
    need: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    open_orders = Order.objects.filter(coin=market.coin, currency=market.currency, status__in=OrderStatus.open())
    for order in open_orders.only("user_id", "trade_type", "status", "held", "price", "quantity", "executed_quantity"):
        if order.status == OrderStatus.NEW:
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


def audit_book(market: Market) -> list[str]:
    """The resting orders in the DB do not cross, and no order is left half-processed."""
    problems = []
    resting = Order.objects.filter(
        coin=market.coin, currency=market.currency, status__in=(OrderStatus.PENDING, OrderStatus.PARTIALLY_FILLED)
    )
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


def audit_trades(market: Market, fee_user_id: int | None = None) -> list[str]:
    """No pair of orders traded twice; executed quantities add up; fees landed in the fee account."""
    problems = []
    trades = Trade.objects.filter(coin=market.coin, currency=market.currency)
    dupes = trades.values("buy_order_id", "sell_order_id").annotate(n=Count("id")).filter(n__gt=1)
    if dupes.exists():
        problems.append(f"{dupes.count()} duplicate trades")
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


def audit_conservation(before: dict[str, Decimal], after: dict[str, Decimal]) -> list[str]:
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


def audit_against_replay(market: Market, stream_commands: list[str]) -> list[str]:
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


def audit_book_against_replay(market: Market, stream_commands: list[str]) -> list[str]:
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
                status__in=(OrderStatus.PENDING, OrderStatus.PARTIALLY_FILLED),
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
