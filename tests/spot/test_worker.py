"""``celery -A spot worker``: which queues make a worker a matcher, and the mix that is refused."""

from __future__ import annotations

import pytest

from spot.celery import app
from spot.worker import MixedQueues, Worker, is_match_queue


@pytest.mark.parametrize(("name", "expected"), [("match_btc", True), ("match_eth", True), ("default", False)])
def test_a_match_queue_is_known_by_its_name_without_the_database(name, expected):
    assert is_match_queue(name) is expected


def test_a_queue_named_in_matching_queues_is_a_match_queue_too(settings):
    settings.MATCHING_QUEUES = {"doge_usdt": "memecoins"}

    assert is_match_queue("memecoins")
    assert not is_match_queue("dead_letter")


def test_the_app_runs_the_project_worker_program():
    assert issubclass(app.Worker, Worker)


def test_a_worker_on_match_queues_and_other_queues_is_refused_naming_both():
    with pytest.raises(MixedQueues) as refused:
        app.Worker(queues=["match_btc", "default"])

    message = refused.value.format_message()
    assert "match queues (match_btc)" in message and "other queues (default)" in message
    assert refused.value.exit_code == 2
