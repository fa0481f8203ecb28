"""The pieces of ``manage.py httpbench --open-loop``: percentiles, the join of answers to the matcher's
commit records (recorded by a real engine on real MariaDB and Redis), and the open-loop schedule of
``bench/http/openloop.js`` against a real HTTP server. Counts and values, never timings."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.httpbench import (
    LOAD_DIR,
    Answer,
    first_commits,
    join_latencies,
    open_loop_figures,
    read_answers,
    summary_ms,
)
from orders.services import order_place
from spot import keys
from tests.conftest import drain_all


def test_summary_is_the_nearest_rank_p50_p99_and_max_in_ms():
    values_us = [i * 1000 for i in range(1, 101)]  # 1..100 ms
    assert summary_ms(values_us) == {"p50": 50.0, "p99": 99.0, "max": 100.0}
    assert summary_ms([7000]) == {"p50": 7.0, "p99": 7.0, "max": 7.0}
    assert summary_ms([]) == {"p50": 0.0, "p99": 0.0, "max": 0.0}


def test_an_orders_first_commit_record_is_its_placement():
    records = [b"5:1000", b"6:1500", b"5:9000", "7:2000"]  # 5 filled later: its second record
    assert first_commits(records) == {5: 1000, 6: 1500, 7: 2000}


def test_the_join_counts_every_accepted_order_of_a_batch_from_its_requests_due_time():
    answers = [
        Answer(due_us=1_000, answered_us=4_000, status=201, order_ids=(1, 2)),
        Answer(due_us=2_000, answered_us=3_000, status=201, order_ids=(3,)),
        Answer(due_us=2_500, answered_us=9_000, status=429, order_ids=()),
        Answer(due_us=3_000, answered_us=0, status=0, order_ids=()),  # no answer
    ]
    commits = {1: 10_000, 2: 10_000}  # order 3 has no record yet

    http_us, e2e_us = join_latencies(answers, commits)
    figures = open_loop_figures(answers, commits, rate=4, duration=1, connections=1, batch=0)

    assert http_us == [3_000, 3_000, 1_000] and e2e_us == [9_000, 9_000]
    assert figures.accepted_orders == 3 and figures.joined == 2
    assert figures.status_counts == {"0": 1, "201": 2, "429": 1}


@pytest.mark.django_db(transaction=True)  # the engine writes through a connection of its own
def test_the_matcher_records_each_placed_orders_commit_after_the_batch(engine, traders, settings, redis_client):
    settings.MATCHING_RECORD_LATENCY = True
    before_us = int(time.time() * 1_000_000)
    placed = [
        order_place(
            user=traders[i],
            market="btc_usdt",
            side=side,
            order_type="limit",
            quantity=Decimal("1"),
            price=Decimal("100"),
        )
        for i, side in enumerate(["sell", "buy"])
    ]

    drain_all(engine)

    commits = first_commits(redis_client.lrange(keys.matcher_commits("btc_usdt"), 0, -1))
    assert set(commits) == {order.id for order in placed}
    assert all(us >= before_us for us in commits.values())


class _Orders(BaseHTTPRequestHandler):
    """Answers each POST 201 with an order id (the API's envelope); every third one 429."""

    count = 0
    lock = threading.Lock()
    paths: list[str] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        json.loads(body)
        with self.lock:
            type(self).count += 1
            number = type(self).count
            self.paths.append(self.path)
        status = 429 if number % 3 == 0 else 201
        payload = json.dumps({"success": status == 201, "data": {"id": number} if status == 201 else None}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")
def test_the_open_loop_sends_every_request_on_its_schedule_and_records_each_answer(tmp_path: Path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Orders)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = {
        "url": f"http://127.0.0.1:{server.server_address[1]}",
        "rate": 200,
        "duration": 0.5,
        "connections": 4,
        "keys": [{"key": "a" * 24, "secret": "s1"}, {"key": "b" * 24, "secret": "s2"}],
        "batch": 0,
        "seed": 1,
        "prefix": "t",
        "market": {
            "currency": "usdt",
            "coin": "btc",
            "tick": 0.01,
            "lot": 0.0001,
            "mid": 30000,
            "decimals": {"tick": 2, "lot": 4},
        },
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    try:
        subprocess.run(
            ["node", str(LOAD_DIR / "openloop.js"), str(tmp_path / "config.json"), str(tmp_path / "out.jsonl")],
            check=True,
            timeout=60,
        )
    finally:
        server.shutdown()
        server.server_close()

    answers = sorted(read_answers(tmp_path / "out.jsonl"), key=lambda a: a.due_us)
    assert len(answers) == 100 == _Orders.count
    # Due times are the schedule (one every 5,000 us), whatever the answers did.
    gaps = {b.due_us - a.due_us for a, b in itertools.pairwise(answers)}
    assert gaps <= {4_999, 5_000, 5_001}
    assert sum(a.status == 201 for a in answers) == 67 and sum(a.status == 429 for a in answers) == 33
    assert sorted(i for a in answers for i in a.order_ids) == [n for n in range(1, 101) if n % 3]
    assert all(a.answered_us >= a.due_us for a in answers)
    assert set(_Orders.paths) == {"/api/v1/orders"}
