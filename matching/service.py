"""The matcher worker's side: which Celery queue serves a market, and this process's engines.

Markets route to ``match_<coin>`` by default (btc_usdt -> match_btc), or as ``MATCHING_QUEUES`` says,
so ``celery -A spot worker -Q match_btc -P solo`` serves the BTC markets.
"""

from __future__ import annotations

import logging
import time
import uuid

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection

from matching.engine import MarketSpec, MatchingEngine
from orders.models import Market
from spot.redis import redis_client

logger = logging.getLogger(__name__)

_engines: dict[str, MatchingEngine] = {}

CHAIN_KEY = "matcher:chain:{market}"
HEARTBEAT_KEY = "matcher:heartbeat:{market}"
HEARTBEAT_TTL_S = 5


def queue_for(market_code: str) -> str:
    """The Celery queue whose worker matches ``market_code``."""
    return settings.MATCHING_QUEUES.get(market_code) or f"match_{market_code.partition('_')[0]}"


def markets_for_queues(queues: set[str]) -> list[str]:
    """Codes of the enabled markets served by any of ``queues``."""
    return [m.code for m in Market.objects.filter(enabled=True).order_by("id") if queue_for(m.code) in queues]


def fee_account_id(market: Market) -> int:
    """The user collecting fees, with balance rows for the market's assets (created if missing)."""
    user, _ = get_user_model().objects.get_or_create(
        username=settings.FEE_ACCOUNT_USERNAME, defaults={"is_active": False}
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT IGNORE INTO balances (user_id, asset, total, held, updated_at) "
            "VALUES (%s, %s, 0, 0, NOW(6)), (%s, %s, 0, 0, NOW(6))",
            [user.pk, market.coin, user.pk, market.currency],
        )
    return int(user.pk)


def engine_for(market_code: str) -> MatchingEngine:
    """This process's engine for the market (built on first use; not started)."""
    engine = _engines.get(market_code)
    if engine is None:
        coin, _, currency = market_code.partition("_")
        market = Market.objects.get(coin=coin, currency=currency)
        engine = MatchingEngine(
            MarketSpec.from_market(market), redis_client=redis_client(), fee_account_id=fee_account_id(market)
        )
        _engines[market_code] = engine
    return engine


def engine_count() -> int:
    """How many markets this process matches."""
    return len(_engines)


def forget_engines() -> None:
    """Stop and drop this process's engines (worker shutdown, tests)."""
    for engine in _engines.values():
        try:
            engine.stop()
        except Exception:
            logger.exception("stopping matcher %s", engine.market)
    _engines.clear()


def new_chain(market_code: str) -> str:
    """Start a new drain chain for the market, superseding any other; returns its id."""
    chain = f"{int(time.time())}-{uuid.uuid4().hex[:8]}"
    redis_client().set(CHAIN_KEY.format(market=market_code), chain)
    return chain


def chain_is_current(market_code: str, chain: str) -> bool:
    current = redis_client().get(CHAIN_KEY.format(market=market_code))
    return current is not None and current.decode() == chain


def beat(market_code: str) -> None:
    redis_client().set(HEARTBEAT_KEY.format(market=market_code), "1", ex=HEARTBEAT_TTL_S)


def is_alive(market_code: str) -> bool:
    return bool(redis_client().exists(HEARTBEAT_KEY.format(market=market_code)))
