"""Markets by code, kept in each process for ``MARKET_CACHE_TTL_S`` (``orders.selectors.market_find``).

Every order names its market, so every placement used to start with a query of the markets table
(docs/BENCHMARKS.md, the HTTP profile: a quarter of a request with the connection's health check).
Markets change rarely (an operator enables one, or changes its fees or grid in the admin), so each
process keeps what it read for a short time:

- a change saved through Django in this process (the admin, a management command) clears the
  process's cache at once (``post_save``/``post_delete`` of ``Market``);
- a change made anywhere else (another gunicorn worker's admin request, another host, SQL) is seen
  by every process within ``MARKET_CACHE_TTL_S`` (default 1 s), when its entry expires.

A Redis-held version checked on each request would make the second case immediate too, but costs a
round trip on every request that has none to spare, or couples this cache to the authentication's
script; a second of staleness for a change that is an operator's decision is the cheaper bargain.
A market disabled in the admin may so take one more second of orders in another worker, exactly as
if the operator had clicked a second later; a market's row never disappears while it has orders.

Unknown codes are cached too (as ``None``), so a client probing codes costs one query a second per
code a process. Entries are the Market instances read: treat them as read-only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from orders.models import Market

MAX_ENTRIES = 1024  # codes cached a process; more (a probing client) empties the cache first


class MarketCache:
    """Code -> (Market or None, read at). Thread-safe; ``clock`` is monotonic seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: dict[str, tuple[Market | None, float]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def get(self, code: str, load: Callable[[str], Market | None]) -> Market | None:
        """The market ``code`` from the cache if read within ``MARKET_CACHE_TTL_S``, else ``load(code)``
        (kept). A TTL of 0 turns the cache off. Cost on a hit: a dict read, no query."""
        ttl = settings.MARKET_CACHE_TTL_S
        now = self._clock()
        entry = self._entries.get(code)
        if entry is not None and now - entry[1] < ttl:
            return entry[0]
        market = load(code)
        if ttl > 0:
            with self._lock:
                if len(self._entries) >= MAX_ENTRIES:
                    self._entries.clear()
                self._entries[code] = (market, now)
        return market

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


MARKETS = MarketCache()


# Connected on import: nothing is cached before this module is imported, so nothing can be stale.
@receiver(post_save, sender=Market, dispatch_uid="market-cache-saved")
@receiver(post_delete, sender=Market, dispatch_uid="market-cache-deleted")
def _market_changed(sender: Any, **kwargs: Any) -> None:
    """A market saved or deleted through Django clears this process's cache."""
    MARKETS.clear()
