"""Process-wide switches admins steer from Telegram: the global pause of fan-out and execution."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from engine.store.audit import audit
from engine.store.db import Database, utcnow
from engine.store.events import ENGINE_PAUSED, ENGINE_RESUMED, EventRelay, emit
from engine.store.models import EngineState

PAUSE_KEY = "paused"


async def is_paused(session: AsyncSession) -> bool:
    row = await session.get(EngineState, PAUSE_KEY)
    return bool(row and row.value.get("paused"))


class EngineControl:
    def __init__(self, db: Database, relay: EventRelay | None = None) -> None:
        self._db = db
        self._relay = relay

    async def is_paused(self) -> bool:
        async with self._db.session() as session:
            return await is_paused(session)

    async def set_paused(self, paused: bool, actor: str) -> bool:
        """Pause or resume; returns False when it already was in that state (nothing changes)."""
        async with self._db.session() as session:
            row = await session.get(EngineState, PAUSE_KEY, with_for_update=True)
            if row is not None and bool(row.value.get("paused")) == paused:
                return False
            value = {"paused": paused, "by": actor, "at": utcnow().isoformat()}
            if row is None:
                session.add(EngineState(key=PAUSE_KEY, value=value))
            else:
                row.value = value
            audit(session, actor, "engine.pause" if paused else "engine.resume")
            emit(session, ENGINE_PAUSED if paused else ENGINE_RESUMED, by=actor)
        if self._relay is not None:
            self._relay.notify()
        return True
