"""The typed readers of ``settings.env``: a bad value stops start-up with a message naming it."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from settings.env import env_int_map, env_rate


def test_a_map_of_ports_is_read_from_comma_separated_pairs(monkeypatch):
    monkeypatch.setenv("SOME_PORTS", " match_btc=9201, match_sol = 9205 ,")

    assert env_int_map("SOME_PORTS", {}) == {"match_btc": 9201, "match_sol": 9205}


def test_an_unset_map_is_the_default(monkeypatch):
    monkeypatch.delenv("SOME_PORTS", raising=False)

    assert env_int_map("SOME_PORTS", {"match_btc": 9101}) == {"match_btc": 9101}


@pytest.mark.parametrize(("raw", "says"), [("match_btc:9101", "key=integer"), ("match_btc=x", "'match_btc'")])
def test_a_malformed_map_names_the_variable_and_the_problem(monkeypatch, raw, says):
    monkeypatch.setenv("SOME_PORTS", raw)

    with pytest.raises(ImproperlyConfigured, match="SOME_PORTS") as error:
        env_int_map("SOME_PORTS", {})
    assert says in str(error.value)


@pytest.mark.parametrize(("raw", "rate"), [("50/s", "50/s"), (" 30 / m ", "30/m"), ("1/h", "1/h"), ("007/d", "7/d")])
def test_a_rate_is_read_as_requests_per_unit(monkeypatch, raw, rate):
    monkeypatch.setenv("SOME_RATE", raw)

    assert env_rate("SOME_RATE", "1/s") == rate


def test_an_unset_rate_is_the_default(monkeypatch):
    monkeypatch.delenv("SOME_RATE", raising=False)

    assert env_rate("SOME_RATE", "20/s") == "20/s"


@pytest.mark.parametrize("raw", ["50", "50/sec", "0/s", "-1/s", "fifty/s", "\uff15\uff10/s", "50/x", "/s", ""])
def test_a_malformed_rate_stops_start_up_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv("SOME_RATE", raw)

    with pytest.raises(ImproperlyConfigured, match=r"SOME_RATE must be a number of requests .* like 50/s"):
        env_rate("SOME_RATE", "1/s")
