"""The one order in which transactions lock balance rows: by user id, then by asset code.

Two transactions that each lock several balance rows deadlock when they take two of the same rows in
opposite orders (a buy's hold on (user, usdt) against the matcher settling (user, btc) and then
(user, usdt)). MariaDB then rolls one back with error 1213. If every transaction takes its balance
rows in one global order, neither can hold a row the other needs while waiting for one the other
holds, so a cycle cannot form. Who takes balance rows, and how:

- intake's hold (``orders.balances.balance_hold``): one ``UPDATE`` over the held rows;
- the matcher's batch (``Settlement.balance_rows``, written by ``matching.worker.store``): one
  ``UPDATE`` over every row the batch changes.

Both statements join a JSON array of rows to ``balances`` with ``STRAIGHT_JOIN`` and ``FORCE INDEX``,
and MariaDB then locks the rows in the array's order (tests/orders/test_services.py shows it), so
the order is the order of the array, which both build with ``balance_lock_order``. For lowercase
ASCII asset codes it is also the order of the unique index ``(user_id, asset)``, so a statement
that walks that index takes rows in the same order. A transaction that takes one balance row and
nothing else needs no order.

Standard library only: the pure settlement and Django's intake both import it.
"""

from __future__ import annotations

from collections.abc import Iterable

BalanceKey = tuple[int, str]  # (user id, asset code)


def balance_lock_order(keys: Iterable[BalanceKey]) -> list[BalanceKey]:
    """``keys`` sorted into the order every transaction locks balance rows in: (user id, asset)."""
    return sorted(keys)
