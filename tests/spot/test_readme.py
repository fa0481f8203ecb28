"""The README stays true: its links resolve inside the repository, and its curl + openssl example
(signing with bash, sending with curl) works against gunicorn as the Procfile runs it."""

from __future__ import annotations

import json
import re
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from orders.apikeys import api_key_create
from orders.balances import balance_deposit
from orders.models import Order
from tests.factories import MarketFactory, UserFactory

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a page's headings: lowercase, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ +(.+?) *$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_every_link_of_the_readme_resolves_to_a_file_and_heading_of_the_repository():
    broken = []
    for target in LINK.findall(README.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # http(s): and mailto: are outside the repository
        path, _, anchor = target.partition("#")
        file = (ROOT / path) if path else README
        if not file.exists():
            broken.append(target)
        elif anchor and anchor not in _anchors(file.read_text()):
            broken.append(target)
    assert broken == []


def _example() -> tuple[str, list[str]]:
    """The README's signing example: the lines that define ``signed`` and the ``signed ...`` calls."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.DOTALL)
    (block,) = [b for b in blocks if "signed() {" in b]
    lines = block.splitlines()
    calls = [line for line in lines if line.startswith("signed ")]
    return "\n".join(line for line in lines if line not in calls), calls


def _public_example() -> str:
    (line,) = [line for line in README.read_text().splitlines() if line.startswith("curl ")]
    return line


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_readme_curl_and_openssl_example_places_lists_reads_and_cancels(web_server, redis_client):
    MarketFactory(coin="btc", currency="usdt")
    trader = UserFactory()
    balance_deposit(user=trader, asset="usdt", amount=Decimal("100000"))
    key, secret = api_key_create(user=trader, label="readme", scopes="read,trade")
    web = web_server(workers=1)
    prelude, calls = _example()
    base = f"http://127.0.0.1:{web.port}"
    prelude = re.sub(
        r"^API=\S+ KEY=\S+ SECRET=\S+$", f"API={base} KEY={key.key_id} SECRET={secret}", prelude, flags=re.MULTILINE
    )

    def run(*lines: str) -> list[dict]:
        script = "\n".join(["set -euo pipefail", prelude, *lines])
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]

    place, *others = calls
    assert place.startswith("signed POST /api/v1/orders ")
    (placed,) = run(place)
    assert placed["success"] is True and placed["message"] is None, placed
    order_id = placed["data"]["id"]
    listed, detail, canceled = run(*(line.replace("42", str(order_id)) for line in others))
    (again,) = run(place)

    assert [o["id"] for o in listed["data"]["data"]] == [order_id]
    assert detail["data"]["id"] == order_id and detail["data"]["client_order_id"] == "my-bot-1"
    assert canceled["success"] is True and canceled["data"] == {"id": order_id, "status": "cancel_requested"}
    assert again["data"]["id"] == order_id and "already exists" in again["message"]  # as the README says
    assert Order.objects.filter(user=trader).count() == 1
    public = subprocess.run(
        ["bash", "-c", _public_example().replace("http://127.0.0.1:8000", base)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    book = json.loads(public.stdout)
    assert book["success"] is True and {"buy", "sell", "updatedAt", "tickerSize"} <= set(book["data"])
