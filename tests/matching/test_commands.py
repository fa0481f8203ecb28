"""``matching.commands``: the one codec between JSON lines and typed commands."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matching.commands import CancelCommand, Command, MalformedCommand, PlaceCommand, decode, encode, from_dict
from matching.core import OrderType, Side, TimeInForce

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
)
CANCELS = st.builds(CancelCommand, id=IDS, user=st.none() | st.integers(0, 2**63 - 1), market=TEXT, cid=TEXT)


@given(command=PLACES | CANCELS)
def test_decode_inverts_encode(command: Command) -> None:
    line = encode(command)

    assert "\n" not in line
    assert decode(line) == command
    assert decode(line.encode()) == command


def test_it_decodes_the_contracts_examples() -> None:
    assert decode(
        '{"op":"place","id":17,"user":3,"side":"buy","type":"limit","price":"101.25","quantity":"0.5","tif":"gtc"}'
    ) == PlaceCommand(17, 3, Side.BUY, OrderType.LIMIT, Decimal("0.5"), Decimal("101.25"), TimeInForce.GTC)
    assert decode('{"op":"place","id":18,"user":4,"side":"sell","type":"market","quantity":"0.2"}') == PlaceCommand(
        18, 4, Side.SELL, OrderType.MARKET, Decimal("0.2")
    )
    assert decode('{"op":"cancel","id":17}') == CancelCommand(17)


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
