"""Order ids: BIGINTs made by the application, in blocks from a MariaDB sequence.

The matcher inserts and updates in bulk, and MySQL's bulk insert does not return generated ids, so
ids are known before the row exists. Each process takes a block of ``BLOCK_SIZE`` ids with one
``NEXTVAL`` (non-transactional: a rolled back block is never reused) and hands them out locally.
Ids are unique, not ordered across processes; time priority comes from the matcher's ``seq``.
"""

from __future__ import annotations

import threading

from django.db import connection

BLOCK_SIZE = 1000  # must equal the sequence's INCREMENT BY (migration 0002)


class OrderIdAllocator:
    """Thread-safe: ``take(n)`` returns ``n`` fresh ids; one DB statement per ``BLOCK_SIZE`` ids."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0
        self._end = 0  # exclusive

    def take(self, count: int = 1) -> list[int]:
        ids: list[int] = []
        with self._lock:
            while len(ids) < count:
                if self._next >= self._end:
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT NEXTVAL(order_id_blocks)")
                        (start,) = cursor.fetchone()
                    self._next, self._end = start, start + BLOCK_SIZE
                step = min(count - len(ids), self._end - self._next)
                ids.extend(range(self._next, self._next + step))
                self._next += step
        return ids


allocator = OrderIdAllocator()
