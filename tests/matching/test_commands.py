"""``matching.commands``: the one codec between JSON lines and typed commands."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matching.commands import (
    CANCEL_FIELDS,
    PLACE_FIELDS,
    CancelCommand,
    Command,
    MalformedCommand,
    PlaceCommand,
    _checked_cancel,
    _checked_place,
    decode,
    encode,
    from_dict,
)
from matching.core import OrderType, Side, StopCondition, TimeInForce

AMOUNTS = st.decimals(min_value=Decimal("-1E+12"), max_value=Decimal("1E+12"), allow_nan=False, allow_infinity=False)
IDS = st.integers(min_value=1, max_value=2**63 - 1)
TEXT = st.none() | st.text(max_size=20)

PLACES = st.builds(
    PlaceCommand,
    id=IDS,
    user=st.integers(min_value=0, max_value=2**63 - 1),
    side=st.sampled_from(Side),
    type=st.sampled_from(OrderType),
    quantity=AMOUNTS,
    price=st.none() | AMOUNTS,
    tif=st.sampled_from(TimeInForce),
    quote_budget=st.none() | AMOUNTS,
    held=st.none() | AMOUNTS,
    market=TEXT,
    cid=TEXT,
    base_price=st.none() | AMOUNTS,
    stop_condition=st.none() | st.sampled_from(StopCondition),
)
CANCELS = st.builds(CancelCommand, id=IDS, user=st.none() | st.integers(0, 2**63 - 1), market=TEXT, cid=TEXT)


@given(command=PLACES | CANCELS)
def test_decode_inverts_encode(command: Command) -> None:
    line = encode(command)

    assert "\n" not in line
    assert decode(line) == command
    assert decode(line.encode()) == command


def test_it_decodes_the_documented_examples() -> None:
    assert decode(
        '{"op":"place","id":17,"user":3,"side":"buy","type":"limit","price":"101.25","quantity":"0.5","tif":"gtc"}'
    ) == PlaceCommand(17, 3, Side.BUY, OrderType.LIMIT, Decimal("0.5"), Decimal("101.25"), TimeInForce.GTC)
    assert decode('{"op":"place","id":18,"user":4,"side":"sell","type":"market","quantity":"0.2"}') == PlaceCommand(
        18, 4, Side.SELL, OrderType.MARKET, Decimal("0.2")
    )
    assert decode('{"op":"cancel","id":17}') == CancelCommand(17)
    assert decode(
        '{"op":"place","id":18,"user":3,"side":"sell","type":"stop_market","quantity":"0.5",'
        '"base_price":"99","stop_condition":"le"}'
    ) == PlaceCommand(
        18, 3, Side.SELL, OrderType.STOP_MARKET, Decimal("0.5"), base_price=Decimal(99), stop_condition=StopCondition.LE
    )


def test_a_stop_order_encodes_its_base_price_and_condition_last() -> None:
    command = PlaceCommand(
        5,
        2,
        Side.BUY,
        OrderType.STOP_LIMIT,
        Decimal(1),
        Decimal("101"),
        base_price=Decimal("100.5"),
        stop_condition=StopCondition.GE,
    )

    assert encode(command) == (
        '{"op":"place","id":5,"user":2,"side":"buy","type":"stop_limit","quantity":"1","tif":"gtc","price":"101",'
        '"base_price":"100.5","stop_condition":"ge"}'
    )
    assert decode(encode(command)) == command


def test_it_encodes_compactly_with_amounts_as_strings() -> None:
    command = PlaceCommand(5, 2, Side.SELL, OrderType.LIMIT, Decimal("1.50"), Decimal("99"), quote_budget=None)

    assert encode(command) == (
        '{"op":"place","id":5,"user":2,"side":"sell","type":"limit","quantity":"1.50","tif":"gtc","price":"99"}'
    )
    assert encode(CancelCommand(5, user=2, market="btc_usdt", cid="c-1")) == (
        '{"op":"cancel","id":5,"user":2,"market":"btc_usdt","cid":"c-1"}'
    )


def test_a_place_without_a_user_or_tif_takes_the_defaults() -> None:
    command = decode('{"op":"place","id":1,"side":"buy","type":"limit","price":"1","quantity":"1"}')

    assert isinstance(command, PlaceCommand)
    assert (command.user, command.tif) == (0, TimeInForce.GTC)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "JSON object"),
        ({"op": "modify", "id": 1}, '"op" must be'),
        ({"op": "cancel", "id": 0}, '"id" must be a positive integer'),
        ({"op": "cancel", "id": True}, '"id" must be a positive integer'),
        ({"op": "cancel", "id": 1, "price": "1"}, "unknown field(s): price"),
        ({"op": "place", "id": 1, "side": "buy", "type": "limit", "price": "1"}, '"quantity" is required'),
        ({"op": "place", "id": 1, "side": "buy", "type": "limit", "quantity": 1}, "decimal string"),
        ({"op": "place", "id": 1, "side": "buy", "type": "limit", "quantity": "-Infinity"}, "finite"),
        ({"op": "place", "id": 1, "side": "up", "type": "limit", "quantity": "1"}, '"side" must be one of buy | sell'),
        ({"op": "place", "id": 1, "side": "buy", "quantity": "1"}, '"type" must be one of limit | market'),
        (
            {"op": "place", "id": 1, "side": "buy", "type": "market", "quantity": "1", "market": 3},
            '"market" must be a string',
        ),
        (
            {"op": "place", "id": 1, "side": "buy", "type": "stop_market", "quantity": "1", "base_price": 100},
            '"base_price" must be a decimal string',
        ),
        (
            {"op": "place", "id": 1, "side": "buy", "type": "stop_market", "quantity": "1", "stop_condition": "gt"},
            '"stop_condition" must be one of ge | le',
        ),
        (
            {"op": "place", "id": 1, "side": "buy", "type": "stop_market", "quantity": "1", "stop_condition": None},
            '"stop_condition" must be one of ge | le',
        ),
        ({"op": "cancel", "id": 1, "base_price": "1"}, "unknown field(s): base_price"),
    ],
)
def test_a_malformed_command_names_its_problem(data: object, message: str) -> None:
    with pytest.raises(MalformedCommand) as raised:
        from_dict(data)

    assert message in str(raised.value)
    with pytest.raises(MalformedCommand):
        decode(json.dumps(data))


@pytest.mark.parametrize("text", ["", "{", "nope", b"\xff", '{"op":"cancel","id":1}{}'])
def test_text_that_is_not_one_json_value_is_malformed(text: str | bytes) -> None:
    with pytest.raises(MalformedCommand, match="not valid JSON"):
        decode(text)


# -- the fast path (orjson, one-pass checks) decides exactly as json and the field-by-field checks --


def outcome(call: Any, *args: object) -> tuple[str, object]:
    """What ``call(*args)`` gives: ("ok", the command) or ("malformed", the message)."""
    try:
        return ("ok", call(*args))
    except MalformedCommand as exc:
        return ("malformed", str(exc))


def reference(text: str | bytes) -> tuple[str, object]:
    """The decoder as it was before orjson: ``json`` reads, ``from_dict`` checks."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        return ("malformed", f"not valid JSON ({exc})")
    return outcome(from_dict, data)


CANCEL_1 = '{"op":"cancel","id":1'
PLACE_1 = '{"op":"place","id":1,"side":"buy","type":"limit","price":"1","quantity":"1"'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # literals json reads and orjson refuses: malformed either way, worded by json
        (CANCEL_1[:-1] + "NaN}", '"id" must be a positive integer, not nan'),
        (CANCEL_1[:-1] + "Infinity}", '"id" must be a positive integer, not inf'),
        (CANCEL_1[:-1] + "-Infinity}", '"id" must be a positive integer, not -inf'),
        (CANCEL_1[:-1] + "1e400}", '"id" must be a positive integer, not inf'),
        (PLACE_1 + ',"held":NaN}', '"held" must be a decimal string such as "1.25", not nan'),
        # numbers that are not integers, and booleans
        (CANCEL_1[:-1] + "1.0}", '"id" must be a positive integer, not 1.0'),
        (CANCEL_1[:-1] + "1E2}", '"id" must be a positive integer, not 100.0'),
        (CANCEL_1[:-1] + "true}", '"id" must be a positive integer, not True'),
        (PLACE_1 + ',"user":2.0}', '"user" must be an integer, not 2.0'),
        # an integer beyond 64 bits (orjson reads it as a float) is named exactly
        (PLACE_1 + ',"market":18446744073709551616}', '"market" must be a string, not 18446744073709551616'),
        (PLACE_1 + ',"cid":[99999999999999999999999]}', '"cid" must be a string, not [99999999999999999999999]'),
        (CANCEL_1 + ',"user":-9223372036854775809}', None),  # a valid (if odd) cancel: json's integer
        # JSON the standard library refuses too
        ('{"op":"cancel","id":01}', "not valid JSON (Expecting ',' delimiter: line 1 column 22 (char 21))"),
        ("\ufeff" + CANCEL_1 + "}", "not valid JSON (Unexpected UTF-8 BOM (decode using utf-8-sig): line 1 column 1"),
        ('{"op":"cancel","id":1,"cid":"\x00"}', "not valid JSON (Invalid control character at"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON (maximum recursion depth exceeded"),
    ],
)
def test_the_fast_path_reads_and_words_as_json_does(text: str, expected: str | None) -> None:
    forms: tuple[str | bytes, ...] = (text,) if text.startswith("\ufeff") else (text, text.encode())
    for form in forms:  # (bytes with a BOM are json's to read, as utf-8-sig: see the test below)
        got = outcome(decode, form)

        if expected is None:
            assert got[0] == "ok"
        else:
            assert got[0] == "malformed"
            assert str(got[1]).startswith(expected)
        if not text.startswith("[["):  # json overflows the stack there, which decode now turns into a message
            assert got == reference(form)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # orjson takes 64-bit integers exactly; beyond, json's exact integer is the one used
        (CANCEL_1[:-1] + "18446744073709551615}", CancelCommand(18446744073709551615)),
        (CANCEL_1[:-1] + "99999999999999999999999}", CancelCommand(99999999999999999999999)),
        # a duplicate key: the last one counts, as in json
        ('{"op":"cancel","id":1,"id":2}', CancelCommand(2)),
        # lone surrogates (json accepts them, orjson does not) are kept as json reads them
        (CANCEL_1 + ',"cid":"\\ud800"}', CancelCommand(1, cid="\ud800")),
        (CANCEL_1 + ',"cid":"\\udfff\\ud800"}', CancelCommand(1, cid="\udfff\ud800")),
        # non-ASCII, escaped or not
        (CANCEL_1 + ',"market":"\\u00e9t\u00e9"}', CancelCommand(1, market="\u00e9t\u00e9")),
        # null market and cid are absent ones
        (PLACE_1 + ',"market":null,"cid":null}', PlaceCommand(1, 0, Side.BUY, OrderType.LIMIT, Decimal(1), Decimal(1))),
        # amounts are read by Decimal, with its leniency
        (
            '{"op":"place","id":3,"side":"sell","type":"limit","price":" 1E+2 ","quantity":"1_000"}',
            PlaceCommand(3, 0, Side.SELL, OrderType.LIMIT, Decimal(1000), Decimal(100)),
        ),
    ],
)
def test_commands_the_fast_path_hands_over_decode_as_json_reads_them(text: str, expected: Command) -> None:
    for form in (text, text.encode()):
        assert decode(form) == expected
        assert reference(form) == ("ok", expected)


def test_bytes_decode_as_json_reads_bytes() -> None:
    # json decodes bytes itself: strict UTF-8, except that it lets encoded surrogates through and
    # takes a BOM as utf-8-sig (orjson refuses both; json has the last word)
    bad = b'{"op":"cancel","id":1,"cid":"\xff"}'
    surrogate = b'{"op":"cancel","id":1,"cid":"\xed\xa0\x80"}'
    bom = b'\xef\xbb\xbf{"op":"cancel","id":1}'

    assert str(outcome(decode, bad)[1]).startswith("not valid JSON ('utf-8' codec can't decode byte 0xff")
    assert decode(surrogate) == CancelCommand(1, cid="\ud800")
    assert decode(bom) == CancelCommand(1)
    for line in (bad, surrogate, bom):
        assert outcome(decode, line) == reference(line)


def test_a_fast_built_place_is_the_dataclass_itself() -> None:
    line = (
        '{"op":"place","id":7,"user":2,"side":"sell","type":"limit","price":"3","quantity":"1","tif":"ioc","cid":"c"}'
    )
    built = PlaceCommand(7, 2, Side.SELL, OrderType.LIMIT, Decimal(1), Decimal(3), TimeInForce.IOC, cid="c")

    decoded = decode(line)

    assert type(decoded) is PlaceCommand
    assert (decoded, hash(decoded), repr(decoded)) == (built, hash(built), repr(built))
    with pytest.raises(AttributeError):
        decoded.id = 8  # type: ignore[misc]


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=6)
    | st.sampled_from(
        "buy sell limit market stop_limit stop_market ge le gtc ioc fok place cancel 1 0.5 NaN -0".split()
    ),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=4,
)
GOOD_VALUES = {
    "id": st.integers(min_value=-2, max_value=2**64 + 2),
    "user": st.integers(min_value=-2, max_value=2**64 + 2),
    "side": st.sampled_from(["buy", "sell"]),
    "type": st.sampled_from(["limit", "market", "stop_limit", "stop_market"]),
    "tif": st.sampled_from(["gtc", "ioc", "fok"]),
    "price": st.sampled_from(["1", "0.01", "1E+2", "-3", "0"]),
    "quantity": st.sampled_from(["1", "0.0004", "2.50"]),
    "quote_budget": st.sampled_from(["100", "1e-3"]),
    "held": st.sampled_from(["5", "0"]),
    "market": st.sampled_from(["btc_usdt", "\u00e9"]),
    "cid": st.sampled_from(["c-1", ""]),
    "base_price": st.sampled_from(["99.5", "0", "-1"]),
    "stop_condition": st.sampled_from(["ge", "le"]),
}


@st.composite
def command_like(draw: st.DrawFn) -> dict[str, Any]:
    """A JSON object close to a command: each field absent, valid, or any JSON value."""
    op = draw(st.sampled_from(["place", "place", "cancel", "modify"]))
    data: dict[str, Any] = {"op": op}
    for name in sorted(PLACE_FIELDS | CANCEL_FIELDS | {"color"}):
        if name == "op":
            continue
        choice = draw(st.integers(min_value=0, max_value=5))
        if choice >= 2 and name in GOOD_VALUES:
            data[name] = draw(GOOD_VALUES[name])
        elif choice == 1:
            data[name] = draw(JSON_VALUES)
    return data


@settings(max_examples=500, deadline=None)
@given(data=command_like())
def test_decoding_any_object_gives_what_json_and_the_field_checks_give(data: dict[str, Any]) -> None:
    text = json.dumps(data)  # NaN and Infinity literals included: json writes them

    assert outcome(decode, text) == reference(text)
    assert outcome(decode, text.encode()) == reference(text.encode())
    if data["op"] == "place":
        assert outcome(from_dict, data) == outcome(_checked_place, data)
    elif data["op"] == "cancel":
        assert outcome(from_dict, data) == outcome(_checked_cancel, data)
