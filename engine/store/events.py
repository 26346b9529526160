"""Domain events: written in the same transaction as the change, then relayed to subscribers.

``emit(session, type, **payload)`` adds a ``DomainEvent`` row; it becomes visible only if the
transaction commits, so an event is never announced for a change that was rolled back, and is
never lost for a change that was committed. ``EventRelay`` delivers committed events, in order,
to every subscriber (the Telegram notifier, the outbound dispatcher, ...) and marks them
processed. Subscribers must be idempotent by ``event_id``: after a crash an event may be handed
over again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loguru import logger
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from engine.store.db import Database, utcnow
from engine.store.models import DomainEvent

# Event types (the outbound ones match CONTRACTS section 2).
SIGNAL_ACCEPTED = "signal.accepted"
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


def emit(session: AsyncSession, type_: str, **payload: Any) -> DomainEvent:
    row = DomainEvent(type=type_, payload=payload)
    session.add(row)
    return row


class EventRelay:
    """Delivers committed domain events to subscribers, oldest first."""

    def __init__(self, db: Database, *, poll_seconds: float = 0.5, batch: int = 100) -> None:
        self._db = db
        self._subscribers: list[tuple[str, Subscriber]] = []
        self._wake = asyncio.Event()
        self._poll = poll_seconds
        self._batch = batch
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, name: str, handler: Subscriber) -> None:
        self._subscribers.append((name, handler))

    def notify(self) -> None:
        """Call after committing events to deliver them now rather than at the next poll."""
        self._wake.set()

    async def drain(self) -> int:
        """Deliver every pending event; returns how many were processed."""
        done = 0
        while True:
            async with self._db.session() as session:
                rows = (
                    await session.scalars(
                        select(DomainEvent)
                        .where(DomainEvent.processed_at.is_(None))
                        .order_by(DomainEvent.id)
                        .limit(self._batch)
                    )
                ).all()
            if not rows:
                return done
            delivered: list[int] = []
            failed: tuple[int, str] | None = None
            for row in rows:
                event = Event(row.id, row.event_id, row.type, dict(row.payload or {}), row.created_at)
                error = await self._deliver(event)
                if error is not None:
                    failed = (row.id, error)
                    break  # keep order: later events wait until this one goes through
                delivered.append(row.id)
            async with self._db.session() as session:
                if delivered:
                    await session.execute(
                        update(DomainEvent).where(DomainEvent.id.in_(delivered)).values(processed_at=utcnow())
                    )
                if failed is not None:
                    await session.execute(
                        update(DomainEvent)
                        .where(DomainEvent.id == failed[0])
                        .values(attempts=DomainEvent.attempts + 1, last_error=failed[1][:500])
                    )
            done += len(delivered)
            if failed is not None:
                return done

    async def _deliver(self, event: Event) -> str | None:
        for name, handler in self._subscribers:
            try:
                await handler(event)
            except Exception as exc:
                logger.opt(exception=exc).warning(
                    "event {} ({}) failed in {}", event.type, event.event_id, name
                )
                return f"{name}: {exc!r}"
        return None

    async def run(self) -> None:
        backoff = self._poll
        while not self._stopping:
            try:
                await self.drain()
                backoff = self._poll
            except Exception as exc:
                logger.opt(exception=exc).error("event relay failed; retrying")
                backoff = min(backoff * 2, 30.0)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            except TimeoutError:
                pass
            self._wake.clear()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="event-relay")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self.drain()
