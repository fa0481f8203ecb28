"""The matcher's Celery plumbing: routing, the watchdog that starts drain chains, chain supersession."""

from __future__ import annotations

import json

import pytest
import redis as redis_lib
from django.conf import settings

from matching.worker import registry, tasks
from spot import keys

pytestmark = pytest.mark.django_db


def test_markets_route_to_the_queue_of_their_coin():
    assert registry.queue_for("btc_usdt") == "match_btc"
    assert registry.queue_for("eth_usdt") == "match_eth"


def test_the_watchdog_starts_a_drain_chain_for_a_market_without_a_heartbeat(market, redis_client):
    broker = redis_lib.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete("match_btc")

    assert tasks.ensure_matchers() == 1

    message = json.loads(broker.lpop("match_btc"))
    assert message["headers"]["task"] == "matching.drain"
    chain = redis_client.get(keys.chain(market.code)).decode()
    assert message["headers"]["argsrepr"] == repr((market.code, chain))


def test_the_watchdog_leaves_a_living_matcher_alone(market, redis_client):
    registry.record_heartbeat(market.code)

    assert tasks.ensure_matchers() == 0


def test_a_superseded_chain_stops_without_touching_the_market(market, redis_client):
    registry.new_chain(market.code)

    assert tasks.drain.run(market.code, "an-old-chain") == 0
    assert not redis_client.exists(f"lease:{market.code}")
