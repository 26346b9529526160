"""Hot-path writes: a few Core statements in one transaction, as cheaply as each database allows.

On PostgreSQL this is the async engine (asyncpg is fast). On a SQLite file the async adapter
costs several thread hops per statement (about 0.4 ms of CPU for a two-row transaction), and
SQLite has one writer at a time anyway; so the writes go to one dedicated thread holding a
synchronous connection to the same file: one hop per transaction, writers queued in order
instead of spinning in SQLite's busy handler. Either way ``run`` returns only after the
transaction has committed (or raises, e.g. ``IntegrityError``, after it rolled back).

SQLite normally checkpoints the WAL inside whichever commit pushes it past 1000 pages, which
stalls that commit (and the requests queued behind it) for milliseconds. The writer connection
turns that off, and a background thread runs a PASSIVE checkpoint (which does not block writers)
every ``checkpoint_seconds`` or every ``checkpoint_commits`` commits, whichever comes first.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from loguru import logger
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.sql import Executable

from engine.store.db import Database, _sqlite_pragmas

Statement = tuple[Executable, dict[str, Any]]


def _writer_pragmas(dbapi_connection: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, record)
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")


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
        self, db: Database, *, checkpoint_seconds: float = 1.0, checkpoint_commits: int = 200
    ) -> None:
        self._db = db
        self._sync: Engine | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._checkpointer: _Checkpointer | None = None
        self._commits = 0
        self._every = checkpoint_commits
        path = db.url.split(":///", 1)[1] if db.dialect == "sqlite" and ":///" in db.url else ""
        if path and not path.startswith(":memory:") and "mode=memory" not in path:
            self._sync = create_engine(f"sqlite:///{path}")
            event.listen(self._sync, "connect", _writer_pragmas)
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
            self._checkpointer = _Checkpointer(path, checkpoint_seconds)

    async def run(self, statements: Sequence[Statement]) -> None:
        """Execute ``statements`` in one transaction and commit."""
        if self._sync is not None and self._pool is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._pool, self._run_sync, statements)
            return
        async with self._db.engine.begin() as conn:
            for statement, params in statements:
                await conn.execute(statement, params)

    def _run_sync(self, statements: Sequence[Statement]) -> None:
        assert self._sync is not None
        with self._sync.begin() as conn:
            for statement, params in statements:
                conn.execute(statement, params)
        self._commits += 1
        if self._checkpointer is not None and self._commits % self._every == 0:
            self._checkpointer.nudge()

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
