"""This process's engines, which Celery queue serves a market, the drain chains and the heartbeat.

Markets route to ``match_<coin>`` by default (btc_usdt -> match_btc), or as ``MATCHING_QUEUES`` says,
so ``celery -A spot worker -Q match_btc`` serves the BTC markets (``spot.worker`` makes it one process).

Chains are per process. Each matcher process consumes, besides its match queue, a private queue of its
own (``private_queue_name``); its drain chain of a market is a message that the process sends itself
on that queue again and again, with a chain id that only this process knows (``chain_start``). So a
second matcher of the same queue (a standby) never receives, and cannot steal, the owner's chain
messages, and a message restored after a crash cannot start a second chain: it goes back to the dead
process's private queue, and a stray one carries an id no living process runs. Each message also
carries its turn, the number of slices before it: a duplicate of a message (restored by the broker
while its process lives) comes with a turn that already ran and is dropped, so one chain stays one
message at a time. The shared match queue
only carries *kicks* (``drain(market)`` without a chain), from the watchdog and from operators: a
process whose own chain of the market stalled adopts a kick as its new chain.

Only the lease owner records the market's heartbeat: the unix time of its last drain (``keys.heartbeat``).
"""

from __future__ import annotations

import logging
import os
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


def queues_in_market_order() -> list[str]:
    """Every match queue some market (enabled or not) routes to, ordered by the first market's id: a
    queue keeps its rank as markets are added (``matching.worker.server`` derives ports from it)."""
    ordered: dict[str, None] = {}
    for market in Market.objects.order_by("id").only("coin", "currency"):
        ordered.setdefault(queue_for(market.code))
    return list(ordered)


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
    """Stop and drop this process's engines and chains (worker shutdown, tests)."""
    for engine in _engines.values():
        try:
            engine.stop()
        except Exception:
            logger.exception("stopping matcher %s", engine.market)
    _engines.clear()
    _chains.clear()


# -- this process's drain chains ---------------------------------------------------------------


class _Chain:
    """One market's drain chain in this process: its id, when a slice last ran, the role it found."""

    __slots__ = ("error", "id", "ran_at", "role", "turn")

    def __init__(self, chain_id: str) -> None:
        self.id = chain_id
        self.turn = 0  # the turn of the next slice to run; one message carries it
        self.ran_at = time.monotonic()
        self.role = ""  # "owner" | "standby" once a slice ran
        self.error = ""  # the last slice's exception, "" when it went through


_chains: dict[str, _Chain] = {}
_private_queue: str | None = None


def private_queue_prefix(match_queues: list[str]) -> str:
    """What the private queues of the matchers of ``match_queues`` start with: ``<queues>.chain``."""
    return f"{'+'.join(sorted(match_queues))}.chain"


def private_queue_name(match_queues: list[str], nodename: str, pid: int | None = None) -> str:
    """The queue only this process consumes: ``<match queues>.chain.<node name>.<pid>``."""
    return f"{private_queue_prefix(match_queues)}.{nodename}.{os.getpid() if pid is None else pid}"


def set_private_queue(name: str | None) -> None:
    global _private_queue
    _private_queue = name


def private_queue() -> str | None:
    """This process's private queue, None outside a matcher worker."""
    return _private_queue


def chain_start(market_code: str) -> str:
    """Start this process's drain chain of the market, superseding the one it ran before; returns its id."""
    chain_id = f"{int(time.time())}-{uuid.uuid4().hex[:8]}"
    _chains[market_code] = _Chain(chain_id)
    return chain_id


def chain_is_current(market_code: str, chain: str, turn: int | None = None) -> bool:
    """Whether ``chain`` is this process's chain of the market (a stray or older message is not) and,
    with ``turn``, whether that turn is the one to run next (a duplicate's turn already ran)."""
    current = _chains.get(market_code)
    return current is not None and current.id == chain and (turn is None or turn == current.turn)


def chain_idle_s(market_code: str) -> float | None:
    """Seconds since this process's chain of the market last ran a slice; None without a chain."""
    current = _chains.get(market_code)
    return None if current is None else time.monotonic() - current.ran_at


def chain_ran(market_code: str, *, role: str | None = None, error: BaseException | None = None) -> str:
    """A slice of the market's chain ran: as ``role`` when it got that far (the chain moves to its next
    turn), or failing with ``error`` (its retry runs the same turn again). Returns the role the chain
    had before (``""`` if none), so the caller can log a change once."""
    current = _chains.get(market_code)
    if current is None:
        return ""
    previous = current.role
    current.ran_at = time.monotonic()
    if role is not None:
        current.role = role
    if error is None:
        current.turn += 1
        current.error = ""
    else:
        current.error = f"{type(error).__name__}: {error}"
    return previous


def chain_turn(market_code: str) -> int:
    """The turn of the market's next slice in this process (0 without a chain)."""
    current = _chains.get(market_code)
    return 0 if current is None else current.turn


def chains_health() -> dict[str, dict[str, object]]:
    """Per market this process runs a chain for: ``owner``, ``role``, ``last_drain_age_s``, ``error``."""
    now = time.monotonic()
    report: dict[str, dict[str, object]] = {}
    for code, current in list(_chains.items()):
        engine = _engines.get(code)
        report[code] = {
            "owner": bool(engine is not None and engine.started and engine.lease.held),
            "role": current.role or "starting",
            "last_drain_age_s": round(now - current.ran_at, 3),
            "error": current.error or None,
        }
    return report


# -- the market's heartbeat (only the lease owner writes it) -------------------------------------


def record_heartbeat(market_code: str) -> None:
    """The owner drained the market now: the watchdog and readiness read the age of this."""
    redis_client().set(keys.heartbeat(market_code), f"{time.time():.6f}", ex=keys.HEARTBEAT_TTL_S)


def heartbeat_age(market_code: str) -> float | None:
    """Seconds since the market's owner last drained it; None when no owner drained it within
    ``keys.HEARTBEAT_TTL_S``."""
    raw = redis_client().get(keys.heartbeat(market_code))
    if raw is None:
        return None
    try:
        return max(0.0, time.time() - float(raw))
    except ValueError:
        return None  # written by an older version ("1"): as good as none
