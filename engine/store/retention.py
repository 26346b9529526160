"""Retention: how long processed domain events and audit lines are kept, and pruning past that.

``audit_log`` is append-only inside its retention window: the database refuses to update any row
and to delete one younger than ``AUDIT_RETENTION_MIN_DAYS`` (migration 0006), so a setting can
shorten the window only down to that floor. Domain events are deleted only once processed (the
relay has handed them to every subscriber); an unprocessed event is never pruned, however old.
``tradebot prune`` runs :func:`prune` with ``AUDIT_RETENTION_DAYS`` and ``EVENTS_RETENTION_DAYS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete

from engine.store.db import Database, utcnow
from engine.store.models import AuditLog, DomainEvent

AUDIT_RETENTION_MIN_DAYS = 30  # the floor the database enforces (migrations/versions/0006)
MAX_RETENTION_DAYS = 36500


class RetentionError(ValueError):
    """A retention period outside what is allowed (one line, for the CLI)."""


@dataclass(frozen=True)
class Pruned:
    audit_rows: int
    events: int
    audit_before: datetime
    events_before: datetime


def check_periods(
    audit_days: int,
    events_days: int,
    *,
    audit_name: str = "AUDIT_RETENTION_DAYS",
    events_name: str = "EVENTS_RETENTION_DAYS",
) -> None:
    if not AUDIT_RETENTION_MIN_DAYS <= audit_days <= MAX_RETENTION_DAYS:
        raise RetentionError(
            f"{audit_name}: must be between {AUDIT_RETENTION_MIN_DAYS} and {MAX_RETENTION_DAYS} "
            f"days (got {audit_days})"
        )
    if not 1 <= events_days <= MAX_RETENTION_DAYS:
        raise RetentionError(
            f"{events_name}: must be between 1 and {MAX_RETENTION_DAYS} days (got {events_days})"
        )


async def prune(db: Database, *, audit_days: int, events_days: int, now: datetime | None = None) -> Pruned:
    """Delete audit lines older than ``audit_days`` and processed events older than ``events_days``.

    One transaction: either both deletions happen or neither does. Returns the counts.
    """
    check_periods(audit_days, events_days)
    now = now or utcnow()
    audit_before = now - timedelta(days=audit_days)
    events_before = now - timedelta(days=events_days)
    async with db.session() as session:
        events = await session.execute(
            delete(DomainEvent).where(
                DomainEvent.processed_at.is_not(None), DomainEvent.processed_at < events_before
            )
        )
        audit_rows = await session.execute(delete(AuditLog).where(AuditLog.at < audit_before))
    return Pruned(
        audit_rows=int(audit_rows.rowcount or 0),  # type: ignore[attr-defined]
        events=int(events.rowcount or 0),  # type: ignore[attr-defined]
        audit_before=audit_before,
        events_before=events_before,
    )
