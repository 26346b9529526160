"""The trading loop: what keeps accounts safe while nobody watches.

One asyncio task in the bot's event loop of every instance. The leader (the leader lease) does the
work of the paper accounts and the store-wide chores (adopting orphaned approvals, planning
producer updates, the heartbeat); every instance, leader or not, does the work of the MT5 accounts
it owns (``engine.loop.cluster``: one terminal session per account across the instances), and
refreshes its leases every third of ``ACCOUNT_LEASE_SECONDS``. An account taken over from another
instance is reconciled on its first pass. A tick:
1. per account (concurrently, each bounded by a timeout, failures isolated): reconcile with
   the broker on reconcile ticks (the first tick after becoming leader, then every
   ``reconcile_every_ticks``), read equity, record it (an ``EquityPoint`` at most every
   ``equity_record_seconds`` per account, plus one on every drawdown-tier change) and let the
   drawdown guard act, then the owner's daily loss limit (``engine.risk.daily_loss``);
2. drive approved orders (``engine.execution.service.sweep``): approvals left without an order, orders a
   dead process left in flight, then ``ExecutionService.process_due`` in batches of
   ``ORDER_BATCH_SIZE`` — the safety net behind the immediate path;
3. every ``HEARTBEAT_SECONDS``, a heartbeat (``engine.loop.heartbeat``).

Which accounts a tick reads: on reconcile ticks every active account and any inactive one still
holding positions or live orders; otherwise the "hot" ones — with open positions, orders not yet
final, a drawdown tier other than ok, no reference equity yet, or a failing broker. An idle
account's equity cannot move except by deposits and manual trades, which the next reconcile tick
picks up.

An account whose broker fails is retried with exponential backoff (``backoff_initial_seconds``
doubling up to ``backoff_max_seconds``, ±20 % jitter); the first failure emits
``broker.disconnected`` once and the first success after it ``broker.reconnected``. The other
accounts go on as usual.

``stop(deadline)`` (SIGTERM/SIGINT, wired by the runtime): no new work; in-flight broker calls
get until the deadline (``ExecutionService.drain``); a final heartbeat; the event relay is
flushed; broker connections are closed; the lease is released.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from loguru import logger
from prometheus_client import CollectorRegistry
from sqlalchemy import exists, or_, select
from sqlalchemy.exc import SQLAlchemyError

from engine.brokers.ownership import AccountScope
from engine.brokers.registry import BrokerRegistry
from engine.execution.service import ExecutionService
from engine.execution.sweep import OrderSweep
from engine.loop.cluster import Cluster
from engine.loop.heartbeat import LoopCollector, LoopStats, beat
from engine.loop.leader import LeaderLease
from engine.loop.management import TradeManager
from engine.management.changes import ChangeService
from engine.observability.logs import redact
from engine.reconcile.service import Reconciler
from engine.risk.daily_loss import DailyLossWatch
from engine.risk.drawdown import DrawdownGuard
from engine.states import OrderStatus, PositionStatus
from engine.store.audit import audit
from engine.store.db import Database, utcnow
from engine.store.events import BROKER_DISCONNECTED, BROKER_RECONNECTED, EventRelay, emit
from engine.store.models import ExecutionAccount, Order, Position

if TYPE_CHECKING:
    from engine.settings import Settings

_LIVE_ORDERS = [
    s.value
    for s in (
        OrderStatus.PENDING,
        OrderStatus.SUBMITTING,
        OrderStatus.UNKNOWN,
        OrderStatus.RETRY_WAIT,
        OrderStatus.PLACED,
        OrderStatus.PARTIALLY_FILLED,
    )
]
_OPEN_POSITIONS = [PositionStatus.OPEN.value, PositionStatus.CLOSING.value]


@dataclass(frozen=True, slots=True)
class LoopConfig:
    tick_seconds: float = 1.0
    heartbeat_seconds: float = 10.0
    order_batch_size: int = 10
    max_batches_per_tick: int = 5
    reconcile_every_ticks: int = 30
    equity_record_seconds: float = 60.0
    account_timeout_seconds: float = 15.0
    account_concurrency: int = 16
    backoff_initial_seconds: float = 1.0
    backoff_max_seconds: float = 300.0
    standby_poll_seconds: float = 1.0  # a standby asks for the lease this often (failover time)
    lease_ttl_seconds: float = 30.0
    adopt_approvals_after_seconds: float = 2.0
    # Single-process store (SQLite): orders a previous process left SUBMITTING are looked up at the
    # broker once they are this old, instead of waiting for ExecutionConfig.stale_submitting_seconds.
    orphan_grace_seconds: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> LoopConfig:
        base = cls(
            heartbeat_seconds=float(settings.heartbeat_seconds), order_batch_size=settings.order_batch_size
        )
        return replace(base, **overrides)


@dataclass
class AccountHealth:
    failures: int = 0
    retry_at: float = 0.0  # monotonic
    down_since: datetime | None = None
    alerted: bool = False


class TradingLoop:
    def __init__(
        self,
        *,
        db: Database,
        brokers: BrokerRegistry,
        execution: ExecutionService,
        guard: DrawdownGuard,
        reconciler: Reconciler,
        relay: EventRelay,
        lease: LeaderLease,
        cluster: Cluster,
        config: LoopConfig | None = None,
        loop_id: str | None = None,
        changes: ChangeService | None = None,
        daily_loss: DailyLossWatch | None = None,
    ) -> None:
        self._db = db
        self._brokers = brokers
        self._execution = execution
        self.guard = guard
        self.reconciler = reconciler
        self._relay = relay
        self.lease = lease
        self.cluster = cluster
        self.changes = changes  # producer updates and subscriber controls, applied per position
        self.daily_loss = daily_loss  # subscribers' daily loss limits, read with each equity reading
        self.config = config or LoopConfig()
        self.loop_id = loop_id or uuid.uuid4().hex[:12]
        self.stats = LoopStats(instance=cluster.instance_id)
        self._fresh: set[int] = set()  # accounts newly taken over: reconciled on their next pass
        self._health: dict[int, AccountHealth] = {}
        self._last_point: dict[int, float] = {}
        self._ticks_as_leader = 0
        self._next_heartbeat = 0.0
        self._stopping = False
        self._stopped = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._collector: LoopCollector | None = None
        self.manager = TradeManager(db, relay)
        self.orders = OrderSweep(
            db,
            execution,
            batch_size=self.config.order_batch_size,
            max_batches=self.config.max_batches_per_tick,
            adopt_after_seconds=self.config.adopt_approvals_after_seconds,
            orphan_grace_seconds=self.config.orphan_grace_seconds,
        )

    # ------------------------------------------------------------------------------ lifecycle

    @property
    def is_leader(self) -> bool:
        return self.stats.leader

    def register_metrics(self, registry: CollectorRegistry) -> None:
        if self._collector is None:
            self._collector = LoopCollector(self.stats)
        registry.register(self._collector)

    def start(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"trading-loop:{self.loop_id}")
        return self._task

    async def run(self) -> None:
        next_poll = 0.0
        while not self._stopping:
            started = time.monotonic()
            if self.stats.leader or started >= next_poll:
                await self._hold_lease()
                if not self.stats.leader:
                    next_poll = started + self.config.standby_poll_seconds
            await self._refresh_cluster()
            scope = self.cluster.scope(leader=self.stats.leader)
            if not scope.empty:
                try:
                    await self.tick(scope)
                except Exception as exc:
                    self._error()
                    logger.opt(exception=exc).error("trading loop tick failed")
            if self._stopping:
                break
            if self.stats.leader and time.monotonic() >= self._next_heartbeat:
                await self._beat()
            await self._sleep(max(0.0, self.config.tick_seconds - (time.monotonic() - started)))

    async def _refresh_cluster(self) -> None:
        """Renew this instance's account leases and take or hand back its share (when due)."""
        if not self.cluster.due():
            return
        try:
            result = await self.cluster.refresh(leader=self.stats.leader, release=self._brokers.forget)
        except Exception as exc:
            self._error()
            logger.opt(exception=exc).warning("trading loop {}: account leases not renewed", self.loop_id)
            return
        self._fresh |= result.gained
        for account_id in result.lost | result.handed_back:
            self._fresh.discard(account_id)
            self._health.pop(account_id, None)
            self._last_point.pop(account_id, None)
            self.stats.equity.pop(account_id, None)
            self.stats.tiers.pop(account_id, None)
            self.stats.failing.discard(account_id)

    async def _hold_lease(self) -> bool:
        try:
            if self.stats.leader:
                if await self.lease.renew():
                    return True
                logger.error("trading loop {}: leadership lost; standing by", self.loop_id)
                self.stats.leader = False
                self.cluster.soon()
                return False
            if not await self.lease.acquire():
                return False
        except Exception as exc:
            logger.warning("trading loop {}: leader lease unavailable: {!r}", self.loop_id, exc)
            self.stats.leader = False
            return False
        logger.info("trading loop {} is the leader (instance {})", self.loop_id, self.cluster.instance_id)
        self.stats.leader = True
        self.cluster.soon()
        self._ticks_as_leader = 0  # first tick reconciles every account
        self._next_heartbeat = 0.0
        return True

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0 or self._stopping:
            return
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def _beat(self, *, final: bool = False) -> dict[str, Any] | None:
        try:
            payload = await beat(self._db, loop_id=self.loop_id, stats=self.stats, final=final)
        except Exception as exc:
            self._error()
            logger.opt(exception=exc).error("writing the heartbeat failed")
            return None
        self._next_heartbeat = time.monotonic() + self.config.heartbeat_seconds
        self._relay.notify()
        return payload

    async def heartbeat(self, *, final: bool = False) -> dict[str, Any] | None:
        return await self._beat(final=final)

    async def stop(self, deadline_seconds: float = 10.0) -> None:
        """Graceful shutdown within ``deadline_seconds`` (the runtime then exits with status 0)."""
        if self._stopped:
            return
        self._stopped = True
        end = time.monotonic() + deadline_seconds

        def left(minimum: float = 0.0) -> float:
            return max(minimum, end - time.monotonic())

        self._stopping = True
        self._wake.set()
        drain = asyncio.create_task(self._execution.drain(left()), name="execution-drain")
        if self._task is not None and not self._task.done():
            done, _ = await asyncio.wait({self._task}, timeout=left())
            if not done:
                logger.warning(
                    "trading loop {}: tick still running at the deadline; cancelling", self.loop_id
                )
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        await drain
        if self.changes is not None:  # no new change work; claims still in flight are resolved after restart
            await self.changes.drain(left())
        if self.stats.leader:
            await self._beat(final=True)
        try:
            # the relay finishes its batch in hand and delivers what it can in the time left; the
            # rest stays pending in the store and goes out after the next start
            left_over = await self._relay.stop(deadline_seconds=left())
            if left_over:
                logger.info("{} event(s) stay pending for the next start", left_over)
        except Exception as exc:
            logger.warning("flushing events at shutdown failed: {!r}", exc)
        try:
            await asyncio.wait_for(self._brokers.close(), left(1.0))
        except Exception as exc:
            logger.warning("closing broker connections at shutdown did not finish: {!r}", exc)
        try:
            await self.lease.release()
        except Exception as exc:
            logger.warning("releasing the leader lease failed: {!r}", exc)
        try:  # the accounts go to the other instances at their next refresh, not after the lease time
            await asyncio.wait_for(self.cluster.release_all(self._brokers.forget), left(1.0))
        except Exception as exc:
            logger.warning("handing the accounts back failed (their leases run out): {!r}", exc)
        self.stats.leader = False
        logger.info("trading loop {} stopped", self.loop_id)

    # ------------------------------------------------------------------------------ one tick

    async def tick(self, scope: AccountScope | None = None) -> None:
        """One tick over the accounts in ``scope`` (None: every account, as one process alone)."""
        started = time.monotonic()
        reconcile = self._ticks_as_leader % max(self.config.reconcile_every_ticks, 1) == 0
        fresh, self._fresh = self._fresh, set()
        accounts = await self._accounts(everyone=reconcile, scope=scope, fresh=fresh)
        gate = asyncio.Semaphore(self.config.account_concurrency)
        await asyncio.gather(*(self._account_pass(a, reconcile or a.id in fresh, gate) for a in accounts))
        if scope is not None and scope.paper and self.cluster.live and not self._stopping:
            await self.orders.adopt_abandoned(self.cluster.live)  # the leader: DB only, any account
        if not self._stopping:
            driven = await self.orders.sweep(lambda: self._stopping, scope)
            self.stats.orders_driven_total += driven
            self.stats.orders_driven_since_beat += driven
        if self.changes is not None and not self._stopping:
            grace = self.config.orphan_grace_seconds if self._db.dialect == "sqlite" else None
            await self.changes.process_due(
                self.config.order_batch_size * 10, orphan_grace_seconds=grace, scope=scope
            )
        self._ticks_as_leader += 1
        self.stats.ticks += 1
        self.stats.last_tick_ms = (time.monotonic() - started) * 1000

    async def _accounts(
        self, *, everyone: bool, scope: AccountScope | None = None, fresh: set[int] | None = None
    ) -> list[ExecutionAccount]:
        """Active accounts, and any account still holding positions or live orders (e.g. a paper
        account left behind when its owner linked MT5): its money is at risk all the same. Within
        ``scope``; ``fresh`` ones (just taken over) are read whatever their state."""
        busy = or_(
            exists().where(Position.account_id == ExecutionAccount.id, Position.status.in_(_OPEN_POSITIONS)),
            exists().where(Order.account_id == ExecutionAccount.id, Order.status.in_(_LIVE_ORDERS)),
        )
        active = ExecutionAccount.active.is_(True)
        if everyone:
            query = select(ExecutionAccount).where(or_(active, busy))
        else:
            failing = [i for i, h in self._health.items() if h.failures]
            query = select(ExecutionAccount).where(
                or_(
                    busy,
                    active & (ExecutionAccount.drawdown_state != "ok"),
                    active & ExecutionAccount.reference_equity.is_(None),
                    ExecutionAccount.id.in_(failing) if failing else ExecutionAccount.id.is_(None),
                    ExecutionAccount.id.in_(sorted(fresh)) if fresh else ExecutionAccount.id.is_(None),
                )
            )
        if scope is not None:
            query = query.where(scope.accounts())
        async with self._db.session() as session:
            rows = list((await session.scalars(query.order_by(ExecutionAccount.id))).all())
            session.expunge_all()
        return rows

    async def _account_pass(
        self, account: ExecutionAccount, reconcile: bool, gate: asyncio.Semaphore
    ) -> None:
        health = self._health.setdefault(account.id, AccountHealth())
        if health.failures and time.monotonic() < health.retry_at:
            return
        async with gate:
            if self._stopping:
                return
            try:
                await asyncio.wait_for(
                    self._account_work(account, reconcile or health.failures > 0),
                    self.config.account_timeout_seconds,
                )
            except Exception as exc:
                await self._account_failed(account, health, exc)
                return
        if health.failures:
            await self._account_recovered(account, health)

    async def _account_work(self, account: ExecutionAccount, reconcile: bool) -> None:
        broker = await self._brokers.get(account)
        # Targets, stops and hand-made changes first, so reconciliation finds them recorded.
        await self.manager.manage(account, broker)
        if reconcile:
            await self.reconciler.reconcile_account(account)
        snapshot = await broker.account()
        now = time.monotonic()
        record = now - self._last_point.get(account.id, float("-inf")) >= self.config.equity_record_seconds
        observation = await self.guard.observe(account.id, snapshot, record_point=record)
        if record:
            self._last_point[account.id] = now
        if self.daily_loss is not None:
            await self.daily_loss.observe(account.id, snapshot)
        self.stats.equity[account.id] = snapshot.equity
        self.stats.tiers[account.id] = observation.tier.value

    async def _account_failed(
        self, account: ExecutionAccount, health: AccountHealth, exc: BaseException
    ) -> None:
        self._error()
        health.failures += 1
        delay = min(
            self.config.backoff_max_seconds, self.config.backoff_initial_seconds * 2 ** (health.failures - 1)
        )
        health.retry_at = time.monotonic() + delay * random.uniform(0.8, 1.2)
        self.stats.failing.add(account.id)
        detail = redact(f"{type(exc).__name__}: {exc}")[:300]
        logger.warning(
            "account {}: loop pass failed ({} in a row, next try in {:.1f} s): {}",
            account.id,
            health.failures,
            delay,
            detail,
        )
        if health.alerted or isinstance(exc, SQLAlchemyError):
            return  # alert once; a store error is not the broker's
        health.alerted = True
        health.down_since = utcnow()
        try:
            async with self._db.session() as session:
                emit(
                    session,
                    BROKER_DISCONNECTED,
                    account_id=account.id,
                    owner_id=account.owner_id,
                    kind=account.kind,
                    detail=detail,
                    at=health.down_since.isoformat(),
                )
                audit(session, "trading-loop", "broker.disconnected", f"account:{account.id}", error=detail)
            self._relay.notify()
        except Exception as db_exc:
            health.alerted = False  # try to alert on the next failure
            logger.warning("account {}: could not record the broker alert: {!r}", account.id, db_exc)

    async def _account_recovered(self, account: ExecutionAccount, health: AccountHealth) -> None:
        self.stats.failing.discard(account.id)
        if health.alerted:
            down = (utcnow() - health.down_since).total_seconds() if health.down_since else 0.0
            async with self._db.session() as session:
                emit(
                    session,
                    BROKER_RECONNECTED,
                    account_id=account.id,
                    owner_id=account.owner_id,
                    kind=account.kind,
                    down_seconds=round(down, 1),
                    failures=health.failures,
                )
                audit(
                    session,
                    "trading-loop",
                    "broker.reconnected",
                    f"account:{account.id}",
                    failures=health.failures,
                )
            self._relay.notify()
            logger.info("account {}: broker back after {:.1f} s", account.id, down)
        self._health[account.id] = AccountHealth()

    def _error(self) -> None:
        self.stats.errors_total += 1
        self.stats.errors_since_beat += 1


def reconcile_hook(reconciler: Reconciler, db: Database) -> Callable[[int], Awaitable[None]]:
    """For the drawdown guard: bring an account's positions up to date before closing them all."""

    async def hook(account_id: int) -> None:
        async with db.session() as session:
            account = await session.get(ExecutionAccount, account_id)
            if account is None:
                return
            session.expunge(account)
        await reconciler.reconcile_account(account)

    return hook
