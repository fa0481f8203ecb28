"""The matching engine of one market: stream batch -> heap book -> one DB transaction -> ack -> cache.

One engine per market per matcher process, and one matcher per market (``MarketLease``). The book is
rebuilt from the DB when the engine starts (open orders in ``seq`` order, then ``check_invariants()``);
pending stream entries are replayed, and entries at or below the checkpoint stored with the last
committed batch are acknowledged without being applied again.

Money inside the batch is integer: ticks and lots for the core, and "base units" of 1e-10 (the
schema's ``decimal_places``) for balances and fees, so every sum is exact and conserved.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

import redis
from django.conf import settings

from matching.commands import Command, MalformedCommand, PlaceCommand, decode
from matching.core import CancelResult, OrderBook, PlaceResult, Side, to_units
from matching.lease import MarketLease
from matching.matcher import MarketMatcher, Rejected
from matching.queue import GROUP, Entry, RedisStreamOrderQueue, entry_key
from matching.store import BatchWrite, Fenced, MatchStore
from orders.cache import MutableWriter
from spot import metrics
from spot.resilience import CircuitBreaker, CircuitOpen, is_transient

logger = logging.getLogger(__name__)

BASE = Decimal("1E-10")  # one base unit: the finest amount a DecimalField(30, 10) holds
BASE_PER_UNIT = 10**10
BOOK_PUBLISH_INTERVAL_S = 0.1  # top of book for intake's market-buy reference and the API
BOOK_DEPTH_LEVELS = 20
TRIM_EVERY_BATCHES = 100  # acknowledged entries are dropped from the stream this often


def base_str(units: int) -> str:
    """Base units (1e-10) as a plain decimal string; exact, no exponent."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), BASE_PER_UNIT)
    return f"{sign}{whole}.{frac:010d}"


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """What the engine needs of a market row, with its steps in base units."""

    id: int
    code: str
    coin: str
    currency: str
    tick_size: Decimal
    lot_size: Decimal
    maker_fee: tuple[int, int]  # rate as numerator, denominator
    taker_fee: tuple[int, int]
    lot_base: int  # one lot in base units
    notional_base: int  # one tick x one lot in base units

    @classmethod
    def from_market(cls, market: object) -> MarketSpec:
        tick, lot = market.tick_size, market.lot_size  # type: ignore[attr-defined]
        return cls(
            id=market.id,  # type: ignore[attr-defined]
            code=market.code,  # type: ignore[attr-defined]
            coin=market.coin,  # type: ignore[attr-defined]
            currency=market.currency,  # type: ignore[attr-defined]
            tick_size=tick,
            lot_size=lot,
            maker_fee=Decimal(market.maker_fee_rate).as_integer_ratio(),  # type: ignore[attr-defined]
            taker_fee=Decimal(market.taker_fee_rate).as_integer_ratio(),  # type: ignore[attr-defined]
            lot_base=to_units(lot, BASE, what="lot size"),
            # Market.clean() refuses a tick x lot finer than 1e-10: it could not settle exactly.
            notional_base=to_units(tick * lot, BASE, what="tick size x lot size"),
        )


class NotOwner(Exception):
    """Another matcher holds this market's lease; this one does not match."""


class _Batch:
    """Accumulates one batch's effects: order rows by id, trades, balance deltas in base units."""

    __slots__ = ("balances", "orders", "trades")

    def __init__(self) -> None:
        self.orders: dict[int, list[object]] = {}
        self.trades: list[list[object]] = []
        self.balances: dict[tuple[int, str], list[int]] = {}

    def move(self, user: int, asset: str, total: int, held: int) -> None:
        delta = self.balances.get((user, asset))
        if delta is None:
            self.balances[(user, asset)] = [total, held]
        else:
            delta[0] += total
            delta[1] += held


@dataclass(frozen=True, slots=True)
class _Job:
    """A matched batch on its way to the DB: what to write, then what to acknowledge and publish."""

    write: BatchWrite
    entries: list[Entry]
    to_ack: list[str]
    retry: list[str]
    snapshot: str | None


class _WriteFailed(Exception):
    def __init__(self, job: _Job, cause: Exception) -> None:
        super().__init__(repr(cause))
        self.job = job
        self.cause = cause


class MatchingEngine:
    """Drains one market's stream into its in-memory book and the DB. Not thread-safe."""

    def __init__(
        self,
        spec: MarketSpec,
        *,
        redis_client: redis.Redis,
        store: MatchStore | None = None,
        fee_account_id: int,
        batch_size: int | None = None,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec
        self.market = spec.code
        self.redis = redis_client
        self.store = store or MatchStore()
        self.fee_account_id = fee_account_id
        self.batch_size = batch_size or settings.MATCHING_BATCH_SIZE
        self.breaker = breaker or CircuitBreaker.from_settings(f"db:{spec.code}", on_change=metrics.breaker_changed)
        self.clock = clock
        self.queue = RedisStreamOrderQueue(redis_client, spec.code, dead_letter_sink=self._store_dead_letter)
        self.lease = MarketLease(redis_client, spec.code, settings.MATCHING_LEASE_TTL_MS)
        self._cache = MutableWriter(redis_client)
        self.matcher: MarketMatcher | None = None  # None until started, and again when the book is stale
        self.epoch = 0
        self.checkpoint = (0, 0)
        self.last_seq = 0
        # Per resting order: [filled lots, quote in tick-lots, fee in base units]; the core keeps
        # prices and quantities, this keeps what the order row needs beyond them.
        self.ledger: dict[int, list[int]] = {}
        # One thread writes batches (and dead letters) while this one matches the next batch.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"writer-{spec.code}")
        self._inflight: Future[None] | None = None
        self._isolate = 0  # after a batch failed for a non-transient reason: this many batches of one
        self._statements_reported = 0
        self._book_published_at = 0.0
        self._reclaimed_at = time.monotonic()
        self.batches = 0

    # -- life cycle ----------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self.matcher is not None

    def start(self) -> None:
        """Take the lease, fence former owners, rebuild the book from the DB and check it.

        Raises ``NotOwner`` when another matcher holds the market.
        """
        self._drop_inflight()  # the store is the writer's while a batch is in flight
        if not self.lease.acquire():
            raise NotOwner(f"market {self.market} is matched by {self.lease.owner()}; this worker stands by")
        self.queue.ensure_group()
        self.epoch, last_entry, self.last_seq = self.store.claim_epoch(self.spec.id)
        self.checkpoint = entry_key(last_entry)
        started = time.perf_counter()
        self.matcher = self._rebuild()
        self.queue.nack(["*"])  # deliver again what a predecessor (or a failed batch) left pending
        rebuild_s = time.perf_counter() - started
        self.redis.hset(
            f"matcher:stats:{self.market}",
            mapping={
                "rebuild_seconds": f"{rebuild_s:.3f}",
                "resting": len(self.matcher.book),
                "started_at": f"{time.time():.6f}",
            },
        )
        logger.info(
            "matcher %s started: epoch %s, %s resting orders rebuilt in %.2f s, checkpoint %s",
            self.market,
            self.epoch,
            len(self.matcher.book),
            rebuild_s,
            last_entry,
        )

    def stop(self) -> None:
        self._drop_inflight()
        self.matcher = None
        self.ledger = {}
        self.lease.release()
        self.store.close()

    def _rebuild(self) -> MarketMatcher:
        spec = self.spec
        book = OrderBook()
        ledger: dict[int, list[int]] = {}
        restore = book.restore
        for order_id, user_id, side, price, quantity, filled, quote, fee, seq in self.store.open_orders(
            spec.coin, spec.currency, spec.tick_size, spec.lot_size
        ):
            restore(order_id, user_id, Side(side), price, quantity, filled, seq)
            ledger[order_id] = [filled, quote, fee]
        book.check_invariants()
        # Sequence numbers continue after the highest ever given, not only the highest resting.
        self.last_seq = max(self.last_seq, book.next_seq - 1)
        self.ledger = ledger
        return MarketMatcher(spec.tick_size, spec.lot_size, book)

    # -- draining ------------------------------------------------------------------------------

    def drain(self, *, max_seconds: float = 0.25, block_ms: int | None = None) -> int:
        """Process batches until the stream is empty or ``max_seconds`` passed; returns commands handled.

        With ``block_ms``, an empty stream is waited on that long first (one blocking read). Returns
        with nothing in flight. Raises ``NotOwner``, ``CircuitOpen`` or a transient DB/Redis error
        (the caller retries; the next call rebuilds the book from the DB).
        """
        if not self.started:
            self.breaker.call(self.start)  # start-up reads the DB too: its failures count (FR-RL-001)
        elif not self.lease.renew_if_due():
            self.stop()
            raise NotOwner(f"market {self.market}: lease lost")
        self._reclaim_if_due()
        deadline = time.monotonic() + max_seconds
        handled = 0
        while True:
            n = self.drain_batch(block_ms=block_ms if handled == 0 else None)
            handled += n
            if n == 0 or time.monotonic() >= deadline:
                self.flush()
                # FR-OB-001 queue depth: once a slice (a few times a second), not per batch.
                metrics.QUEUE_DEPTH.labels(self.market).set(self.queue.depth())
                return handled
            self.lease.renew_if_due()

    def _reclaim_if_due(self) -> None:
        """FR-DS-003: entries another consumer name left pending for ``MATCHING_RECLAIM_IDLE_MS`` are
        taken over (a restarted matcher reads its own pending entries back at once)."""
        idle_ms = settings.MATCHING_RECLAIM_IDLE_MS
        now = time.monotonic()
        if (now - self._reclaimed_at) * 1000 >= idle_ms:
            self._reclaimed_at = now
            if claimed := self.queue.reclaim_idle(idle_ms):
                logger.warning(
                    "matcher %s: reclaimed %s entries left pending by another consumer", self.market, claimed
                )

    def drain_batch(self, block_ms: int | None = None) -> int:
        """One batch: pop, match in memory, hand the write to the writer thread. Returns entries handled.

        The writer commits batch N (one transaction), then acknowledges it and writes the order cache,
        while this thread matches batch N + 1: the DB's work overlaps Python's. A failed write surfaces
        at the next hand-over (or ``flush``); the book then holds effects that were never written, so
        the engine discards it and rebuilds from the DB, and every unacknowledged entry is delivered
        again (the checkpoint skips those that did commit).
        """
        assert self.matcher is not None, "start() first"
        size = 1 if self._isolate else self.batch_size
        entries = self.queue.pop(size, block_ms)
        if not entries:
            if self.flush():  # a failed write was recovered: its entries are pending again
                return self.drain_batch()
            return 0
        if self._isolate:
            self._isolate -= 1
        batch = _Batch()
        write = BatchWrite()
        to_ack: list[str] = []
        retry: list[str] = []
        for entry in entries:
            key = entry_key(entry.id)
            try:
                if key <= self.checkpoint:
                    # Committed before a crash: acknowledge without applying. A malformed entry was
                    # never applied, so it goes on towards the dead letter queue instead.
                    self._decode(entry)
                    to_ack.append(entry.id)
                    continue
                self._apply(entry, batch)
            except MalformedCommand as exc:
                self._poison(entry, f"malformed command: {exc}", retry)
                continue
            except Exception as exc:  # noqa: BLE001 - any bug isolates its entry; _abandon logs it
                self._abandon(entries, entry, exc)
                return len(entries)
            to_ack.append(entry.id)
            self.checkpoint = key
            write.last_entry = entry.id
        write.last_seq = self.last_seq
        write.orders = [[oid, *row] for oid, row in batch.orders.items()]
        write.trades = batch.trades
        write.balances = [[u, a, base_str(t), base_str(h)] for (u, a), (t, h) in sorted(batch.balances.items())]
        snapshot = None
        now = time.monotonic()
        if now - self._book_published_at >= BOOK_PUBLISH_INTERVAL_S:
            snapshot = json.dumps(self.book_snapshot(BOOK_DEPTH_LEVELS))  # taken here: the book moves on
            self._book_published_at = now
        job = _Job(write, entries, to_ack, retry, snapshot)
        self.flush()
        self._inflight = self._writer.submit(self._settle, job)
        return len(entries)

    def flush(self) -> bool:
        """Wait for the batch being written. If its write failed, recover (see ``drain_batch``) and
        raise: the transient error itself, ``NotOwner`` when fenced; a bug isolates its batch instead,
        and then this returns True (its entries are pending again)."""
        inflight, self._inflight = self._inflight, None
        if inflight is None:
            return False
        try:
            inflight.result()
        except _WriteFailed as failure:
            self._recover(failure.job, failure.cause)
            return True
        return False

    def _settle(self, job: _Job) -> None:
        """Writer thread: commit the batch, then ack, cache, publish. The only user of ``self.store``
        while the engine runs (dead letters are written through here too)."""
        try:
            self._write(job.write)
            # A Redis failure here (after the commit) takes the same path: the book is rebuilt, the
            # unacknowledged entries are delivered again and acknowledged by the checkpoint.
            self._after_commit(job)
        except Exception as exc:
            raise _WriteFailed(job, exc) from exc

    def _recover(self, job: _Job, exc: Exception) -> None:
        self.matcher = None  # it may hold batches that were not written
        self.queue.nack(["*"])
        if isinstance(exc, Fenced):
            self.stop()
            raise NotOwner(f"market {self.market}: {exc}") from exc
        if is_transient(exc) or isinstance(exc, CircuitOpen):
            raise exc
        culprit = job.entries[0] if len(job.entries) == 1 else None
        self._abandon(job.entries, culprit, exc)

    def _abandon(self, entries: list[Entry], culprit: Entry | None, exc: Exception) -> None:
        """A bug, not a passing fault: nothing of the batch is written, the book is rebuilt from the DB
        and the batch delivered again, one entry at a time, so the entry at fault is isolated and, after
        ``MATCHING_MAX_DELIVERIES``, dead-lettered while the others flow."""
        logger.error("matcher %s: batch of %s failed: %r", self.market, len(entries), exc, exc_info=exc)
        metrics.ERRORS.labels(self.market, type(exc).__name__).inc()
        self.matcher = None
        self._drop_inflight()
        if culprit is not None and culprit.deliveries >= settings.MATCHING_MAX_DELIVERIES:
            self.queue.send_to_dlq(culprit.id, culprit.data, f"{type(exc).__name__}: {exc}")
        self.queue.nack(["*"])
        self._isolate = len(entries)
        self.start()

    def _drop_inflight(self) -> None:
        """Wait for the writer to be idle, ignoring what it raised (the book is rebuilt anyway)."""
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            try:
                inflight.result()
            except _WriteFailed as failure:
                logger.warning("matcher %s: discarded a failed write: %r", self.market, failure.cause)

    # -- applying one command ------------------------------------------------------------------

    def _decode(self, entry: Entry) -> Command:
        """The entry's command; raises ``MalformedCommand`` for garbage, another market's command or a
        place that does not say what it holds. Runs before the book is touched."""
        command = decode(entry.data)
        if command.market is not None and command.market != self.market:
            raise MalformedCommand(f"market {command.market!r} does not belong to stream {self.market!r}")
        if isinstance(command, PlaceCommand) and (command.held is None or command.held % BASE):
            raise MalformedCommand(f"order {command.id}: the entry does not say exactly what the order holds")
        return command

    def _apply(self, entry: Entry, batch: _Batch) -> None:
        command = self._decode(entry)
        matcher = self.matcher
        assert matcher is not None
        if isinstance(command, PlaceCommand):
            if command.id in matcher.book:
                logger.warning(
                    "matcher %s: order %s is already resting; duplicate entry ignored", self.market, command.id
                )
                return
            self.last_seq += 1
            outcome = matcher.place(command, self.last_seq)
            if isinstance(outcome, Rejected):
                self._rejected(command, outcome.reason, batch)
            else:
                self._placed(command, outcome, batch)
        else:
            outcome = matcher.cancel(command)
            if isinstance(outcome, CancelResult):
                self._canceled(outcome, batch)
            else:
                metrics.ORDERS.labels(self.market, "cancel_rejected").inc()

    def _placed(self, command: PlaceCommand, result: PlaceResult, batch: _Batch) -> None:
        spec = self.spec
        coin, currency, fees = spec.coin, spec.currency, self.fee_account_id
        lot_base, notional_base = spec.lot_base, spec.notional_base
        taker_fee_base = 0
        ledger = self.ledger
        taker_buys = command.side is Side.BUY
        # Fee rates by role: the buyer receives base, the seller quote; the taker pays the taker rate.
        (buy_num, buy_den), (sell_num, sell_den) = (
            (spec.taker_fee, spec.maker_fee) if taker_buys else (spec.maker_fee, spec.taker_fee)
        )
        for trade in result.trades:
            qty_base = trade.quantity * lot_base
            quote_base = trade.price * trade.quantity * notional_base
            buyer_fee = qty_base * buy_num // buy_den
            seller_fee = quote_base * sell_num // sell_den
            if taker_buys:
                buyer, seller, buy_id, sell_id = trade.taker_user, trade.maker_user, trade.taker_id, trade.maker_id
                taker_fee_base += buyer_fee
                maker_fee = seller_fee
            else:
                buyer, seller, buy_id, sell_id = trade.maker_user, trade.taker_user, trade.maker_id, trade.taker_id
                taker_fee_base += seller_fee
                maker_fee = buyer_fee
            # Fills consume held funds: the buyer's quote at the trade price, the seller's base.
            batch.move(buyer, coin, qty_base - buyer_fee, 0)
            batch.move(buyer, currency, -quote_base, -quote_base)
            batch.move(seller, coin, -qty_base, -qty_base)
            batch.move(seller, currency, quote_base - seller_fee, 0)
            batch.move(fees, coin, buyer_fee, 0)
            batch.move(fees, currency, seller_fee, 0)
            batch.trades.append(
                [
                    buy_id,
                    sell_id,
                    command.side.value,
                    str(trade.price * spec.tick_size),
                    str(trade.quantity * spec.lot_size),
                    base_str(buyer_fee),
                    base_str(seller_fee),
                ]
            )
            maker = ledger[trade.maker_id]
            maker[0] += trade.quantity
            maker[1] += trade.price * trade.quantity
            maker[2] += maker_fee
            if trade.maker_remaining:
                self._order_row(batch, trade.maker_id, "partially_filled", maker)
            else:
                self._order_row(batch, trade.maker_id, "executed", maker)
                del ledger[trade.maker_id]
        metrics.TRADES.labels(self.market).inc(len(result.trades))

        state = [result.filled, result.notional, taker_fee_base]
        status = result.status.value
        self._order_row(batch, command.id, status, state, seq=result.seq)
        # What the order held beyond what its fills consumed: a buy's price improvement, and all of the
        # unfilled remainder once the order is finished.
        held_base = to_units(command.held, BASE, what="held")  # type: ignore[arg-type]  # checked in _decode
        if result.remaining:
            ledger[command.id] = state
            if taker_buys:
                assert command.price is not None
                limit = to_units(command.price, spec.tick_size)
                release = (limit * result.filled - result.notional) * notional_base
            else:
                release = 0
        elif taker_buys:
            release = held_base - result.notional * notional_base
        else:
            release = held_base - result.filled * lot_base
        if release:
            batch.move(command.user, currency if taker_buys else coin, 0, -release)
        metrics.ORDERS.labels(self.market, status).inc()

    def _rejected(self, command: PlaceCommand, reason: str, batch: _Batch) -> None:
        logger.warning("matcher %s: order %s rejected: %s", self.market, command.id, reason)
        batch.orders[command.id] = ["rejected", "0", "0", None, "0", self.last_seq, reason[:200]]
        held_base = to_units(command.held, BASE, what="held")  # type: ignore[arg-type]  # checked in _decode
        asset = self.spec.currency if command.side is Side.BUY else self.spec.coin
        if held_base:
            batch.move(command.user, asset, 0, -held_base)
        metrics.ORDERS.labels(self.market, "rejected").inc()

    def _canceled(self, result: CancelResult, batch: _Batch) -> None:
        spec = self.spec
        state = self.ledger.pop(result.order_id)
        self._order_row(batch, result.order_id, "canceled", state)
        if result.side is Side.BUY:
            batch.move(result.user, spec.currency, 0, -result.price * result.canceled * spec.notional_base)
        else:
            batch.move(result.user, spec.coin, 0, -result.canceled * spec.lot_base)
        metrics.ORDERS.labels(self.market, "canceled").inc()

    def _order_row(self, batch: _Batch, order_id: int, status: str, state: list[int], seq: int | None = None) -> None:
        spec = self.spec
        filled, quote, fee = state
        executed = filled * spec.lot_size
        executed_quote = quote * spec.tick_size * spec.lot_size
        average = None
        if filled:
            average = str((executed_quote / executed).quantize(BASE, rounding=ROUND_HALF_EVEN))
        previous = batch.orders.get(order_id)
        if previous is not None and seq is None:
            seq = previous[5]  # type: ignore[assignment]
        batch.orders[order_id] = [status, str(executed), str(executed_quote), average, base_str(fee), seq, None]

    # -- poison and dead letters ---------------------------------------------------------------

    def _poison(self, entry: Entry, reason: str, retry: list[str]) -> None:
        metrics.ERRORS.labels(self.market, "poison").inc()
        if entry.deliveries >= settings.MATCHING_MAX_DELIVERIES:
            self.queue.send_to_dlq(entry.id, entry.data, reason)
        else:
            logger.warning(
                "matcher %s: entry %s delivery %s failed: %s", self.market, entry.id, entry.deliveries, reason
            )
            retry.append(entry.id)

    def _store_dead_letter(self, market: str, entry_id: str, data: bytes, reason: str) -> None:
        text = data.decode("utf-8", errors="replace")
        try:
            cid = str(json.loads(text).get("cid") or "")
        except (ValueError, AttributeError):
            cid = ""
        deliveries = settings.MATCHING_MAX_DELIVERIES

        def store() -> None:
            self.breaker.call(lambda: self.store.write_dead_letter(market, entry_id, text, reason, cid, deliveries))

        # On the writer thread, after the batch it may be writing: the store is single-threaded.
        self._writer.submit(store).result()
        metrics.DEAD_LETTERS.labels(market).inc()

    # -- writing -------------------------------------------------------------------------------

    def _write(self, write: BatchWrite) -> None:
        spec = self.spec
        self.breaker.call(
            lambda: self.store.write_batch(
                write, market_id=spec.id, epoch=self.epoch, coin=spec.coin, currency=spec.currency
            )
        )

    def _after_commit(self, job: _Job) -> None:
        """Ack, write the order cache through, publish the book and stats: one Redis round trip."""
        write, to_ack = job.write, job.to_ack
        now = self.clock()
        pipe = self.redis.pipeline(transaction=False)
        if to_ack:
            pipe.xack(self.queue.key, GROUP, *to_ack)
        self._cache.write(pipe, [(r[0], r[1], r[2], r[3], r[4] or "", r[5]) for r in write.orders], f"{now:.6f}")
        if job.snapshot is not None:
            pipe.set(f"book:{self.market}", job.snapshot)
        stats_key = f"matcher:stats:{self.market}"
        pipe.hset(stats_key, mapping={"statements": self.store.statements, "epoch": self.epoch})
        pipe.hincrby(stats_key, "commands", len(job.entries))
        pipe.hincrby(stats_key, "batches", 1)
        pipe.hincrby(stats_key, "trades", len(write.trades))
        if settings.MATCHING_RECORD_LATENCY and to_ack:
            # "<entered ms>:<latency ms>" per entry, for the loadtest's percentiles and plots.
            ms = int(now * 1000)
            entered = [entry_key(i)[0] for i in to_ack]
            pipe.rpush(f"matcher:latency:{self.market}", *(f"{t}:{ms - t}" for t in entered))
        if to_ack and self.batches % TRIM_EVERY_BATCHES == 0:
            self.queue.trim(to_ack[-1], pipe)
        pipe.execute()
        if job.retry:
            self.queue.nack(job.retry)
        self.batches += 1
        metrics.BATCH_SIZE.labels(self.market).observe(len(job.entries))
        metrics.DB_STATEMENTS.labels(self.market).inc(self.store.statements - self._statements_reported)
        self._statements_reported = self.store.statements
        latency = metrics.ORDER_LATENCY.labels(self.market)
        for entry_id in to_ack:
            latency.observe(max(0.0, now - entry_key(entry_id)[0] / 1000))

    # -- reads ---------------------------------------------------------------------------------

    def book_snapshot(self, levels: int | None = None) -> dict[str, object]:
        """Aggregated depth as decimal strings, best first (the replay's ``book`` event shape)."""
        assert self.matcher is not None
        spec = self.spec
        bids, asks = self.matcher.book.depth(levels)
        return {
            "market": self.market,
            "bids": [[str(p * spec.tick_size), str(q * spec.lot_size)] for p, q in bids],
            "asks": [[str(p * spec.tick_size), str(q * spec.lot_size)] for p, q in asks],
        }
