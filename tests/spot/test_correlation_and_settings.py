from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from spot.correlation import HEADER, PATTERN, new_correlation_id

ROOT = Path(__file__).resolve().parents[2]


def test_correlation_ids_have_the_fr_ob_002_shape():
    cid = new_correlation_id(datetime(2026, 1, 23, tzinfo=UTC))

    assert cid.startswith("20260123-")
    assert PATTERN.match(cid)
    assert len(cid) == len("20260123-a1b2c3d4e5f67890")


@pytest.mark.django_db
def test_a_request_gets_a_correlation_id_and_a_valid_incoming_one_is_kept(client):
    fresh = client.get("/api/v1/markets")
    kept = client.get("/api/v1/markets", headers={HEADER: "20260123-a1b2c3d4e5f67890"})
    replaced = client.get("/api/v1/markets", headers={HEADER: "not-an-id"})

    assert PATTERN.match(fresh[HEADER])
    assert kept[HEADER] == "20260123-a1b2c3d4e5f67890"
    assert replaced[HEADER] != "not-an-id" and PATTERN.match(replaced[HEADER])
