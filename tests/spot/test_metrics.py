"""The web's ``/metrics`` (FR-OB-001): one truthful reading whichever gunicorn worker answers, gauges
with a sample from the start, scrape-time collectors that never fail the scrape."""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from spot import health, keys
from spot.correlation import HEADER, new_correlation_id
from spot.metrics import breaker_changed
from spot.resilience import CircuitBreaker

# The Django test client's requests arrive "on" this port (SERVER_PORT), as gunicorn's on the listener.
METRICS_PORT = settings.WEB_METRICS_BIND.rpartition(":")[2]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, by name and sorted labels. Parsing it also checks
    the page: a metric family twice (two collectors exporting one name) is an error."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    names = re.findall(r"^# TYPE (\S+) ", text, flags=re.MULTILINE)
    assert len(names) == len(set(names)), "a metric family is exported twice"
    return found


def test_a_circuit_breaker_reads_0_from_its_creation_not_only_from_its_first_change():
    name = f"fresh-{uuid.uuid4().hex[:8]}"
    CircuitBreaker(name, on_change=breaker_changed)

    assert REGISTRY.get_sample_value("spot_circuit_open", {"circuit": name}) == 0


def test_a_breaker_without_a_gauge_is_created_without_one():
    CircuitBreaker("no-gauge")  # on_change None: nothing to call

    assert REGISTRY.get_sample_value("spot_circuit_open", {"circuit": "no-gauge"}) is None


@pytest.mark.django_db(transaction=True)
def test_a_matcher_reports_its_queue_depth_when_it_starts_not_only_after_its_first_slice(market, redis_client):
    from matching.worker import registry
    from spot.metrics import QUEUE_DEPTH

    for n in range(3):
        redis_client.xadd(keys.stream(market.code), {"c": f"waiting {n}"})
    engine = registry.engine_for(market.code)
    if (market.code,) in QUEUE_DEPTH._metrics:  # a sample left by another test of this process
        QUEUE_DEPTH.remove(market.code)
    try:
        engine.start()

        assert REGISTRY.get_sample_value("spot_queue_depth", {"market": market.code}) == 3
    finally:
        registry.forget_engines()


@pytest.mark.django_db(transaction=True)
class TestScrape:
    @pytest.fixture(autouse=True)
    def _fresh_probe(self):
        yield
        health._drop_probe_database()

    def test_each_enabled_market_has_a_heartbeat_age_infinite_until_its_matcher_beats(
        self, client, market, redis_client
    ):
        before = samples(client.get("/metrics", SERVER_PORT=METRICS_PORT).content.decode())
        redis_client.set(keys.heartbeat(market.code), f"{time.time() - 3:.6f}", ex=60)
        after = samples(client.get("/metrics", SERVER_PORT=METRICS_PORT).content.decode())

        age = ("spot_matcher_heartbeat_age_seconds", (("market", market.code),))
        assert before[age] == float("inf")
        assert 3 <= after[age] < 30
        assert after[("spot_exporter_collector_up", (("collector", "matcher_heartbeats"),))] == 1

    def test_the_dead_letter_collector_is_part_of_the_scrape(self, client, market):
        page = samples(client.get("/metrics", SERVER_PORT=METRICS_PORT).content.decode())

        assert page[("spot_dead_letters_dead", (("market", market.code),))] == 0
        assert page[("spot_exporter_collector_up", (("collector", "dead_letters"),))] == 1

    def test_a_scrape_with_redis_unreachable_still_answers_and_says_which_collectors_were_left_out(
        self, client, market, settings
    ):
        settings.MATCHING_REDIS_URL = "redis://127.0.0.1:1/0"

        response = client.get("/metrics", SERVER_PORT=METRICS_PORT)

        assert response.status_code == 200
        page = samples(response.content.decode())
        assert page[("spot_exporter_collector_up", (("collector", "matcher_heartbeats"),))] == 0
        assert page[("spot_exporter_collector_up", (("collector", "dead_letters"),))] == 0
        assert not any(name.startswith(("spot_matcher_heartbeat", "spot_dead_letters")) for name, _ in page)
        assert any(name.startswith("django_http_") for name, _ in page)  # the process's own metrics are there

    def test_a_scraper_that_asks_for_openmetrics_gets_it(self, client, market):
        response = client.get(
            "/metrics", SERVER_PORT=METRICS_PORT, headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )

        assert response["Content-Type"].startswith("application/openmetrics-text")
        assert response.content.decode().endswith("# EOF\n")


# -- a real gunicorn with two workers --------------------------------------------------------------

HEALTH_LIVE = ("django_http_requests_total_by_view_transport_method_total", "health-live")
SCRAPES = ("django_http_requests_total_by_view_transport_method_total", "metrics")


def _count(page: dict, metric: tuple[str, str]) -> float:
    name, view = metric
    key = (name, (("method", "GET"), ("transport", "http"), ("view", view)))
    return page.get(key, 0.0)


def _pids(lines: list[str]) -> set[str]:
    return {match[1] for line in lines if (match := re.search(r" <(\d+)> ", line))}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_under_two_gunicorn_workers_a_counter_reads_the_same_on_every_scrape_and_survives_a_worker_kill(
    web_server,
):
    web = web_server(workers=2)
    sent: list[str] = []

    def hit(_: int) -> None:
        correlation_id = new_correlation_id()
        assert web.get("/health/live", {HEADER: correlation_id}).status == 200
        sent.append(correlation_id)

    # Requests go to whichever worker accepts them; send until both workers have answered some
    # (the access log names the worker's pid), so the scrape below has two processes to add up.
    with ThreadPoolExecutor(8) as pool:
        for _ in range(25):
            list(pool.map(hit, range(40)))
            if len(_pids(line for line in web.access_lines() if "/health/live" in line)) >= 2:
                break
    n = len(sent) + web.startup_probes

    def live_lines() -> list[str]:
        return [line for line in web.access_lines() if "/health/live" in line]

    web.wait_until(lambda: len(live_lines()) == n, "every request in the access log")  # logged after answering
    assert len(_pids(live_lines())) == 2, "one worker answered every request"

    readings = [samples(web.get("/metrics", port=web.metrics_port).text) for _ in range(10)]

    assert [_count(page, HEALTH_LIVE) for page in readings] == [n] * 10
    scrapes = [_count(page, SCRAPES) for page in readings]
    assert scrapes == [scrapes[0] + i for i in range(10)]  # each scrape counted once, whichever worker
    # Access log lines carry the request's correlation id (the response header) and the worker's pid.
    logged = {re.search(r"\[(\S+)\]$", line)[1] for line in live_lines()}
    assert set(sent) <= logged and len(logged) == n

    # A worker killed outright is replaced; what it counted stays in the sums (a counter never goes back).
    victim = min(web.worker_pids())
    os.kill(victim, signal.SIGKILL)
    web.wait_until(lambda: len(web.worker_pids() - {victim}) == 2, "gunicorn to replace the killed worker")
    after_kill = [samples(web.get("/metrics", port=web.metrics_port).text) for _ in range(10)]

    assert [_count(page, HEALTH_LIVE) for page in after_kill] == [n] * 10
    assert [_count(page, SCRAPES) for page in after_kill] == [scrapes[-1] + 1 + i for i in range(10)]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_metrics_are_served_on_their_own_listener_and_not_on_the_api_port(web_server):
    web = web_server(workers=1)

    on_api_port = web.get("/metrics")
    spoofed_host = web.get("/metrics", {"Host": f"127.0.0.1:{web.metrics_port}"})
    on_metrics_port = web.get("/metrics", port=web.metrics_port)

    assert on_api_port.status == 404 and on_api_port.json() == {"message": "not found"}
    assert spoofed_host.status == 404  # the listener decides, not the Host header
    assert on_metrics_port.status == 200 and "django_http_requests" in on_metrics_port.text


@pytest.mark.django_db
def test_the_django_client_on_another_port_gets_404(client):
    assert client.get("/metrics", SERVER_PORT="8000").status_code == 404
    assert client.get("/metrics", SERVER_PORT=METRICS_PORT).status_code == 200
