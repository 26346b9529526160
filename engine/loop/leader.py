"""Leader lease: exactly one instance runs the trading loop.

PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a dedicated connection
(its own engine, no pool) held for the loop's life. The lock lives exactly as long as that
connection: a crashed or partitioned leader loses it when PostgreSQL drops the connection, and
``renew`` (a round trip on the connection) tells the loop that it is no longer the leader.

SQLite (one machine): a lease row in ``engine_state`` (key ``leader``) holding the owner, its
host and pid and an expiry, claimed and renewed inside ``BEGIN IMMEDIATE`` so two processes
never both take it. A lease whose expiry has passed, or whose holder is a dead process on this
host (e.g. SIGKILLed), may be taken over at once.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import os
import socket
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from loguru import logger
from sqlalchemy import insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from engine.store.db import Database, utcnow
from engine.store.models import EngineState

LEASE_KEY = "leader"
LOOP_LOCK_NAME = "tradebot:trading-loop"


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` derived from a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class LeaderLease(abc.ABC):
    @abc.abstractmethod
    async def acquire(self) -> bool:
        """Try once to become the leader; True if this instance holds the lease now."""

    @abc.abstractmethod
    async def renew(self) -> bool:
        """Confirm (and extend) the lease; False means leadership is lost: stop leading."""

    @abc.abstractmethod
    async def release(self) -> None:
        """Give the lease up (idempotent)."""


class PostgresLease(LeaderLease):
    def __init__(self, url: str, *, name: str = LOOP_LOCK_NAME, timeout_seconds: float = 5.0) -> None:
        self._url = url
        self.key = advisory_key(name)
        self._timeout = timeout_seconds
        self._engine: AsyncEngine | None = None
        self._conn: AsyncConnection | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None

    async def backend_pid(self) -> int | None:
        if self._conn is None:
            return None
        return int((await self._conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())

    async def acquire(self) -> bool:
        if self._conn is not None:
            return await self.renew()
        engine = create_async_engine(self._url, poolclass=NullPool)
        try:
            conn = await asyncio.wait_for(engine.connect(), self._timeout)
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            got = await asyncio.wait_for(
                conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}), self._timeout
            )
            if got.scalar_one():
                self._engine, self._conn = engine, conn
                return True
            await conn.close()
        except Exception:
            await engine.dispose()
            raise
        await engine.dispose()
        return False

    async def renew(self) -> bool:
        if self._conn is None:
            return False
        try:
            await asyncio.wait_for(self._conn.execute(text("SELECT 1")), self._timeout)
            return True
        except Exception as exc:
            logger.error("leader lease connection lost: {!r}", exc)
            await self._drop()
            return False

    async def release(self) -> None:
        if self._conn is not None:
            try:
                await asyncio.wait_for(
                    self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key}),
                    self._timeout,
                )
            except Exception as exc:
                logger.warning(
                    "releasing the leader lock failed (closing its connection frees it): {!r}", exc
                )
        await self._drop()

    async def _drop(self) -> None:
        conn, engine = self._conn, self._engine
        self._conn = self._engine = None
        if conn is not None:
            try:
                await conn.close()
            except Exception as exc:
                logger.debug("closing the lease connection: {!r}", exc)
        if engine is not None:
            await engine.dispose()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        # A zombie (killed, not yet reaped) holds no lease.
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class SqliteLease(LeaderLease):
    def __init__(self, db: Database, *, ttl_seconds: float = 30.0, owner: str | None = None) -> None:
        self._db = db
        self._ttl = timedelta(seconds=ttl_seconds)
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.owner = owner or f"{self.host}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    def _free(self, value: dict[str, Any] | None, now: datetime) -> bool:
        if not value or not value.get("owner"):
            return True
        if value["owner"] == self.owner:
            return True
        expires = value.get("expires_at")
        if expires is None or datetime.fromisoformat(expires) <= now:
            return True
        pid = value.get("pid")
        return (
            value.get("host") == self.host and isinstance(pid, int) and pid != self.pid and not pid_alive(pid)
        )

    async def _claim(self) -> bool:
        async with self._db.engine.connect() as conn:
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                now = utcnow()
                current = (
                    await conn.execute(select(EngineState.value).where(EngineState.key == LEASE_KEY))
                ).first()
                value = current[0] if current is not None else None
                if not self._free(value, now):
                    await conn.rollback()
                    return False
                lease = {
                    "owner": self.owner,
                    "host": self.host,
                    "pid": self.pid,
                    "expires_at": (now + self._ttl).isoformat(),
                }
                if current is None:
                    await conn.execute(insert(EngineState).values(key=LEASE_KEY, value=lease, updated_at=now))
                else:
                    await conn.execute(
                        update(EngineState)
                        .where(EngineState.key == LEASE_KEY)
                        .values(value=lease, updated_at=now)
                    )
                await conn.commit()
            except BaseException:
                await conn.rollback()
                raise
        if value and value.get("owner") not in (None, self.owner):
            logger.warning("took over the leader lease from {}", value.get("owner"))
        return True

    async def acquire(self) -> bool:
        self._held = await self._claim()
        return self._held

    async def renew(self) -> bool:
        if not self._held:
            return False
        self._held = await self._claim()
        return self._held

    async def release(self) -> None:
        if not self._held:
            return
        self._held = False
        async with self._db.engine.connect() as conn:
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
            current = (
                await conn.execute(select(EngineState.value).where(EngineState.key == LEASE_KEY))
            ).first()
            if current is not None and (current[0] or {}).get("owner") == self.owner:
                await conn.execute(
                    update(EngineState)
                    .where(EngineState.key == LEASE_KEY)
                    .values(value={}, updated_at=utcnow())
                )
            await conn.commit()


def make_lease(db: Database, *, ttl_seconds: float = 30.0) -> LeaderLease:
    if db.dialect == "postgresql":
        return PostgresLease(db.url)
    return SqliteLease(db, ttl_seconds=ttl_seconds)
