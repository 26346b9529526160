"""Applying updates to positions and orders: each (update, position) exactly once.

The same discipline as ``engine.execution.service`` for orders:
1. the claim row (``PositionChange``) exists before anything is sent (``engine.management.plan``);
2. it is claimed by a conditional UPDATE (``pending -> claimed``) committed *before* the broker
   call, so two workers, two instances or a restarted process never both send it;
3. the broker's answer is recorded (``applied`` / ``refused`` with the broker's reason);
4. an answer that is lost (timeout, exception, crash) leaves the row ``claimed``/``unknown``, and it
   is resolved by looking at the terminal before anything is sent again: for a stop or target
   change the position's current levels (the change is absolute, so sending it again is safe once
   the levels differ), for a close the position's deals carrying the row's client id, for a
   cancel whether the order still rests there.
A refusal on one account is that row's outcome and never holds up the others: rows are applied
concurrently (``concurrency``), each with its own timeout.

Driven by the ``signal.updated`` domain event (planned, then applied in the background), and by
the trading loop (``process_due``): rows left pending after a restart, rows whose broker was
down (retried with backoff), and claims a dead process left in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from loguru import logger
from sqlalchemy import or_, select, update

from engine.brokers.base import Broker, SubmitResult, SubmitStatus
from engine.brokers.ownership import AccountScope
from engine.brokers.registry import BrokerRegistry
from engine.execution.sweep import PROCESS_STARTED_AT
from engine.management.apply import Outcome, Planned, outcome_of, plan_request, resolve_lost
from engine.management.plan import plan
from engine.states import CHANGE, ChangeStatus
from engine.store.db import Database, utcnow
from engine.store.events import SIGNAL_UPDATED, Event, EventRelay
from engine.store.models import ExecutionAccount, Order, Position, PositionChange, SignalUpdate


@dataclass(frozen=True)
class ChangeConfig:
    concurrency: int = 32
    call_timeout_seconds: float = 30.0
    max_attempts: int = 6  # broker unreachable before anything was sent: then refused
    retry_initial_seconds: float = 2.0
    retry_max_seconds: float = 120.0
    stale_claim_seconds: float = 60.0  # a claim this old with no worker on it: resolve at the terminal


@dataclass(frozen=True, slots=True)
class Loaded:
    change: PositionChange
    update: SignalUpdate
    account: ExecutionAccount
    position: Position | None
    order: Order | None


class ChangeService:
    def __init__(
        self,
        db: Database,
        brokers: BrokerRegistry,
        relay: EventRelay | None = None,
        config: ChangeConfig | None = None,
    ) -> None:
        self._db = db
        self._brokers = brokers
        self._relay = relay
        self.config = config or ChangeConfig()
        self._busy: set[int] = set()  # rows a worker of this process holds
        self._gate = asyncio.Semaphore(self.config.concurrency)
        self._inflight: set[asyncio.Task[Any]] = set()
        self._accepting = True
        # SQLite has one writer at a time: rows applied concurrently take turns for their write
        # transactions here, in order, instead of sleeping in SQLite's busy handler (which backs
        # off for up to 100 ms a try). Broker calls still overlap. PostgreSQL: no gate.
        self.write_gate: asyncio.Lock | None = asyncio.Lock() if db.dialect == "sqlite" else None

    # ------------------------------------------------------------------ entry points

    async def on_event(self, event: Event) -> None:
        """Relay subscriber: plan an update when it is announced, then apply it in the background."""
        if event.type != SIGNAL_UPDATED:
            return
        ids = await self.plan(str(event.payload["update_id"]))
        if ids and self._accepting:
            task = asyncio.create_task(self.apply_many(ids), name=f"update:{event.payload['update_id']}")
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def plan(self, update_id: str) -> list[int]:
        async with self._writing(), self._db.session() as session:
            return await plan(session, update_id)

    async def apply_update(self, update_id: str) -> None:
        """Plan (if not yet) and apply every row of one update now (tests, benchmarks)."""
        await self.apply_many(await self.plan(update_id))

    async def apply_many(self, ids: Iterable[int]) -> None:
        await asyncio.gather(*(self._guarded(i) for i in ids))

    async def drain(self, deadline_seconds: float) -> None:
        self._accepting = False
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=deadline_seconds)

    async def due(self, limit: int, scope: AccountScope | None = None) -> list[int]:
        now = utcnow()
        stale = now - timedelta(seconds=self.config.stale_claim_seconds)
        query = select(PositionChange.id).where(
            or_(
                (PositionChange.status == ChangeStatus.PENDING.value)
                & (PositionChange.next_attempt_at <= now),
                PositionChange.status == ChangeStatus.UNKNOWN.value,
                (PositionChange.status == ChangeStatus.CLAIMED.value) & (PositionChange.claimed_at < stale),
            )
        )
        if scope is not None:
            query = query.where(scope.account_ids(PositionChange.account_id))
        async with self._db.sessions() as session:
            ids = await session.scalars(query.order_by(PositionChange.id).limit(limit))
            return [i for i in ids.all() if i not in self._busy]

    async def process_due(
        self,
        limit: int = 100,
        *,
        orphan_grace_seconds: float | None = None,
        scope: AccountScope | None = None,
    ) -> int:
        """The trading loop's pass: unplanned updates, due rows, claims left by a dead process.

        ``orphan_grace_seconds`` (single-process store): claims made before this process started
        and at least that old are resolved at the terminal now, not after ``stale_claim_seconds``.
        ``scope`` (several instances): only rows of the accounts this instance works on.
        """
        if scope is None or scope.paper:  # the leader plans what the relay left unplanned
            async with self._db.sessions() as session:
                unplanned = (
                    await session.scalars(
                        select(SignalUpdate.id).where(SignalUpdate.status == "accepted").limit(limit)
                    )
                ).all()
            for update_id in unplanned:
                await self.plan(update_id)
        ids = await self.due(limit, scope)
        if orphan_grace_seconds is not None:
            ids += [i for i in await self._orphans(orphan_grace_seconds, limit) if i not in ids]
        await self.apply_many(ids)
        return len(ids)

    async def _orphans(self, grace_seconds: float, limit: int) -> list[int]:
        cutoff = min(PROCESS_STARTED_AT, utcnow() - timedelta(seconds=grace_seconds))
        async with self._db.sessions() as session:
            ids = await session.scalars(
                select(PositionChange.id)
                .where(
                    PositionChange.status == ChangeStatus.CLAIMED.value, PositionChange.claimed_at < cutoff
                )
                .limit(limit)
            )
            return [i for i in ids.all() if i not in self._busy]

    # ------------------------------------------------------------------ one row

    async def _guarded(self, change_id: int) -> None:
        if change_id in self._busy:
            return
        self._busy.add(change_id)
        try:
            async with self._gate:
                await self.apply(change_id)
        except Exception as exc:
            logger.opt(exception=exc).error("position change {}: failed", change_id)
        finally:
            self._busy.discard(change_id)

    async def apply(self, change_id: int) -> str:
        """Drive one row as far as it goes now; returns its status."""
        loaded = await self._load(change_id)
        status = ChangeStatus(loaded.change.status)
        if status in (ChangeStatus.CLAIMED, ChangeStatus.UNKNOWN):
            return await self._resolve(loaded)
        if status is not ChangeStatus.PENDING:
            return status.value
        if not await self._brokers.usable(loaded.account):
            return status.value  # another instance runs this account: its loop applies the row
        try:
            broker = await self._brokers.get(loaded.account)
            planned = await plan_request(
                broker, loaded.update, loaded.position, loaded.order, loaded.change.client_id
            )
        except Exception as exc:
            return await self._later(change_id, f"broker unavailable: {exc!r}")
        if isinstance(planned, Outcome):  # settled without a call (refused, nothing to do)
            return await self._settle(change_id, planned, from_status=ChangeStatus.PENDING)
        if not await self._claim(change_id, planned):
            return (await self._load(change_id)).change.status
        result = await self._call(broker, planned)
        if result.status is SubmitStatus.UNKNOWN:
            await self._mark_unknown(change_id, result.reason)
            return await self._resolve(await self._load(change_id))
        if result.status is SubmitStatus.RETRY:
            return await self._later(change_id, result.reason or "broker asked to retry", claimed=True)
        outcome = await outcome_of(broker, planned, result)
        return await self._settle(change_id, outcome, from_status=ChangeStatus.CLAIMED)

    async def _call(self, broker: Broker, planned: Planned) -> SubmitResult:
        try:
            return await asyncio.wait_for(planned.send(broker), self.config.call_timeout_seconds)
        except Exception as exc:
            return SubmitResult(SubmitStatus.UNKNOWN, reason=f"no reliable answer: {exc!r}")

    async def _resolve(self, loaded: Loaded) -> str:
        """The answer was lost: look at the terminal, then settle or make the row pending again."""
        change_id = loaded.change.id
        if not await self._brokers.usable(loaded.account):
            return loaded.change.status  # its owner looks at the terminal
        try:
            broker = await self._brokers.get(loaded.account)
            outcome = await resolve_lost(broker, loaded.update, loaded.change, loaded.position, loaded.order)
        except Exception as exc:
            logger.warning(
                "position change {}: lookup at the broker failed, still unknown: {!r}", change_id, exc
            )
            await self._mark_unknown(change_id, f"lookup failed: {exc!r}")
            return ChangeStatus.UNKNOWN.value
        current = ChangeStatus(loaded.change.status)
        if outcome is None:  # confirmed not done at the terminal: safe to send again
            async with self._writing(), self._db.session() as session:
                row = await session.get(PositionChange, change_id, with_for_update=True)
                assert row is not None
                if row.status in (ChangeStatus.CLAIMED.value, ChangeStatus.UNKNOWN.value):
                    CHANGE.move(row, ChangeStatus.PENDING)
                    row.next_attempt_at = utcnow()
            return await self.apply(change_id)
        return await self._settle(change_id, outcome, from_status=current)

    # ------------------------------------------------------------------ store

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[None]:
        if self.write_gate is None:
            yield
            return
        async with self.write_gate:
            yield

    async def _load(self, change_id: int) -> Loaded:
        async with self._db.sessions() as session:
            change = await session.get(PositionChange, change_id)
            assert change is not None, change_id
            upd = await session.get(SignalUpdate, change.update_id)
            account = await session.get(ExecutionAccount, change.account_id)
            position = await session.get(Position, change.position_id) if change.position_id else None
            order = await session.get(Order, change.order_id) if change.order_id else None
            assert upd is not None and account is not None
            session.expunge_all()
        return Loaded(change, upd, account, position, order)

    async def _claim(self, change_id: int, planned: Planned) -> bool:
        async with self._writing(), self._db.session() as session:
            claimed = await session.execute(
                update(PositionChange)
                .where(PositionChange.id == change_id, PositionChange.status == ChangeStatus.PENDING.value)
                .values(
                    status=ChangeStatus.CLAIMED.value,
                    claimed_at=utcnow(),
                    attempts=PositionChange.attempts + 1,
                    result={"request": planned.describe()},
                )
            )
            return bool(claimed.rowcount == 1)  # type: ignore[attr-defined]

    async def _mark_unknown(self, change_id: int, reason: str) -> None:
        async with self._writing(), self._db.session() as session:
            await session.execute(
                update(PositionChange)
                .where(PositionChange.id == change_id, PositionChange.status == ChangeStatus.CLAIMED.value)
                .values(status=ChangeStatus.UNKNOWN.value, reason=reason[:300])
            )

    async def _later(self, change_id: int, reason: str, *, claimed: bool = False) -> str:
        """Nothing was executed: try again after a backoff, or give up when the attempts are used."""
        async with self._writing(), self._db.session() as session:
            row = await session.get(PositionChange, change_id, with_for_update=True)
            assert row is not None
            if claimed and row.status == ChangeStatus.CLAIMED.value:
                CHANGE.move(row, ChangeStatus.PENDING)
            if row.status != ChangeStatus.PENDING.value:
                return row.status
            attempts = row.attempts + (0 if claimed else 1)
            row.attempts = attempts
            row.reason = reason[:300]
            if attempts >= self.config.max_attempts:
                outcome = Outcome(ChangeStatus.REFUSED, "broker_unavailable", f"gave up: {reason}")
                await outcome.record(session, row, self._relay)
                return row.status
            delay = min(
                self.config.retry_max_seconds, self.config.retry_initial_seconds * 2 ** max(attempts - 1, 0)
            )
            row.next_attempt_at = utcnow() + timedelta(seconds=delay)
            return row.status

    async def _settle(self, change_id: int, outcome: Outcome, *, from_status: ChangeStatus) -> str:
        async with self._writing(), self._db.session() as session:
            row = await session.get(PositionChange, change_id, with_for_update=True)
            assert row is not None
            if row.status != from_status.value:
                return row.status  # another worker settled it meanwhile
            await outcome.record(session, row, self._relay)
        if self._relay is not None:
            self._relay.notify()
        return outcome.status.value


def decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))
