"""The global pause of fan-out and execution: one flag in ``engine_state``, read on every order.

``is_paused`` is the one predicate every part asks (the risk chain's first gate, fan-out,
approvals); ``write_pause`` flips it inside the caller's transaction (the command layer,
``engine.ops``, adds its audit line to the same transaction).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from engine.store.db import Database, utcnow
from engine.store.events import ENGINE_PAUSED, ENGINE_RESUMED, EventRelay, emit
from engine.store.models import EngineState

PAUSE_KEY = "paused"


async def is_paused(session: AsyncSession) -> bool:
    row = await session.get(EngineState, PAUSE_KEY)
    return bool(row and row.value.get("paused"))


async def write_pause(session: AsyncSession, paused: bool, actor: str) -> bool:
    """Pause or resume; False when it already was in that state (then nothing is written)."""
    row = await session.get(EngineState, PAUSE_KEY, with_for_update=True)
    if row is not None and bool(row.value.get("paused")) == paused:
        return False
    value = {"paused": paused, "by": actor, "at": utcnow().isoformat()}
    if row is None:
        session.add(EngineState(key=PAUSE_KEY, value=value))
    else:
        row.value = value
    emit(session, ENGINE_PAUSED if paused else ENGINE_RESUMED, by=actor)
    return True


class EngineControl:
    def __init__(self, db: Database, relay: EventRelay | None = None) -> None:
        self._db = db
        self._relay = relay

    async def is_paused(self) -> bool:
        async with self._db.session() as session:
            return await is_paused(session)

    async def set_paused(self, paused: bool, actor: str) -> bool:
        """Pause or resume (without an audit line: admins act through ``engine.ops``)."""
        async with self._db.session() as session:
            changed = await write_pause(session, paused, actor)
        if changed and self._relay is not None:
            self._relay.notify()
        return changed
