"""The replay CLI, run as users run it: ``python -m matching.replay`` in a subprocess, from the repo root.

The interface is described in ``docs/replay.md``.
"""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from matching.replay import run

REPO = Path(__file__).resolve().parents[2]

# The examples of docs/replay.md, verbatim.
PLACE_17 = '{"op":"place","id":17,"user":3,"side":"buy","type":"limit","price":"101.25","quantity":"0.5","tif":"gtc"}'
PLACE_18 = '{"op":"place","id":18,"user":4,"side":"sell","type":"market","quantity":"0.2"}'
CANCEL_17 = '{"op":"cancel","id":17}'


def replay(text: str | bytes) -> subprocess.CompletedProcess[bytes]:
    data = text.encode() if isinstance(text, str) else text
    return subprocess.run(
        [sys.executable, "-m", "matching.replay"], input=data, cwd=REPO, capture_output=True, timeout=60, check=False
    )


def events(text: str | bytes) -> list[dict[str, Any]]:
    """The events of a replay that must succeed."""
    done = replay(text)
    assert (done.returncode, done.stderr) == (0, b"")
    return [json.loads(line) for line in done.stdout.splitlines()]


def place(order_id: int, side: str, quantity: str, price: str | None = None, **extra: Any) -> str:
    command: dict[str, Any] = {"op": "place", "id": order_id, "user": 1, "side": side, "quantity": quantity}
    command["type"] = "limit" if price is not None else "market"
    if price is not None:
        command["price"] = price
    command.update(extra)
    return json.dumps(command)


def cancel(order_id: int) -> str:
    return json.dumps({"op": "cancel", "id": order_id})


def lines(*commands: str) -> str:
    return "".join(command + "\n" for command in commands)


# -- the documented examples -----------------------------------------------------------------------


def test_it_replays_the_documented_input_example() -> None:
    assert events(lines(PLACE_17, PLACE_18, CANCEL_17)) == [
        {"event": "order", "id": 17, "status": "pending", "executed_quantity": "0"},
        {"event": "trade", "taker": 18, "maker": 17, "price": "101.25", "quantity": "0.2"},
        {"event": "order", "id": 18, "status": "executed", "executed_quantity": "0.2"},
        {"event": "order", "id": 17, "status": "canceled", "executed_quantity": "0.2"},
        {"event": "book", "bids": [], "asks": []},
    ]


def test_it_writes_the_documented_output_example_byte_for_byte() -> None:
    done = replay(lines(PLACE_17, PLACE_18, '{"op":"cancel","id":99}'))

    assert done.returncode == 0
    assert done.stdout.decode().splitlines() == [
        '{"event":"order","id":17,"status":"pending","executed_quantity":"0"}',
        '{"event":"trade","taker":18,"maker":17,"price":"101.25","quantity":"0.2"}',
        '{"event":"order","id":18,"status":"executed","executed_quantity":"0.2"}',
        '{"event":"reject","id":99,"reason":"unknown order"}',
        '{"event":"book","bids":[["101.25","0.3"]],"asks":[]}',
    ]


def test_an_empty_input_gives_only_an_empty_book() -> None:
    assert events("") == [{"event": "book", "bids": [], "asks": []}]


# -- malformed lines -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b'{"op":"place","id":2,', id="not JSON"),
        pytest.param(b"[1, 2]", id="JSON array"),
        pytest.param(b'"place"', id="JSON string"),
        pytest.param(b'{"op":"modify","id":2}', id="unknown op"),
        pytest.param(b'{"id":2}', id="no op"),
        pytest.param(b'{"op":"place","id":2,"user":1,"side":"sell","type":"limit","price":"101.25"}', id="no quantity"),
        pytest.param(
            b'{"op":"place","id":2,"user":1,"side":"sell","type":"limit","price":101.25,"quantity":"1"}',
            id="price as a JSON number",
        ),
        pytest.param(
            b'{"op":"place","id":2,"user":1,"side":"sell","type":"limit","price":"1","quantity":"1","color":"red"}',
            id="unknown field",
        ),
        pytest.param(b'{"op":"place","id":0,"user":1,"side":"sell","type":"market","quantity":"1"}', id="id 0"),
        pytest.param(b'{"op":"place","id":-2,"user":1,"side":"sell","type":"market","quantity":"1"}', id="negative id"),
        pytest.param(b'{"op":"place","id":"2","user":1,"side":"sell","type":"market","quantity":"1"}', id="string id"),
        pytest.param(
            b'{"op":"place","id":true,"user":1,"side":"sell","type":"market","quantity":"1"}', id="boolean id"
        ),
        pytest.param(b'{"op":"cancel","id":2.0}', id="float id"),
        pytest.param(b'{"op":"cancel","id":NaN}', id="NaN literal id"),
        pytest.param(b'{"op":"cancel","id":Infinity}', id="Infinity literal id"),
        pytest.param(b'{"op":"place","id":2,"user":1,"side":"sell","type":"market","quantity":NaN}', id="NaN literal"),
        pytest.param(b'{"op":"cancel","id":1e400}', id="number too large for a float"),
        pytest.param(b"[" * 50_000 + b"]" * 50_000, id="nested too deep"),
        pytest.param(b'\xef\xbb\xbf{"op":"cancel","id":2}', id="byte order mark"),
        pytest.param(b'{"op":"place","id":2,"user":1,"side":"long","type":"market","quantity":"1"}', id="unknown side"),
        pytest.param(b'{"op":"place","id":2,"user":1,"side":"sell","type":"stop","quantity":"1"}', id="unknown type"),
        pytest.param(
            b'{"op":"place","id":2,"user":1,"side":"sell","type":"limit","price":"1","quantity":"1","tif":"day"}',
            id="unknown tif",
        ),
        pytest.param(
            b'{"op":"place","id":2,"user":1,"side":"sell","type":"market","quantity":"lots"}', id="not a number"
        ),
        pytest.param(b'{"op":"place","id":2,"user":1,"side":"sell","type":"market","quantity":"NaN"}', id="NaN"),
        pytest.param(
            b'{"op":"place","id":2,"user":1,"side":"sell","type":"market","quantity":"Infinity"}', id="infinity"
        ),
        pytest.param(
            b'{"op":"place","id":2,"user":"1","side":"sell","type":"market","quantity":"1"}', id="string user"
        ),
        pytest.param(b'{"op":"cancel","id":2,"side":"buy"}', id="unknown field on a cancel"),
        pytest.param(
            b'{"op":"place","id":2,"user":1,"side":"sell","type":"market","quantity":"1","cid":"\xff"}',
            id="not UTF-8",
        ),
        pytest.param(b'{"op":"cancel","id":2,"cid":"\xed\xa0\x80"}', id="an encoded surrogate is not UTF-8"),
    ],
)
def test_a_malformed_line_exits_2_naming_its_line(line: bytes) -> None:
    first = place(1, "buy", "1", "100").encode()

    done = replay(first + b"\n" + line + b"\n" + place(3, "sell", "1", "100").encode() + b"\n")

    assert done.returncode == 2
    stderr = done.stderr.decode()
    assert "line 2" in stderr
    assert "Traceback" not in stderr
    assert len(stderr.splitlines()) == 1
    # the lines before it are replayed, nothing after it, and no book: the replay stopped there
    assert [json.loads(event) for event in done.stdout.splitlines()] == [
        {"event": "order", "id": 1, "status": "pending", "executed_quantity": "0"}
    ]


def test_the_events_before_a_malformed_line_are_all_written_in_order() -> None:
    # more events than the replay collects before it writes them out
    text = lines(*(place(order_id, "buy", "1", "100") for order_id in range(1, 10_001)), "{oops")

    done = replay(text)

    assert done.returncode == 2
    assert done.stderr.decode().startswith("replay: line 10001:")
    assert done.stdout == b"".join(
        b'{"event":"order","id":%d,"status":"pending","executed_quantity":"0"}\n' % order_id
        for order_id in range(1, 10_001)
    )


def test_the_line_number_counts_blank_lines() -> None:
    done = replay(lines(place(1, "buy", "1", "100"), "", "   ", "{oops"))

    assert done.returncode == 2
    assert done.stderr.decode().startswith("replay: line 4:")


# -- lines that apply, or are rejected -------------------------------------------------------------


def test_blank_lines_are_skipped() -> None:
    text = "\n" + place(1, "sell", "1", "100") + "\n\n   \n\t\n" + place(2, "buy", "1", "100") + "\n\n"

    assert events(text) == [
        {"event": "order", "id": 1, "status": "pending", "executed_quantity": "0"},
        {"event": "trade", "taker": 2, "maker": 1, "price": "100", "quantity": "1"},
        {"event": "order", "id": 2, "status": "executed", "executed_quantity": "1"},
        {"event": "book", "bids": [], "asks": []},
    ]


def test_windows_line_endings_and_a_missing_final_newline_are_accepted() -> None:
    text = place(1, "sell", "1", "100") + "\r\n" + cancel(1)

    assert [event["event"] for event in events(text)] == ["order", "order", "book"]


def test_a_duplicate_place_id_is_rejected_whether_the_order_rests_or_not() -> None:
    result = events(
        lines(
            place(1, "sell", "1", "100"),
            place(1, "buy", "1", "100"),  # would trade with order 1
            place(2, "sell", "1", "100", tif="ioc"),  # canceled at once
            place(2, "sell", "1", "101"),
        )
    )

    assert result == [
        {"event": "order", "id": 1, "status": "pending", "executed_quantity": "0"},
        {"event": "reject", "id": 1, "reason": "duplicate order id"},
        {"event": "order", "id": 2, "status": "canceled", "executed_quantity": "0"},
        {"event": "reject", "id": 2, "reason": "duplicate order id"},
        {"event": "book", "bids": [], "asks": [["100", "1"]]},
    ]


def test_a_cancel_of_a_finished_order_is_rejected_as_unknown() -> None:
    result = events(
        lines(
            place(1, "sell", "1", "100"),
            place(2, "buy", "1", "100"),
            cancel(1),  # filled
            cancel(2),  # the taker, executed
            place(3, "sell", "1", "100"),
            cancel(3),
            cancel(3),  # canceled already
        )
    )

    assert [(event["event"], event.get("id"), event.get("reason")) for event in result[3:]] == [
        ("reject", 1, "unknown order"),
        ("reject", 2, "unknown order"),
        ("order", 3, None),
        ("order", 3, None),
        ("reject", 3, "unknown order"),
        ("book", None, None),
    ]


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(place(1, "buy", "1", "100.00000000001"), id="price with 11 decimals"),
        pytest.param(place(1, "buy", "0.00000000001", "100"), id="quantity with 11 decimals"),
        pytest.param(place(1, "buy", "0", "100"), id="zero quantity"),
        pytest.param(place(1, "buy", "-1", "100"), id="negative quantity"),
        pytest.param(place(1, "buy", "1", "0"), id="zero price"),
        pytest.param(place(1, "buy", "1", "-100"), id="negative price"),
        pytest.param(place(1, "sell", "1", "100", type="market"), id="market order with a price"),
        pytest.param(place(1, "buy", "1", type="limit"), id="limit order without a price"),
        pytest.param(place(1, "sell", "1", quote_budget="100"), id="quote budget on a sell"),
        pytest.param(place(1, "buy", "1", quote_budget="1E+99"), id="quote budget too large to count"),
        pytest.param(place(1, "buy", "1E+99", "100"), id="quantity too large to count"),
    ],
)
def test_invalid_values_are_rejected_and_the_replay_goes_on(command: str) -> None:
    result = events(lines(place(9, "sell", "5", "100"), command, place(2, "buy", "1", "100")))

    assert result[1]["event"] == "reject"
    assert result[1]["id"] == 1
    assert result[1]["reason"]
    assert result[2:] == [
        {"event": "trade", "taker": 2, "maker": 9, "price": "100", "quantity": "1"},
        {"event": "order", "id": 2, "status": "executed", "executed_quantity": "1"},
        {"event": "book", "bids": [], "asks": [["100", "4"]]},
    ]


def test_ten_decimals_are_accepted() -> None:
    result = events(lines(place(1, "sell", "0.0000000001", "99.9999999999")))

    assert result[-1] == {"event": "book", "bids": [], "asks": [["99.9999999999", "0.0000000001"]]}


def test_the_largest_amounts_the_schema_stores_come_back_exactly() -> None:
    # DecimalField(30, 10): 30 digits, beyond the default decimal context's 28
    big = "12345678901234567890.1234567891"

    result = events(lines(place(1, "sell", big, big), place(2, "buy", "1", big)))

    assert result[1] == {"event": "trade", "taker": 2, "maker": 1, "price": big, "quantity": "1"}
    assert result[-1] == {"event": "book", "bids": [], "asks": [[big, "12345678901234567889.1234567891"]]}


def test_a_large_quote_budget_caps_nothing_below_it() -> None:
    # 1e8 of the quote asset is 1e28 units of 1e-20, one digit more than the default decimal context
    result = events(lines(place(1, "sell", "2", "100"), place(2, "buy", "1", quote_budget="100000000")))

    assert result[1:3] == [
        {"event": "trade", "taker": 2, "maker": 1, "price": "100", "quantity": "1"},
        {"event": "order", "id": 2, "status": "executed", "executed_quantity": "1"},
    ]


def test_a_quote_budget_stops_a_market_buy() -> None:
    result = events(
        lines(place(1, "sell", "1", "100"), place(2, "sell", "5", "200"), place(3, "buy", "5", quote_budget="150"))
    )

    assert result[2:] == [
        {"event": "trade", "taker": 3, "maker": 1, "price": "100", "quantity": "1"},
        {"event": "trade", "taker": 3, "maker": 2, "price": "200", "quantity": "0.25"},
        {"event": "order", "id": 3, "status": "canceled", "executed_quantity": "1.25"},
        {"event": "book", "bids": [], "asks": [["200", "4.75"]]},
    ]


def test_a_fok_that_cannot_fill_is_canceled_with_nothing_executed() -> None:
    result = events(lines(place(1, "sell", "1", "100"), place(2, "buy", "2", "100", tif="fok")))

    assert result[1:] == [
        {"event": "order", "id": 2, "status": "canceled", "executed_quantity": "0"},
        {"event": "book", "bids": [], "asks": [["100", "1"]]},
    ]


def test_amounts_are_read_as_exact_decimals_and_written_plain() -> None:
    result = events(lines(place(1, "sell", "1.500", "1E+2"), place(2, "buy", "0.50", "100.00")))

    assert result[1] == {"event": "trade", "taker": 2, "maker": 1, "price": "100", "quantity": "0.5"}
    assert result[-1] == {"event": "book", "bids": [], "asks": [["100", "1"]]}


def test_integers_beyond_64_bits_are_kept_exactly() -> None:
    done = replay(lines('{"op":"cancel","id":99999999999999999999999}', '{"op":"cancel","id":18446744073709551616}'))

    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout.decode().splitlines()[:2] == [
        '{"event":"reject","id":99999999999999999999999,"reason":"unknown order"}',
        '{"event":"reject","id":18446744073709551616,"reason":"unknown order"}',
    ]


def test_a_malformed_line_is_worded_with_its_exact_values() -> None:
    done = replay(b'{"op":"cancel","id":2,"market":18446744073709551616}\n')

    assert done.returncode == 2
    assert done.stderr == b'replay: line 1: "market" must be a string, not 18446744073709551616\n'


def test_non_ascii_input_gives_ascii_events() -> None:
    # Non-ASCII can only come in through ignored fields and amounts; Decimal reads other scripts'
    # digits, and a reject's reason names the amount as Decimal writes it, in ASCII.
    arabic_eleven_places = "\u0660.\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0661"
    text = lines(
        place(1, "sell", "\u0661", "\u0661\u0660\u0660", cid="\u00e9t\u00e9", market="\u2028"),
        json.dumps(
            {"op": "place", "id": 2, "side": "buy", "type": "limit", "price": "100", "quantity": "1", "cid": "é"},
            ensure_ascii=False,
        ),
        place(3, "buy", arabic_eleven_places, "100", cid="\u00e9"),
        cancel(3),
    )

    done = replay(text)

    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout.decode("ascii").splitlines() == [
        '{"event":"order","id":1,"status":"pending","executed_quantity":"0"}',
        '{"event":"trade","taker":2,"maker":1,"price":"100","quantity":"1"}',
        '{"event":"order","id":2,"status":"executed","executed_quantity":"1"}',
        '{"event":"reject","id":3,"reason":"quantity 1E-11 is not a multiple of 1E-10"}',
        '{"event":"reject","id":3,"reason":"unknown order"}',
        '{"event":"book","bids":[],"asks":[]}',
    ]


def test_orders_of_the_same_user_trade_with_each_other() -> None:
    result = events(lines(place(1, "sell", "1", "100", user=5), place(2, "buy", "1", "100", user=5)))

    assert result[1] == {"event": "trade", "taker": 2, "maker": 1, "price": "100", "quantity": "1"}


# -- determinism -----------------------------------------------------------------------------------


def random_commands(seed: int, count: int) -> str:
    rng = random.Random(seed)
    commands = []
    for order_id in range(1, count + 1):
        if rng.random() < 0.2:
            commands.append(cancel(rng.randint(1, order_id)))
            continue
        side = rng.choice(["buy", "sell"])
        quantity = str(Decimal(rng.randint(1, 500)).scaleb(-2))
        if rng.random() < 0.1:
            commands.append(place(order_id, side, quantity))
        else:
            price = str(Decimal(rng.randint(9_900, 10_100)).scaleb(-2))
            commands.append(place(order_id, side, quantity, price, tif=rng.choice(["gtc", "gtc", "ioc", "fok"])))
    return lines(*commands)


def test_in_process_runs_take_text_or_bytes_and_write_what_the_cli_writes() -> None:
    text = random_commands(seed=5, count=3_000) + "{oops\n"
    cli = replay(text)

    for stdin in (io.StringIO(text), io.BytesIO(text.encode())):
        for stdout in (io.StringIO(), io.BytesIO()):
            stderr = io.StringIO()

            status = run(stdin, stdout, stderr)

            written = stdout.getvalue()
            assert (status, written if isinstance(written, bytes) else written.encode()) == (2, cli.stdout)
            assert stderr.getvalue().encode() == cli.stderr
            stdin.seek(0)


def test_the_same_input_gives_the_same_output() -> None:
    text = random_commands(seed=11, count=2_000)

    first, second = replay(text), replay(text)

    assert first.returncode == 0
    assert first.stdout == second.stdout
    assert first.stdout.count(b'"event":"trade"') > 100  # the stream does trade


# -- stop orders (issue 10) ------------------------------------------------------------------------


def documented_stop_examples() -> list[tuple[str, list[str]]]:
    """The (input, output) pairs of docs/replay.md's "Stop orders" section: its indented blocks, in
    turn commands then events."""
    text = (REPO / "docs" / "replay.md").read_text()
    section = text.split("\n## Stop orders\n", 1)[1].split("\n## ", 1)[0]
    blocks: list[list[str]] = []
    previous_indented = False
    for line in section.splitlines():
        indented = line.startswith("    ")
        if indented:
            if not previous_indented:
                blocks.append([])
            blocks[-1].append(line[4:])
        previous_indented = indented
    assert len(blocks) == 4, blocks
    return [(lines(*blocks[i]), blocks[i + 1]) for i in (0, 2)]


@pytest.mark.parametrize("example", [0, 1], ids=["wait, trigger, cancel, at once", "cascade"])
def test_it_gives_the_documented_stop_order_events_byte_for_byte(example: int) -> None:
    commands, expected = documented_stop_examples()[example]

    done = replay(commands)

    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout.decode().splitlines() == expected


def stop(order_id: int, side: str, quantity: str, base: str, condition: str, price: str | None = None) -> str:
    command: dict[str, Any] = {"op": "place", "id": order_id, "user": 2, "side": side, "quantity": quantity}
    command["type"] = "stop_limit" if price is not None else "stop_market"
    if price is not None:
        command["price"] = price
    command.update(base_price=base, stop_condition=condition)
    return json.dumps(command)


def test_stops_triggered_by_one_trade_enter_in_placement_order() -> None:
    got = events(
        lines(
            place(1, "sell", "5", "10"),
            stop(2, "buy", "1", "10", "ge", price="9"),
            stop(3, "sell", "1", "10.5", "le", price="12"),
            stop(4, "buy", "1", "9.5", "ge", price="9"),
            place(5, "buy", "1", "10"),
        )
    )

    # 2, 3 and 4 all trigger on the trade at 10 (ge 10, le 10.5, ge 9.5) and enter in placement order
    assert got[-8:] == [
        {"event": "order", "id": 5, "status": "executed", "executed_quantity": "1"},
        {"event": "trigger", "id": 2, "price": "10"},
        {"event": "order", "id": 2, "status": "pending", "executed_quantity": "0"},
        {"event": "trigger", "id": 3, "price": "10"},
        {"event": "order", "id": 3, "status": "pending", "executed_quantity": "0"},
        {"event": "trigger", "id": 4, "price": "10"},
        {"event": "order", "id": 4, "status": "pending", "executed_quantity": "0"},
        {"event": "book", "bids": [["9", "2"]], "asks": [["10", "4"], ["12", "1"]]},
    ]


def test_a_canceled_stop_never_triggers_and_a_second_cancel_is_unknown() -> None:
    got = events(
        lines(
            stop(1, "sell", "1", "10", "le"),
            cancel(1),
            cancel(1),
            place(2, "sell", "1", "10"),
            place(3, "buy", "1", "10"),
        )
    )

    assert got[:3] == [
        {"event": "order", "id": 1, "status": "stopping", "executed_quantity": "0"},
        {"event": "order", "id": 1, "status": "canceled", "executed_quantity": "0"},
        {"event": "reject", "id": 1, "reason": "unknown order"},
    ]
    assert not [e for e in got if e["event"] == "trigger"]


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (json.dumps({"op": "place", "id": 1, "side": "buy", "type": "stop_market", "quantity": "1",
                     "base_price": "1"}), "stop condition"),
        (place(1, "buy", "1", "9", base_price="10"), "stop orders only"),
        (place(1, "buy", "1", "9", stop_condition="le"), "stop orders only"),
        (stop(1, "buy", "1", "0", "ge"), "base price"),
        (stop(1, "buy", "1", "10.000000000001", "ge"), "base price"),
        (json.dumps({"op": "place", "id": 1, "side": "buy", "type": "stop_limit", "quantity": "1", "base_price": "1",
                     "stop_condition": "ge"}), "needs a price"),
    ],
    ids=["no condition", "limit with base price", "limit with condition", "zero base", "base off the grid",
         "stop limit without price"],
)  # fmt: skip
def test_a_stop_order_that_breaks_a_rule_is_rejected(command: str, reason: str) -> None:
    got = events(lines(command))

    assert got[0]["event"] == "reject" and reason in got[0]["reason"], got[0]


def test_a_cancel_of_a_waiting_stop_by_another_user_is_rejected_and_the_stop_still_triggers() -> None:
    got = events(
        lines(
            stop(1, "buy", "1", "10", "ge"),
            json.dumps({"op": "cancel", "id": 1, "user": 3}),
            place(2, "sell", "2", "10"),
            place(3, "buy", "1", "10"),
        )
    )

    assert got[1] == {"event": "reject", "id": 1, "reason": "unknown order"}
    assert got[-4:] == [
        {"event": "trigger", "id": 1, "price": "10"},
        {"event": "trade", "taker": 1, "maker": 2, "price": "10", "quantity": "1"},
        {"event": "order", "id": 1, "status": "executed", "executed_quantity": "1"},
        {"event": "book", "bids": [], "asks": []},
    ]
