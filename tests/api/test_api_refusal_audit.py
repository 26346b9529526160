"""Refusals of unauthenticated requests are counted per request and audited per source and minute."""

from __future__ import annotations

import asyncio
import json

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from engine.api import build_http_app
from engine.api.refusals import ACTION, OTHER_SOURCES, RefusalAggregator
from engine.observability.metrics import Metrics
from engine.settings import Settings
from engine.store.db import Database
from engine.store.models import AuditLog
from tradebot.app import build_api_context, build_services

KEY = "r" * 40


def _metric(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value("tradebot_unauthenticated_refused_total", {"reason": reason})
    return value or 0.0


async def _lines(db: Database, action: str) -> list[AuditLog]:
    async with db.sessions() as session:
        return list((await session.scalars(select(AuditLog).where(AuditLog.action == action))).all())


async def test_a_flood_from_unknown_producer_ids_is_a_handful_of_audit_lines(db: Database) -> None:
    settings = Settings(_env_file=None, database_url=db.url, secret_key=KEY)  # type: ignore[call-arg,arg-type]
    metrics = Metrics()
    ctx = build_api_context(build_services(settings, db=db), metrics=metrics)
    body = json.dumps({"instrument": "EURUSD"}).encode()
    async with TestClient(TestServer(build_http_app(ctx))) as client:

        async def one(i: int) -> int:
            headers = {
                "Content-Type": "application/json",
                "X-Producer-Id": f"nobody-{i}",
                "X-Signature": f"t=1,v1={'0' * 64}",
            }
            async with client.post("/api/v1/signals", data=body, headers=headers) as resp:
                return resp.status

        for start in range(0, 1000, 100):
            statuses = await asyncio.gather(*(one(i) for i in range(start, start + 100)))
            assert set(statuses) == {401}
        assert _metric(metrics, "unknown_producer") == 1000
        assert await _lines(db, ACTION) == []  # nothing written per request
    # the server stopped: what was counted is written, one line per source and minute
    lines = await _lines(db, ACTION)
    assert 1 <= len(lines) <= 2  # 2 only when the flood straddled a minute boundary
    assert sum(line.details["count"] for line in lines) == 1000
    assert {line.target for line in lines} == {"127.0.0.1"}
    assert all(
        line.details["reasons"] == [{"reason": "unknown_producer", "count": line.details["count"]}]
        for line in lines
    )
    assert await _lines(db, "signal.refused") == []


async def test_finished_minutes_are_flushed_and_sources_are_capped(sqlite_db: Database) -> None:
    now = [600.0]  # minute 10
    metrics = Metrics()
    counts = RefusalAggregator(sqlite_db, metrics, max_sources=2, clock=lambda: now[0])
    counts.record("10.0.0.1", "unknown_token", "/api/v1/signals/token/{token}")
    counts.record("10.0.0.1", "stale_timestamp", "/api/v1/signals")
    counts.record("10.0.0.2", "bad_signature", "/api/v1/signals")
    counts.record("10.0.0.3", "unknown_producer", "/api/v1/signals")  # over the cap: folded into "other"
    counts.record("10.0.0.4", "unknown_producer", "/api/v1/signals")
    assert await counts.flush() == 0  # minute 10 is not over yet
    now[0] = 660.0
    counts.record("10.0.0.1", "unknown_token", "/api/v1/signals/token/{token}")
    assert await counts.flush() == 3  # minute 10: two sources and "other"; minute 11 stays
    lines = {line.target: line.details for line in await _lines(sqlite_db, ACTION)}
    assert lines["10.0.0.1"]["count"] == 2
    assert lines["10.0.0.1"]["reasons"] == [
        {"reason": "stale_timestamp", "count": 1},
        {"reason": "unknown_token", "count": 1},
    ]
    assert lines["10.0.0.1"]["minute"] == "1970-01-01T00:10:00+00:00"
    assert lines[OTHER_SOURCES]["count"] == 2
    assert counts.pending() == 1
    await counts.stop()  # shutdown writes the unfinished minute too
    assert counts.pending() == 0
    assert len(await _lines(sqlite_db, ACTION)) == 4
    assert _metric(metrics, "unknown_token") == 2 and _metric(metrics, "unknown_producer") == 2


async def test_a_failed_write_keeps_the_counts(sqlite_db: Database, tmp_path) -> None:
    broken = Database(f"sqlite+aiosqlite:///{tmp_path}/missing-dir/none.db")
    await broken.dispose()
    counts = RefusalAggregator(broken, Metrics(), clock=lambda: 0.0)
    counts.record("10.0.0.9", "unknown_producer", "/api/v1/signals")
    assert await counts.flush(everything=True) == 0  # no audit_log table there
    assert counts.pending() == 1
