"""orders.market_cache: a market read once per process and ``MARKET_CACHE_TTL_S``, a save through
Django seen at once by the saving process, a change made elsewhere seen by every process when its
entry expires (two real processes, a change made in SQL)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from django.db import connection

from orders.market_cache import MarketCache
from orders.models import Market
from orders.selectors import market_find
from tests.factories import MarketFactory

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.django_db
def test_a_market_is_read_once_for_many_orders(django_assert_num_queries):
    market = MarketFactory()
    with django_assert_num_queries(1):
        found = [market_find("btc_usdt") for _ in range(5)]
    assert found == [market] * 5


@pytest.mark.django_db
def test_an_unknown_code_is_cached_too_and_a_new_market_clears_it(django_assert_num_queries):
    with django_assert_num_queries(1):
        assert market_find("eth_usdt") is None and market_find("eth_usdt") is None
    created = MarketFactory(coin="eth")
    assert market_find("eth_usdt") == created


@pytest.mark.django_db
def test_a_market_saved_through_django_is_seen_by_this_process_at_once():
    market = MarketFactory()
    assert market_find("btc_usdt").enabled
    market.enabled = False
    market.save(update_fields=["enabled"])
    assert not market_find("btc_usdt").enabled


@pytest.mark.django_db
def test_a_change_made_in_sql_is_seen_when_the_entry_expires(settings):
    settings.MARKET_CACHE_TTL_S = 1.0
    now = [100.0]
    cache = MarketCache(clock=lambda: now[0])
    MarketFactory()

    def read(code: str) -> Market | None:
        return Market.objects.filter(coin="btc", currency="usdt").first()

    assert cache.get("btc_usdt", read).enabled
    Market.objects.filter(coin="btc").update(enabled=False)  # no signal: as another process's change
    now[0] += 0.9
    assert cache.get("btc_usdt", read).enabled, "still within the TTL"
    now[0] += 0.1
    assert not cache.get("btc_usdt", read).enabled


@pytest.mark.django_db
def test_a_ttl_of_zero_reads_the_db_every_time(settings, django_assert_num_queries):
    settings.MARKET_CACHE_TTL_S = 0
    MarketFactory()
    with django_assert_num_queries(3):
        for _ in range(3):
            market_find("btc_usdt")


# Each process reads the market in a loop until it sees it disabled, counting its lookups and the
# queries they made; it says "ready" once it has the market cached, and keeps reading.
READER = textwrap.dedent(
    """
    import time
    import django
    django.setup()
    from django.db import connection
    from orders.selectors import market_find

    queries = 0

    def count(execute, sql, params, many, context):
        global queries
        queries += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        assert market_find("btc_usdt").enabled
        print("ready", flush=True)
        lookups, deadline = 0, time.monotonic() + 60
        while market_find("btc_usdt").enabled and time.monotonic() < deadline:
            lookups += 1
            time.sleep(0.01)
    print("seen" if not market_find("btc_usdt").enabled else "stale", lookups, queries, flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_processes_see_a_market_disabled_in_sql_once_their_entries_expire():
    MarketFactory()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "settings.test",
        "MYSQL_DATABASE": connection.settings_dict["NAME"],
        "MARKET_CACHE_TTL_S": "0.5",
    }
    readers = [
        subprocess.Popen([sys.executable, "-c", READER], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        for reader in readers:
            assert reader.stdout is not None and reader.stdout.readline().strip() == "ready"
        Market.objects.filter(coin="btc", currency="usdt").update(enabled=False)  # SQL: no signal anywhere
        answers = [reader.communicate(timeout=90)[0].split() for reader in readers]
    finally:
        for reader in readers:
            if reader.poll() is None:
                reader.kill()
    for word, lookups, queries in answers:
        assert word == "seen"
        # The cache answered most lookups: one query a TTL (0.5 s) for a lookup every 10 ms or so, so
        # the loop did run against the cache, not the DB.
        assert int(queries) < int(lookups), (lookups, queries)
