"""The pure matching core: standard library only, no Django, no I/O.

``from matching.core import OrderBook`` works anywhere; prices are integer ticks and quantities
integer lots inside (``matching.core.units`` converts at the edges).
"""

from matching.core.book import OrderBook
from matching.core.errors import DuplicateOrder, InvalidOrder, MatchingError, UnitError, UnknownOrder
from matching.core.model import (
    OPEN_STATUSES,
    RESTING_STATUSES,
    CancelResult,
    Order,
    OrderStatus,
    OrderType,
    PlaceResult,
    Side,
    StopCondition,
    StopOrder,
    TimeInForce,
    Trade,
)
from matching.core.units import floor_units, from_units, plain, to_units, units_text

__all__ = [
    "OPEN_STATUSES",
    "RESTING_STATUSES",
    "CancelResult",
    "DuplicateOrder",
    "InvalidOrder",
    "MatchingError",
    "Order",
    "OrderBook",
    "OrderStatus",
    "OrderType",
    "PlaceResult",
    "Side",
    "StopCondition",
    "StopOrder",
    "TimeInForce",
    "Trade",
    "UnitError",
    "UnknownOrder",
    "floor_units",
    "from_units",
    "plain",
    "to_units",
    "units_text",
]
