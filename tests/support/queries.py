"""Reading the store from a test: domain events, row counts, rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from engine.store.db import Database
from engine.store.models import DomainEvent


async def events(db: Database, type_: str | None = None) -> list[DomainEvent]:
    """The domain events in order, optionally of one type."""
    async with db.sessions() as s:
        query = select(DomainEvent).order_by(DomainEvent.id)
        if type_ is not None:
            query = query.where(DomainEvent.type == type_)
        return list((await s.scalars(query)).all())


async def count(db: Database, model: Any, *where: Any) -> int:
    async with db.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def rows(db: Database, model: Any, *where: Any) -> list[Any]:
    async with db.sessions() as s:
        return list((await s.scalars(select(model).where(*where))).all())
