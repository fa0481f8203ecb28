"""This process's engines, which Celery queue serves a market, and the drain chains' bookkeeping.

Markets route to ``match_<coin>`` by default (btc_usdt -> match_btc), or as ``MATCHING_QUEUES`` says,
so ``celery -A spot worker -Q match_btc -P solo`` serves the BTC markets.
"""

from __future__ import annotations

import logging
import time
import uuid

from django.conf import settings

from matching.worker.engine import MatchingEngine
from matching.worker.settlement import MarketSpec
from orders.balances import fee_account_id
from orders.models import Market
from orders.services import market_by_code
from spot import keys
from spot.redis import redis_client

logger = logging.getLogger(__name__)

_engines: dict[str, MatchingEngine] = {}


def queue_for(market_code: str) -> str:
    """The Celery queue whose worker matches ``market_code``."""
    return settings.MATCHING_QUEUES.get(market_code) or f"match_{market_code.partition('_')[0]}"


def markets_for_queues(queues: set[str]) -> list[str]:
    """Codes of the enabled markets served by any of ``queues``."""
    return [m.code for m in Market.objects.filter(enabled=True).order_by("id") if queue_for(m.code) in queues]


def engine_for(market_code: str) -> MatchingEngine:
    """This process's engine for the market (built on first use; not started)."""
    engine = _engines.get(market_code)
    if engine is None:
        market = market_by_code(market_code)
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
    redis_client().set(keys.chain(market_code), chain)
    return chain


def chain_is_current(market_code: str, chain: str) -> bool:
    current = redis_client().get(keys.chain(market_code))
    return current is not None and current.decode() == chain


def record_heartbeat(market_code: str) -> None:
    """The market's drain chain is alive; the watchdog starts a new one when this expires."""
    redis_client().set(keys.heartbeat(market_code), "1", ex=keys.HEARTBEAT_TTL_S)


def heartbeat_fresh(market_code: str) -> bool:
    return bool(redis_client().exists(keys.heartbeat(market_code)))
