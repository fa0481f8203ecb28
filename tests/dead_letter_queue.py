"""The broker's ``dead_letter`` queue seen from a test: what is waiting there, emptied, or recorded in
this process exactly as the default worker would (the record task's own code, one message at a time).

For tests that run a matcher in-process; the end-to-end tests start a real default worker instead
(tests/pipeline/test_dead_letters.py).
"""

from __future__ import annotations

from typing import Any

from orders.deadletters import dead_letter_record
from orders.models import DeadLetter
from spot.celery import DEAD_LETTER_QUEUE, RECORD_DEAD_LETTER, app


def record(**values: Any) -> DeadLetter:
    """A dead letter recorded through the service, with defaults for what a test does not care about."""
    values.setdefault("market", "btc_usdt")
    values.setdefault("reason", "bad entry")
    values.setdefault("deliveries", 3)
    letter, _ = dead_letter_record(**values)
    return letter


def waiting_dead_letters() -> list[tuple[list[Any], dict[str, Any]]]:
    """The dead letter messages on the broker, as (args, kwargs), consumed (acknowledged)."""
    found = []
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue(app.amqp.queues[DEAD_LETTER_QUEUE])
        try:
            while True:
                try:
                    message = queue.get(block=False)
                except queue.Empty:
                    break
                assert message.headers["task"] == RECORD_DEAD_LETTER, message.headers
                args, kwargs, _ = message.decode()
                found.append((args, kwargs))
                message.ack()
        finally:
            queue.close()
    return found


def empty_dead_letter_queue() -> None:
    waiting_dead_letters()


def record_dead_letters() -> int:
    """Record every waiting dead letter with the record task (run here); returns how many."""
    from orders.tasks import record_dead_letter

    messages = waiting_dead_letters()
    for args, kwargs in messages:
        record_dead_letter(*args, **kwargs)
    return len(messages)
