"""The matcher's port: which port a queue gets, and what it answers (``/metrics``, ``/health``, 404)."""

from __future__ import annotations

import http.client
import json
import socket

import pytest

from matching.worker import server

LISTED = {"match_btc": 9101, "match_eth": 9102}


def _get(base: str, path: str, method: str = "GET") -> tuple[int, str, str]:
    connection = http.client.HTTPConnection(base, timeout=5)  # "host:port"
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read().decode()
    finally:
        connection.close()


def test_listed_queues_keep_their_ports_and_the_others_follow_in_market_order():
    ports = server.ports_by_queue(["match_btc", "match_sol", "match_eth", "match_ada"], LISTED, 9100)

    assert ports == {"match_btc": 9101, "match_eth": 9102, "match_sol": 9103, "match_ada": 9104}


def test_a_queue_added_later_gets_a_port_after_the_others_and_moves_none():
    before = server.ports_by_queue(["match_btc", "match_sol"], LISTED, 9100)
    after = server.ports_by_queue(["match_btc", "match_sol", "match_ada"], LISTED, 9100)

    assert after["match_sol"] == before["match_sol"] == 9103
    assert after["match_ada"] == 9104
    assert len(set(after.values())) == len(after)  # no two queues share a port


def test_unlisted_ranks_skip_every_listed_port():
    ports = server.ports_by_queue(["match_a", "match_b"], {"match_x": 9101, "match_y": 9103}, 9100)

    assert ports["match_a"] == 9102 and ports["match_b"] == 9104


@pytest.mark.parametrize(
    ("chains", "code", "status"),
    [
        ({"btc_usdt": {"owner": True, "last_drain_age_s": 0.5}}, 200, "ok"),
        ({"btc_usdt": {"owner": False, "last_drain_age_s": 1.5}}, 200, "standby"),
        ({"btc_usdt": {"owner": True, "last_drain_age_s": 31.0}}, 503, "stale"),
        ({}, 503, "stale"),
    ],
)
def test_health_is_ok_for_an_owner_standby_for_a_waiting_matcher_and_stale_after_30_s(chains, code, status):
    assert server.health_report(chains, 30.0) == (code, {"status": status, "markets": chains})


@pytest.fixture
def port_server():
    chains = {"btc_usdt": {"owner": True, "role": "owner", "last_drain_age_s": 0.2, "error": None}}
    http = server.MetricsServer("127.0.0.1", 0, server.make_app(lambda: chains))
    yield f"127.0.0.1:{http.port}"
    http.close()


def test_the_port_serves_prometheus_text_on_metrics(port_server):
    status, content_type, body = _get(port_server, "/metrics")

    assert status == 200
    assert content_type.startswith("text/plain")
    assert "# TYPE spot_orders_total counter" in body


def test_the_port_serves_the_chains_as_json_on_health(port_server):
    status, content_type, body = _get(port_server, "/health")

    assert (status, content_type) == (200, "application/json")
    assert json.loads(body)["markets"]["btc_usdt"]["owner"] is True


@pytest.mark.parametrize("path", ["/", "/healthz", "/health/ready", "/metrics/x", "/favicon.ico"])
def test_every_other_path_is_a_json_404_so_a_probe_cannot_pass_by_mistake(port_server, path):
    status, content_type, body = _get(port_server, path)

    assert (status, content_type) == (404, "application/json")
    assert "serves /metrics and /health" in json.loads(body)["error"]


def test_only_get_is_allowed_on_the_two_paths(port_server):
    status, _, body = _get(port_server, "/health", method="POST")

    assert status == 405 and "GET" in json.loads(body)["error"]


def test_a_taken_port_moves_to_the_next_free_one_not_claimed_by_another_queue_and_says_so(caplog):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with caplog.at_level("INFO", logger="matching.worker.server"):
            http = server.serve("127.0.0.1", port, reserved={port + 1}, health=dict, queue="match_btc")
        try:
            assert http.port not in (port, port + 1)
            assert http.port > port
        finally:
            http.close()

    (line,) = [r.getMessage() for r in caplog.records]
    assert f"port 127.0.0.1:{port} is taken" in line and f"on port {http.port}" in line
