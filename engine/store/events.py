"""Domain events: written in the same transaction as the change, then relayed to subscribers.

``emit(session, type, **payload)`` adds a ``DomainEvent`` row; it becomes visible only if the
transaction commits, so an event is never announced for a change that was rolled back, and is
never lost for a change that was committed. ``EventRelay`` delivers committed events, in order,
to every subscriber (the fan-out planner, the Telegram notifier, the outbound dispatcher, ...)
in batches and marks them processed. Subscribers must be idempotent by ``event_id``: after a crash an event may be handed
over again. With several instances on PostgreSQL, one relay at a time delivers (a session
advisory lock held for the drain), so the events keep their order and are not handed to the
subscribers of every instance at once; another instance's relay finds the lock taken and leaves
the events to it (the holder reads on until nothing is left).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loguru import logger
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from engine.store.db import Database, utcnow
from engine.store.models import DomainEvent

# pg_advisory_lock key of the relay: the first 8 bytes of sha256("tradebot:event-relay"), signed.
RELAY_LOCK = int.from_bytes(hashlib.sha256(b"tradebot:event-relay").digest()[:8], "big", signed=True)

# Event types (the outbound ones match docs/events.md).
SIGNAL_ACCEPTED = "signal.accepted"
SIGNAL_DISPATCHED = "signal.dispatched"  # fan-out planned: the bot renders and queues the messages
SIGNAL_EXPIRED = "signal.expired"
SIGNAL_UPDATED = "signal.updated"  # a producer's update (CONTRACTS 1a) or a subscriber's control
DECISION_RECORDED = "decision.recorded"
ORDER_FILLED = "order.filled"
ORDER_PLACED = "order.placed"
ORDER_REJECTED = "order.rejected"
ORDER_FAILED = "order.failed"
ORDER_EXPIRED = "order.expired"  # a resting order past its expiry, removed at the broker (the owner is told)
POSITION_OPENED = "position.opened"
POSITION_CLOSED = "position.closed"
POSITION_MODIFIED = "position.modified"
POSITION_PARTIALLY_CLOSED = "position.partially_closed"
CHANGE_REFUSED = "position.change_refused"  # an update refused for one position (the owner is told)
DRAWDOWN_WARNING = "drawdown.warning"
DRAWDOWN_TRIGGERED = "drawdown.triggered"
DAILY_LOSS_REACHED = (
    "risk.daily_loss_reached"  # a subscriber's daily loss limit paused them (the owner is told)
)
HEARTBEAT = "heartbeat"
BROKER_DISCONNECTED = "broker.disconnected"
BROKER_RECONNECTED = "broker.reconnected"
ENGINE_PAUSED = "engine.paused"
ENGINE_RESUMED = "engine.resumed"
ENGINE_STARTED = "engine.started"
ENGINE_STOPPING = "engine.stopping"

OUTBOUND_TYPES = frozenset(
    {
        SIGNAL_ACCEPTED,
        SIGNAL_UPDATED,
        ORDER_FILLED,
        ORDER_REJECTED,
        POSITION_MODIFIED,
        POSITION_PARTIALLY_CLOSED,
        POSITION_CLOSED,
        DRAWDOWN_TRIGGERED,
        HEARTBEAT,
    }
)


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    event_id: str
    type: str
    payload: dict[str, Any]
    created_at: datetime


Subscriber = Callable[[Event], Awaitable[None]]
BatchSubscriber = Callable[[Sequence[Event]], Awaitable[None]]


def emit(session: AsyncSession, type_: str, **payload: Any) -> DomainEvent:
    row = DomainEvent(type=type_, payload=payload)
    session.add(row)
    return row


class _Failed(Exception):
    """A per-event subscriber failed on ``events[index]`` (the ones before it went through)."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(repr(error))
        self.index = index
        self.error = error


def _per_event(handler: Subscriber) -> BatchSubscriber:
    async def deliver(events: Sequence[Event]) -> None:
        for index, event in enumerate(events):
            try:
                await handler(event)
            except Exception as exc:
                raise _Failed(index, exc) from exc

    return deliver


class EventRelay:
    """Delivers committed domain events to subscribers, oldest first, a batch at a time.

    A batch (up to ``batch`` events) goes to each subscriber in turn, then is marked processed in
    one UPDATE. Batch subscribers (``subscribe_batch``) get the whole list and do set-based work;
    plain subscribers get the events one by one. When a subscriber fails on an event, the events
    before it are marked, that event records the error, and it and the later ones wait for the
    next drain (order is kept). After a wake-up the relay lingers up to ``linger_seconds`` while
    fewer than a batch are waiting, so a steady stream is handled in batches, not one by one.
    """

    def __init__(
        self,
        db: Database,
        *,
        poll_seconds: float = 0.5,
        batch: int = 200,
        linger_seconds: float = 0.02,
    ) -> None:
        self._db = db
        self._subscribers: list[tuple[str, BatchSubscriber]] = []
        self._wake = asyncio.Event()
        self._full = asyncio.Event()  # a whole batch is waiting: stop lingering
        self._poll = poll_seconds
        self._batch = batch
        self._linger = linger_seconds
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._pending_hint = 0

    def subscribe(self, name: str, handler: Subscriber) -> None:
        self._subscribers.append((name, _per_event(handler)))

    def subscribe_batch(self, name: str, handler: BatchSubscriber) -> None:
        """``handler(events)`` gets each batch (in order); it must be idempotent by event id."""
        self._subscribers.append((name, handler))

    def notify(self) -> None:
        """Call after committing events to deliver them now rather than at the next poll."""
        self._pending_hint += 1
        self._wake.set()
        if self._pending_hint >= self._batch:
            self._full.set()

    async def drain(self, *, until: float | None = None) -> int:
        """Deliver pending events (including those the delivery itself emits); returns how many
        were processed (0 when another instance's relay is delivering them).

        With ``until`` (a ``loop.time()``), no new batch starts after that moment: what is left
        stays pending in the store for the next drain (or the next start).
        """
        if self._db.dialect != "postgresql":
            return await self._drain(until)
        async with self._db.engine.connect() as conn:
            taken = await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": RELAY_LOCK})
            await conn.commit()
            if not taken:
                return 0
            try:
                return await self._drain(until)
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": RELAY_LOCK})
                await conn.commit()

    async def _drain(self, until: float | None) -> int:
        done = 0
        loop = asyncio.get_running_loop()
        while until is None or loop.time() < until:
            count, more = await self._one_batch()
            done += count
            if not more:
                break
        return done

    async def _one_batch(self) -> tuple[int, bool]:
        """Deliver one batch; returns how many went through and whether to go on at once."""
        events = await self._fetch()
        if not events:
            return 0, False
        delivered, failed = await self._deliver(events)
        await self._settle(delivered, failed)
        return len(delivered), failed is None

    async def _fetch(self) -> list[Event]:
        async with self._db.sessions() as session:
            rows = (
                await session.execute(
                    select(
                        DomainEvent.id,
                        DomainEvent.event_id,
                        DomainEvent.type,
                        DomainEvent.payload,
                        DomainEvent.created_at,
                    )
                    .where(DomainEvent.processed_at.is_(None))
                    .order_by(DomainEvent.id)
                    .limit(self._batch)
                )
            ).all()
        return [Event(r[0], r[1], r[2], dict(r[3] or {}), r[4]) for r in rows]

    async def _deliver(self, events: list[Event]) -> tuple[list[int], tuple[int, str] | None]:
        """Hand ``events`` to every subscriber; returns the ids all took, and the first failure."""
        limit = len(events)
        failed: tuple[int, str] | None = None
        for name, handler in self._subscribers:
            if limit == 0:
                break
            part = events[:limit]
            try:
                await handler(part)
                continue
            except _Failed as exc:
                index, error = exc.index, exc.error
            except Exception as exc:
                index, error = await self._isolate(handler, part, exc)
            event = part[index]
            logger.opt(exception=error).warning(
                "event {} ({}) failed in {}", event.type, event.event_id, name
            )
            limit, failed = index, (event.seq, f"{name}: {error!r}")
        return [e.seq for e in events[:limit]], failed

    @staticmethod
    async def _isolate(
        handler: BatchSubscriber, events: list[Event], error: Exception
    ) -> tuple[int, Exception]:
        """A batch failed as a whole: hand the events over one at a time to find the failing one."""
        for index, event in enumerate(events):
            try:
                await handler([event])
            except Exception as exc:
                return index, exc
        return 0, error  # it went through one by one: count the batch's error on the first event

    async def _settle(self, delivered: list[int], failed: tuple[int, str] | None) -> None:
        statements: list[tuple[Any, dict[str, Any]]] = []
        if delivered:
            statements.append(
                (
                    update(DomainEvent).where(DomainEvent.id.in_(delivered)).values(processed_at=utcnow()),
                    {},
                )
            )
        if failed is not None:
            statements.append(
                (
                    update(DomainEvent)
                    .where(DomainEvent.id == failed[0])
                    .values(attempts=DomainEvent.attempts + 1, last_error=failed[1][:500]),
                    {},
                )
            )
        if statements:
            await self._db.writer.run(statements)

    async def run(self) -> None:
        backoff = self._poll
        while not self._stopping:
            try:
                self._pending_hint = 0
                more = True
                while more and not self._stopping:  # a stop takes effect between batches
                    _, more = await self._one_batch()
                backoff = self._poll
            except Exception as exc:
                logger.opt(exception=exc).error("event relay failed; retrying")
                backoff = min(backoff * 2, 30.0)
            if self._stopping:
                break
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            except TimeoutError:
                pass
            self._wake.clear()
            # Let a stream of events gather into a batch (not while stopping).
            if not self._stopping and self._pending_hint < self._batch:
                try:
                    await asyncio.wait_for(self._full.wait(), timeout=self._linger)
                except TimeoutError:
                    pass
            self._full.clear()

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self.run(), name="event-relay")

    async def stop(self, deadline_seconds: float | None = None) -> int:
        """Take no new batch; finish the one in hand; then deliver what is pending for up to
        ``deadline_seconds`` (all of it when None). Returns how many events are left pending."""
        self._stopping = True
        self._wake.set()
        self._full.set()
        if self._task is not None:
            await self._task
            self._task = None
        loop = asyncio.get_running_loop()
        until = None if deadline_seconds is None else loop.time() + deadline_seconds
        await self.drain(until=until)
        return await self.pending()

    async def pending(self) -> int:
        async with self._db.sessions() as session:
            return int(
                await session.scalar(
                    select(func.count(DomainEvent.id)).where(DomainEvent.processed_at.is_(None))
                )
                or 0
            )
