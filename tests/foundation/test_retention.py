"""Retention on both databases: ``prune`` removes old audit lines and processed events, keeps recent
ones and unprocessed events, and a recent audit line still cannot be deleted directly."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from engine.store.db import Database, utcnow
from engine.store.models import AuditLog, DomainEvent
from engine.store.retention import RetentionError, check_periods, prune
from tradebot.cli import app


async def _seed(db: Database) -> None:
    now = utcnow()
    async with db.session() as session:
        for days, action in ((400, "ancient"), (40, "old"), (1, "recent")):
            session.add(AuditLog(at=now - timedelta(days=days), actor="cli", action=action, details={}))
        session.add_all(
            [
                DomainEvent(
                    type="done.long.ago",
                    created_at=now - timedelta(days=41),
                    processed_at=now - timedelta(days=40),
                ),
                DomainEvent(
                    type="done.lately",
                    created_at=now - timedelta(days=2),
                    processed_at=now - timedelta(days=1),
                ),
                DomainEvent(type="never.processed", created_at=now - timedelta(days=400)),
            ]
        )


async def _left(db: Database) -> tuple[list[str], list[str]]:
    async with db.sessions() as session:
        actions = (await session.scalars(select(AuditLog.action).order_by(AuditLog.at))).all()
        events = (await session.scalars(select(DomainEvent.type).order_by(DomainEvent.id))).all()
    return list(actions), list(events)


async def test_prune_removes_old_rows_keeps_recent_ones_and_unprocessed_events(db: Database) -> None:
    await _seed(db)
    done = await prune(db, audit_days=365, events_days=30)
    assert (done.audit_rows, done.events) == (1, 1)
    assert await _left(db) == (["old", "recent"], ["done.lately", "never.processed"])

    done = await prune(db, audit_days=30, events_days=2)
    # the 40-day-old line goes; the 1-day-old one is inside the window, as is the event of yesterday
    assert (done.audit_rows, done.events) == (1, 0)
    assert await _left(db) == (["recent"], ["done.lately", "never.processed"])

    again = await prune(db, audit_days=30, events_days=2)  # nothing left to prune: idempotent
    assert (again.audit_rows, again.events) == (0, 0)


async def test_a_recent_audit_line_cannot_be_deleted_directly(db: Database) -> None:
    await _seed(db)
    await prune(db, audit_days=30, events_days=30)
    with pytest.raises(Exception, match="append-only"):
        async with db.session() as session:
            await session.execute(text("DELETE FROM audit_log"))
    with pytest.raises(Exception, match="append-only"):
        async with db.session() as session:
            await session.execute(text("UPDATE audit_log SET action = 'rewritten'"))
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(AuditLog)) == 1


def test_periods_below_the_floor_are_refused() -> None:
    with pytest.raises(RetentionError, match="AUDIT_RETENTION_DAYS: must be between 30"):
        check_periods(29, 30)
    with pytest.raises(RetentionError, match="EVENTS_RETENTION_DAYS"):
        check_periods(30, 0)
    check_periods(30, 1)


def test_prune_command_prints_counts_and_refuses_bad_input(sqlite_url: str) -> None:
    import asyncio

    async def seed() -> None:
        db = Database(sqlite_url)
        try:
            await _seed(db)
        finally:
            await db.dispose()

    asyncio.run(seed())
    runner = CliRunner()
    env = {"DATABASE_URL": sqlite_url, "LOG_LEVEL": "WARNING"}
    done = runner.invoke(app, ["prune"], env={**env, "AUDIT_RETENTION_DAYS": "100"})
    assert done.exit_code == 0, done.output
    assert "deleted 1 audit line(s) older than 100 days" in done.output
    assert "deleted 1 processed domain event(s) older than 30 days" in done.output

    for args, named in (
        (["prune", "--audit-days", "7"], "--audit-days"),
        (["prune", "--events-days", "0"], "--events-days"),
    ):
        refused = runner.invoke(app, args, env=env)
        assert refused.exit_code == 2 and refused.output.count("\n") == 1, refused.output
        assert refused.output.startswith(f"tradebot: {named}: must be between")
    bad_setting = runner.invoke(app, ["prune"], env={**env, "AUDIT_RETENTION_DAYS": "5"})
    assert bad_setting.exit_code == 2 and "AUDIT_RETENTION_DAYS" in bad_setting.output
    not_a_number = runner.invoke(app, ["prune", "--audit-days", "lots"], env=env)
    assert not_a_number.exit_code == 2
