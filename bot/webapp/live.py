"""Live updates for open Mini App pages: domain events -> which pages should refresh what.

``LiveHub.on_event`` is an event-relay subscriber (registered after the bot's fan-out and
notifier, so a ``signal.accepted`` is seen after the pending decisions exist). It never raises
(a failing subscriber would hold every later event back) and does nothing while no page is open.
Each event becomes a short hint, ``{"type": <event type>, "topics": [...]}``, queued for the pages
it concerns: its subscriber's (found from the event's ``user_id``, or from the owner of its
``account_id``), everyone's for a new or expired signal and the pause, the admins' for the engine's
own events. A page then fetches what changed through the same authorized API as ever, so a hint
carries no data anyone could read out of turn. A page that falls behind gets one ``all`` hint
instead of a backlog.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from sqlalchemy import select

from engine.store import events as ev
from engine.store.db import Database
from engine.store.models import ExecutionAccount

QUEUE_SIZE = 64
EVERYONE = "everyone"

SIGNALS, POSITIONS, HISTORY, STATS, STATUS, ADMIN, ALL = (
    "signals",
    "positions",
    "history",
    "stats",
    "status",
    "admin",
    "all",
)
TRADE = (POSITIONS, HISTORY, STATS)


@dataclass(eq=False)
class LiveClient:
    telegram_id: int
    user_id: int | None  # users.id, None for someone who has not started the bot
    is_admin: bool
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))

    def push(self, hint: dict[str, Any] | None) -> None:
        if hint is None:  # closing: make room for the end marker whatever is queued
            while self.queue.full():
                self.queue.get_nowait()
            self.queue.put_nowait(None)
            return
        if self.queue.full():  # fallen behind: one "refresh everything" replaces the backlog
            while not self.queue.empty():
                self.queue.get_nowait()
            hint = {"type": "resync", "topics": [ALL]}
        self.queue.put_nowait(hint)


@dataclass(frozen=True)
class Route:
    audience: str | int | None  # EVERYONE, a users.id, or None (nobody but the admins)
    topics: tuple[str, ...]
    admins: bool = False  # the admins' pages refresh their engine view too


class LiveHub:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._clients: set[LiveClient] = set()
        self._owners: dict[int, int | None] = {}  # account id -> owner users.id (never changes)
        self.closed = False

    @property
    def clients(self) -> int:
        return len(self._clients)

    def connect(self, telegram_id: int, user_id: int | None, is_admin: bool) -> LiveClient:
        client = LiveClient(telegram_id, user_id, is_admin)
        if self.closed:
            client.push(None)
        else:
            self._clients.add(client)
        return client

    def disconnect(self, client: LiveClient) -> None:
        self._clients.discard(client)

    def close(self) -> None:
        """End every stream (the server is stopping)."""
        self.closed = True
        for client in list(self._clients):
            client.push(None)
        self._clients.clear()

    async def on_event(self, event: ev.Event) -> None:
        if not self._clients:
            return
        try:
            route = await self._route(event)
            if route is not None:
                self.publish(event.type, route)
        except Exception as exc:  # a hint is never worth holding the relay back
            logger.opt(exception=exc).warning("mini app: no live hint for {} {}", event.type, event.event_id)

    def publish(self, event_type: str, route: Route) -> None:
        for client in list(self._clients):
            topics: tuple[str, ...] = ()
            if route.audience == EVERYONE or (
                route.audience is not None and route.audience == client.user_id
            ):
                topics = route.topics
            if route.admins and client.is_admin:
                topics = (*topics, ADMIN)
            if topics:
                client.push({"type": event_type, "topics": list(dict.fromkeys(topics))})

    async def _owner(self, account_id: Any) -> int | None:
        if not isinstance(account_id, int):
            return None
        if account_id not in self._owners:
            async with self._db.sessions() as session:
                owner = await session.scalar(
                    select(ExecutionAccount.owner_id).where(ExecutionAccount.id == account_id)
                )
            self._owners[account_id] = owner
        return self._owners[account_id]

    async def _route(self, event: ev.Event) -> Route | None:
        t, p = event.type, event.payload
        if t in (ev.SIGNAL_ACCEPTED, ev.SIGNAL_EXPIRED):
            return Route(EVERYONE, (SIGNALS,))
        if t == ev.SIGNAL_UPDATED:
            user = p.get("user_id")
            return Route(user if isinstance(user, int) else EVERYONE, (SIGNALS, *TRADE))
        if t == ev.DECISION_RECORDED:
            return Route(p.get("user_id"), (SIGNALS, POSITIONS), admins=True)
        if t in (ev.ENGINE_PAUSED, ev.ENGINE_RESUMED):
            return Route(EVERYONE, (STATUS, SIGNALS), admins=True)
        if t in (
            ev.ORDER_FILLED,
            ev.ORDER_PLACED,
            ev.ORDER_REJECTED,
            ev.ORDER_FAILED,
            ev.POSITION_OPENED,
            ev.POSITION_CLOSED,
            ev.POSITION_MODIFIED,
            ev.POSITION_PARTIALLY_CLOSED,
            ev.CHANGE_REFUSED,
            ev.DRAWDOWN_WARNING,
            ev.DRAWDOWN_TRIGGERED,
        ):
            return Route(await self._owner(p.get("account_id")), TRADE, admins=True)
        if t in (
            ev.HEARTBEAT,
            ev.BROKER_DISCONNECTED,
            ev.BROKER_RECONNECTED,
            ev.ENGINE_STARTED,
            ev.ENGINE_STOPPING,
        ):
            return Route(None, (), admins=True)
        return None


async def next_hint(client: LiveClient, seconds: float) -> dict[str, Any] | bool | None:
    """The client's next hint, None at the end, or False when ``seconds`` passed with none."""
    try:
        return await asyncio.wait_for(client.queue.get(), seconds)
    except TimeoutError:
        return False
