"""Conversions between decimal amounts at the edges and the core's integer ticks and lots."""

from __future__ import annotations

from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matching.core import InvalidOrder, UnitError, floor_units, from_units, plain, to_units, units_text

D = Decimal


@pytest.mark.parametrize(
    ("value", "step", "units"),
    [
        (D("101.25"), D("0.05"), 2025),
        (D("101.25"), D("0.01"), 10125),
        (D("0.5"), D("1E-10"), 5_000_000_000),
        (D("1E+2"), D("1"), 100),
        (D("0"), D("0.01"), 0),
        (D("1.000"), D("0.1"), 10),
    ],
)
def test_to_units_counts_whole_steps(value: Decimal, step: Decimal, units: int) -> None:
    assert to_units(value, step) == units


@pytest.mark.parametrize(
    ("value", "step"),
    [(D("101.26"), D("0.05")), (D("0.00000000001"), D("1E-10")), (D("1.5"), D("1"))],
)
def test_to_units_of_an_amount_off_the_grid_raises(value: Decimal, step: Decimal) -> None:
    with pytest.raises(UnitError, match="not a multiple"):
        to_units(value, step, what="price")


def test_a_unit_error_is_an_invalid_order() -> None:
    assert issubclass(UnitError, InvalidOrder)


@pytest.mark.parametrize("value", [D("1E+99"), D("-1E+99"), D("1E+999999")])
def test_to_units_of_an_amount_too_large_to_count_raises_a_unit_error(value: Decimal) -> None:
    with pytest.raises(UnitError, match="not a valid amount"):
        to_units(value, D("1E-10"))


def test_to_units_is_exact_for_the_largest_amount_the_schema_stores() -> None:
    # DecimalField(30, 10): 30 digits, beyond the default context's 28
    assert to_units(D("12345678901234567890.1234567891"), D("1E-10")) == 123456789012345678901234567891


def test_to_units_does_not_depend_on_the_callers_decimal_context() -> None:
    with localcontext() as context:
        context.prec = 5
        assert to_units(D("123456789.1"), D("0.1")) == 1234567891


@pytest.mark.parametrize(
    ("value", "step", "units"),
    [
        (D("3.99"), D("1"), 3),
        (D("350"), D("100"), 3),
        (D("0.00001"), D("1"), 0),
        (D("100000000"), D("1E-20"), 10**28),  # a 29-digit quotient: the default context fails on it
    ],
)
def test_floor_units_rounds_down_to_whole_steps(value: Decimal, step: Decimal, units: int) -> None:
    assert floor_units(value, step) == units


def test_floor_units_of_an_amount_too_large_to_count_raises_a_unit_error() -> None:
    with pytest.raises(UnitError, match="quote budget 1E\\+99 is not a valid amount"):
        floor_units(D("1E+99"), D("1E-20"), what="quote budget")


def test_from_units_gives_the_decimal_amount() -> None:
    assert from_units(2025, D("0.05")) == D("101.25")
    assert from_units(5_000_000_000, D("1E-10")) == D("0.5")
    assert from_units(-3, D("0.1")) == D("-0.3")
    assert from_units(0, D("1E-10")) == 0


def test_from_units_is_exact_beyond_the_default_precision() -> None:
    amount = from_units(123456789012345678901234567891, D("1E-10"))

    assert amount == D("12345678901234567890.1234567891")
    assert plain(amount) == "12345678901234567890.1234567891"


@given(units=st.integers(min_value=-(10**40), max_value=10**40), step=st.sampled_from([D("1E-10"), D("0.05"), D("25")]))
def test_from_units_and_to_units_round_trip(units: int, step: Decimal) -> None:
    assert to_units(from_units(units, step), step) == units


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (D("1.500"), "1.5"),
        (D("100"), "100"),
        (D("1E+2"), "100"),
        (D("100.00"), "100"),
        (D("0.0000000001"), "0.0000000001"),
        (D("1E-10"), "0.0000000001"),
        (D("0E-10"), "0"),
        (D("-0.0"), "0"),
        (D("-2.50"), "-2.5"),
        (D("12345678901234567890.1234567891"), "12345678901234567890.1234567891"),
    ],
)
def test_plain_writes_no_exponent_and_no_trailing_zeros(value: Decimal, text: str) -> None:
    assert plain(value) == text


@given(st.integers(min_value=-(10**31), max_value=10**31), st.integers(min_value=0, max_value=12))
def test_units_text_writes_integer_units_as_plain_writes_their_decimal(units: int, places: int) -> None:
    assert units_text(units, places) == plain(from_units(units, Decimal(f"1E-{places}")))


@pytest.mark.parametrize(
    ("units", "text"),
    [
        (0, "0"),
        (15, "0.0000000015"),
        (10**10, "1"),
        (-25 * 10**9, "-2.5"),
        (10**30 + 1, "100000000000000000000.0000000001"),
    ],
)
def test_units_text_has_no_exponent_and_no_trailing_zeros(units: int, text: str) -> None:
    assert units_text(units) == text
