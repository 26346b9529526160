"""Hot-path writes: a few Core statements in one transaction, as cheaply as each database allows.

On PostgreSQL this is the async engine (asyncpg is fast). On a SQLite file the async adapter
costs several thread hops per statement (about 0.4 ms of CPU for a two-row transaction), and
SQLite has one writer at a time anyway; so the writes go to one dedicated thread holding a
synchronous connection to the same file: one hop per transaction, writers queued in order
instead of spinning in SQLite's busy handler. Either way ``run`` returns only after the
transaction has committed (or raises, e.g. ``IntegrityError``, after it rolled back).

``call(fn)`` runs ``fn(connection)`` in one transaction the same way: set-based work written once
against a synchronous ``Connection`` runs on the writer thread on a SQLite file (so a large
fan-out never holds the event loop) and through ``AsyncConnection.run_sync`` elsewhere.

There is one writer per ``Database`` (``Database.writer``), closed by ``Database.dispose``.

SQLite normally checkpoints the WAL inside whichever commit pushes it past 1000 pages, which
stalls that commit (and the requests queued behind it) for milliseconds. The writer connection
turns that off, and a background thread runs a PASSIVE checkpoint (which does not block writers)
every ``checkpoint_seconds`` or every ``checkpoint_commits`` commits, whichever comes first.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from loguru import logger
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable

Statement = tuple[Executable, dict[str, Any] | list[dict[str, Any]]]
T = TypeVar("T")


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _writer_pragmas(dbapi_connection: Any, record: Any) -> None:
    sqlite_pragmas(dbapi_connection, record)
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")
    dbapi_connection.isolation_level = None  # transactions are begun below, not by the driver


def _begin_immediate(conn: Connection) -> None:
    """Every writer transaction writes: take the write lock at BEGIN, where SQLite's busy handler
    waits for another writer, instead of failing at the first write after a read."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")


class _Checkpointer:
    def __init__(self, path: str, seconds: float) -> None:
        self._path = path
        self._seconds = seconds
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        conn = sqlite3.connect(self._path, timeout=10, check_same_thread=False)
        try:
            while not self._stop:
                self._wake.wait(self._seconds)
                self._wake.clear()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:
                    logger.warning("WAL checkpoint failed: {}", exc)
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(10)


class TxWriter:
    def __init__(
        self,
        engine: AsyncEngine,
        url: str,
        *,
        checkpoint_seconds: float = 1.0,
        checkpoint_commits: int = 200,
    ) -> None:
        self._engine = engine
        self._url = url
        self._sync: Engine | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._checkpointer: _Checkpointer | None = None
        self._commits = 0
        self._every = checkpoint_commits
        self._checkpoint_seconds = checkpoint_seconds

    def _threaded(self) -> bool:
        """Whether writes go to the writer thread (a SQLite file); starts it on first use."""
        if self._pool is not None:
            return True
        url = self._url
        path = url.split(":///", 1)[1] if self._engine.dialect.name == "sqlite" and ":///" in url else ""
        if not path or path.startswith(":memory:") or "mode=memory" in path:
            return False
        self._sync = create_engine(f"sqlite:///{path}")
        event.listen(self._sync, "connect", _writer_pragmas)
        event.listen(self._sync, "begin", _begin_immediate)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._checkpointer = _Checkpointer(path, self._checkpoint_seconds)
        return True

    async def run(self, statements: Sequence[Statement]) -> None:
        """Execute ``statements`` in one transaction and commit."""

        def execute(conn: Connection) -> None:
            for statement, params in statements:
                conn.execute(statement, params)

        await self.call(execute)

    async def call(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(connection)`` in one transaction and commit; returns what ``fn`` returns."""
        if self._threaded():
            assert self._pool is not None
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, self._call_sync, fn)
        async with self._engine.begin() as conn:
            return await conn.run_sync(fn)

    def _call_sync(self, fn: Callable[[Connection], T]) -> T:
        assert self._sync is not None
        with self._sync.begin() as conn:
            result = fn(conn)
        self._commits += 1
        if self._checkpointer is not None and self._commits % self._every == 0:
            self._checkpointer.nudge()
        return result

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._sync is not None:
            self._sync.dispose()
            self._sync = None
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
