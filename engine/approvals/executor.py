"""Starting the execution of approvals without starving the taps that make them.

``ApprovalService`` calls its ``execute`` hook once per recorded approval, after the commit;
the composition root gives it an ``ApprovalExecutor``.
"""

from __future__ import annotations

import asyncio

from loguru import logger

from engine.execution.service import ExecutionService
from engine.store.db import Database


class ApprovalExecutor:
    """Starts the execution of approvals a few at a time (the ``execute`` hook of the service).

    A burst of taps must not starve the event loop that answers them: each approval's order row is
    written at once (PENDING, so the trading loop finds it even after a crash), and the broker work
    then runs at most ``concurrency`` orders at a time through ``ExecutionService``, which still
    guarantees one broker order per approval.

    ``for_database`` picks the concurrency: SQLite has one writer, and several executions
    writing at once only make taps wait in SQLite's busy handler (the benchmark's p99 went from
    ~50 ms to ~800 ms at 2), so one; PostgreSQL locks rows, so eight.
    """

    @classmethod
    def for_database(cls, execution: ExecutionService, db: Database) -> ApprovalExecutor:
        return cls(execution, concurrency=1 if db.dialect == "sqlite" else 8)

    def __init__(self, execution: ExecutionService, concurrency: int = 1) -> None:
        self._execution = execution
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, decision_id: str) -> None:
        task = asyncio.create_task(self._run(decision_id), name=f"approval:{decision_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, decision_id: str) -> None:
        try:
            await self._execution.order_for_decision(decision_id)
            async with self._slots:
                task = self._execution.submit_in_background(decision_id)
                if task is not None:
                    await task
        except Exception as exc:  # the order stays PENDING: the trading loop drives it
            logger.opt(exception=exc).error("executing decision {} failed; the loop will retry", decision_id)
