"""The ``celery worker`` program of the app: a worker on match queues is a dedicated matcher.

``celery -A spot worker -Q match_btc``, typed exactly so, gets Celery's defaults: a prefork pool of one
child per CPU, each child its own matcher, and the market's lease bounces between them. A market's
book lives in the memory of one process, so a worker whose queues are all match queues is forced to
the solo pool with concurrency 1 (whatever ``-P``/``-c`` said, and it says so once). A worker asked
to consume match queues and other queues is refused at start: the other queues' tasks would wait
behind the matcher's drain loop, or, in a pool, run the matcher in several processes.

A match queue is recognised by name, without the database (a worker may start before the DB is up):
it starts with ``match_`` (the queue ``matching.worker.registry.queue_for`` routes a market to by
default) or is a value of ``settings.MATCHING_QUEUES``.
"""

from __future__ import annotations

import logging
from typing import Any

import click
from celery.apps.worker import Worker as CeleryWorker
from celery.utils.text import str_to_list
from click.core import ParameterSource

logger = logging.getLogger(__name__)

MATCH_QUEUE_PREFIX = "match_"


def is_match_queue(name: str) -> bool:
    """Whether ``name`` is a queue a market's drain chain is routed to (by name; no DB)."""
    from django.conf import settings

    return name.startswith(MATCH_QUEUE_PREFIX) or name in set(settings.MATCHING_QUEUES.values())


class MixedQueues(click.UsageError):
    """A worker was asked to consume match queues and other queues: it exits with status 2."""


def _explicit(name: str) -> bool:
    """Whether the ``celery worker`` option ``name`` was given on the command line or in the
    environment rather than left to Celery's default (False outside the CLI: nobody typed it)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or name not in ctx.params:
        return False
    return ctx.get_parameter_source(name) in {ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT}


class Worker(CeleryWorker):  # type: ignore[misc]
    """Celery's worker program, plus the matcher rule above (the app's ``Worker``, see ``spot.celery``)."""

    _matcher_note: tuple[int, str, tuple[object, ...]] | None = None

    def setup_instance(self, queues: Any = None, **kwargs: Any) -> None:
        names = str_to_list(queues)
        matching = [name for name in names if is_match_queue(name)]
        if matching:
            others = [name for name in names if name not in matching]
            if others:
                raise MixedQueues(
                    f"refusing to start: -Q names match queues ({', '.join(matching)}) and other queues "
                    f"({', '.join(others)}). A matcher holds its markets' books in memory and must be a "
                    f"process of its own: start `celery -A spot worker -Q {','.join(matching)}` and "
                    f"`celery -A spot worker -Q {','.join(others)}` separately."
                )
            self._force_single_process(matching)
        super().setup_instance(queues=queues, **kwargs)

    def _force_single_process(self, matching: list[str]) -> None:
        pool = self.pool_cls if isinstance(self.pool_cls, str) else getattr(self.pool_cls, "__module__", "")
        pool_name = str(pool).rsplit(".", 1)[-1]
        asked = []
        if _explicit("pool") and pool_name != "solo":
            asked.append(f"pool {pool_name}")
        if _explicit("concurrency") and self.concurrency not in (None, 1):
            asked.append(f"concurrency {self.concurrency}")
        self.pool_cls, self.concurrency = "solo", 1
        queues = ", ".join(matching)
        if asked:
            self._matcher_note = (
                logging.WARNING,
                "match queue %s: %s overridden; a matcher runs the solo pool with concurrency 1 "
                "(one process holds a market's book)",
                (queues, " and ".join(asked)),
            )
        else:
            self._matcher_note = (
                logging.INFO,
                "match queue %s: solo pool, concurrency 1 (one process holds a market's book)",
                (queues,),
            )

    def on_start(self) -> None:
        # Logging is set up by now (``on_init_blueprint``); ``setup_instance`` ran before it.
        if self._matcher_note is not None:
            level, message, args = self._matcher_note
            logger.log(level, message, *args)
            self._matcher_note = None
        super().on_start()
