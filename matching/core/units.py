"""Conversion between decimal amounts at the edges and integer units inside the core.

The core counts prices in ticks and quantities in lots (exchange-core style): integer arithmetic is
exact and several times faster than ``Decimal`` in the hot loop. A notional (price x quantity) is then
in *tick-lots*: ``ticks * lots``, which is ``tick_size * lot_size`` of the quote asset.
"""

from __future__ import annotations

from decimal import Context, Decimal, DecimalException

from matching.core.errors import UnitError

# An explicit context, so conversions do not depend on the caller's (thread-local) one. The default
# 28 digits are too few: a quote budget of 1e8 in 1e-20 tick-lots (the replay's steps) is a 29-digit
# quotient, and DecimalField(30, 10) holds amounts up to 1e20, i.e. 1e30 steps of 1e-10. A quotient
# wider than 60 digits is no amount the exchange can store and is rejected as a UnitError.
_EXACT = Context(prec=60)


def to_units(value: Decimal, step: Decimal, *, what: str = "amount") -> int:
    """Return ``value / step`` as an int.

    Raises ``UnitError`` when ``value`` is not a whole multiple of ``step`` (e.g. a price off the tick
    grid) or is too large to count in steps. Cost: one exact Decimal division.
    """
    try:
        units, rest = _EXACT.divmod(value, step)
    except DecimalException as exc:
        raise UnitError(f"{what} {value} is not a valid amount") from exc
    if rest != 0:
        raise UnitError(f"{what} {value} is not a multiple of {step}")
    return int(units)


def floor_units(value: Decimal, step: Decimal, *, what: str = "amount") -> int:
    """Return the whole number of ``step`` in ``value``, rounded toward zero (a budget may be spent
    short of, never beyond, its value).

    Raises ``UnitError`` when ``value`` is too large to count in steps. Cost: one Decimal division.
    """
    try:
        return int(_EXACT.divide_int(value, step))
    except DecimalException as exc:
        raise UnitError(f"{what} {value} is not a valid amount") from exc


def from_units(units: int, step: Decimal) -> Decimal:
    """Return the decimal amount of ``units`` steps, exact at any size.

    Built from the integers rather than as ``units * step``, which a context rounds (to 28 digits by
    default: a 30-digit quantity would come back altered).
    """
    sign, digits, exponent = step.as_tuple()
    coefficient = int("".join(map(str, digits)))
    return Decimal(f"{-units * coefficient if sign else units * coefficient}E{exponent}")


def plain(value: Decimal) -> str:
    """Format without exponent and without trailing zeros: ``Decimal('1.500')`` -> ``'1.5'``.

    Exact at any size (``normalize()`` would round to the context's precision).
    """
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if text != "-0" else "0"


def units_text(units: int, places: int = 10) -> str:
    """``units`` of ``10**-places`` as ``plain`` writes the amount: ``units_text(15, 1)`` -> ``'1.5'``.

    Integer arithmetic only (about five times cheaper than building the ``Decimal``): the form the
    matcher's statements and the replay's events carry amounts in. Exact at any size.
    """
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**places)
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:0{places}d}".rstrip("0")
