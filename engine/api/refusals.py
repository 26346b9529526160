"""Refusals of unauthenticated requests, counted per request and audited in aggregate.

A request that never proved who it is (no or unknown producer id, bad or stale signature, unknown
token) costs the store nothing at the time: it increments a Prometheus counter (by reason) and a
count in memory, per source address and minute. Once a minute, and at shutdown, each finished
bucket becomes one ``signal.unauthenticated`` audit line: the source, the minute, the count and the
counts by reason. A flood of 1,000 such requests is one line, not 1,000 (``audit_log`` is
append-only, so lines are only ever inserted). At most ``max_sources`` addresses are kept per
minute; the rest are folded into the source ``other``, so a spread-out flood cannot grow memory
or the table without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from loguru import logger

from engine.observability.metrics import Metrics
from engine.store.audit import audit
from engine.store.db import Database

ACTION = "signal.unauthenticated"
OTHER_SOURCES = "other"


@dataclass
class _Bucket:
    reasons: Counter[str] = field(default_factory=Counter)
    routes: set[str] = field(default_factory=set)

    @property
    def count(self) -> int:
        return sum(self.reasons.values())


class RefusalAggregator:
    def __init__(
        self,
        db: Database,
        metrics: Metrics,
        *,
        flush_seconds: float = 60.0,
        max_sources: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._metrics = metrics
        self._flush_seconds = flush_seconds
        self._max_sources = max_sources
        self._clock = clock
        self._buckets: dict[int, dict[str, _Bucket]] = {}  # minute (epoch // 60) -> source -> bucket
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def record(self, source: str | None, reason: str, route: str) -> None:
        """Count one refused unauthenticated request (no I/O)."""
        self._metrics.unauthenticated_refused.labels(reason).inc()
        minute = int(self._clock() // 60)
        sources = self._buckets.setdefault(minute, {})
        key = (source or "unknown")[:64]
        if key not in sources and len(sources) >= self._max_sources:
            key = OTHER_SOURCES
        bucket = sources.setdefault(key, _Bucket())
        bucket.reasons[reason] += 1
        if len(bucket.routes) < 8:
            bucket.routes.add(route)

    def pending(self) -> int:
        """Refusals counted but not yet written."""
        return sum(b.count for sources in self._buckets.values() for b in sources.values())

    async def flush(self, *, everything: bool = False) -> int:
        """Write one audit line per source and finished minute (every minute with ``everything``).

        Returns the number of lines written. A failed write keeps the counts for the next flush.
        """
        async with self._lock:
            current = int(self._clock() // 60)
            minutes = sorted(m for m in self._buckets if everything or m < current)
            if not minutes:
                return 0
            taken = {m: self._buckets.pop(m) for m in minutes}
            try:
                async with self._db.session() as session:
                    for minute, sources in taken.items():
                        at = datetime.fromtimestamp(minute * 60, UTC).isoformat()
                        for source, bucket in sorted(sources.items()):
                            audit(
                                session,
                                "anonymous",
                                ACTION,
                                source,
                                minute=at,
                                count=bucket.count,
                                # a list, not a dict: reason codes such as unknown_token would
                                # read as secret keys to the audit's redaction
                                reasons=[
                                    {"reason": r, "count": n} for r, n in sorted(bucket.reasons.items())
                                ],
                                routes=sorted(bucket.routes),
                            )
            except Exception as exc:
                logger.opt(exception=exc).error("could not write the refusal counts; kept for the next flush")
                for minute, sources in taken.items():
                    self._merge(minute, sources)
                return 0
            return sum(len(sources) for sources in taken.values())

    def _merge(self, minute: int, sources: dict[str, _Bucket]) -> None:
        into = self._buckets.setdefault(minute, {})
        for source, bucket in sources.items():
            mine = into.setdefault(source, _Bucket())
            mine.reasons.update(bucket.reasons)
            mine.routes |= bucket.routes

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="refusal-audit")

    async def stop(self) -> None:
        """Stop the periodic flush and write everything counted so far."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush(everything=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            await self.flush()
