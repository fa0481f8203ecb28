"""Feeding a workload through the real intake: accept every order first, push the stream later.

``accept`` runs the places through ``order_place_many`` (holds, order rows) without pushing them and
returns the market's stream commands in workload order; ``push`` appends them to the stream, all at
once or on an open-loop schedule. The loadtest and the pipeline tests share both.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from decimal import Decimal

import redis

from bench.workload import Cancel, Command, Place
from matching.commands import CancelCommand, encode
from matching.queue import RedisStreamOrderQueue
from orders.models import Market
from orders.outbox import order_command
from orders.services import OrderRequest, order_place_many
from spot import keys


def publish_reference(client: redis.Redis, market: Market, price: Decimal) -> None:
    """Publish a top of book so intake can price market buys before the matcher has published one."""
    client.set(keys.book(market.code), json.dumps({"market": market.code, "bids": [], "asks": [[str(price), "1"]]}))


def accept(
    market: Market, user_ids: Sequence[int], commands: Sequence[Command], *, chunk: int = 50
) -> list[tuple[str, int | None]]:
    """Accept the workload's orders; returns ``(command_json, order_id or None)`` in stream order."""
    places = [c for c in commands if isinstance(c, Place)]
    ids: dict[int, int] = {}
    for start in range(0, len(places), chunk):
        part = places[start : start + chunk]
        requests = [
            OrderRequest(
                user_ids[p.user],
                p.side,
                p.type,
                p.quantity,
                p.price,
                p.tif,
                base_price=p.base_price,
                stop_condition=p.stop_condition,
            )
            for p in part
        ]
        for place, order in zip(part, order_place_many(market=market, requests=requests, enqueue=False), strict=True):
            ids[place.ref] = order.id
    orders = {o.id: o for o in market_orders(market, ids.values())}
    stream: list[tuple[str, int | None]] = []
    for command in commands:
        if isinstance(command, Place):
            order = orders[ids[command.ref]]
            stream.append((encode(order_command(order, "")), order.id))
        else:
            assert isinstance(command, Cancel)
            order = orders[ids[command.ref]]
            cancel = CancelCommand(id=order.id, user=order.user_id, market=market.code)
            stream.append((encode(cancel), None))
    return stream


def market_orders(market: Market, ids: object) -> list:
    from orders.models import Order

    id_list = list(ids)  # type: ignore[call-overload]
    found = []
    for start in range(0, len(id_list), 5000):
        found.extend(Order.objects.filter(id__in=id_list[start : start + 5000]))
    return found


def push(
    client: redis.Redis, market: Market, stream: Sequence[tuple[str, int | None]], *, rate: float = 0, group: int = 50
) -> float:
    """Append ``stream`` to the market's stream; at ``rate`` commands/s on an open-loop schedule
    (``0``: as fast as possible). Returns the seconds it took."""
    queue = RedisStreamOrderQueue(client, market.code)
    queue.ensure_group()
    started = time.perf_counter()
    step = group if rate == 0 else max(1, min(group, int(rate / 500) or 1))
    for index in range(0, len(stream), step):
        if rate:
            due = started + index / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        queue.push_many(list(stream[index : index + step]))
    return time.perf_counter() - started
