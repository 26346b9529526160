"""Migrations build exactly the models' schema on an empty database, and downgrade to base."""

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from engine.store.db import create_engine
from engine.store.migrate import downgrade, upgrade
from engine.store.models import Base


async def _diff_and_tables(url):
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:

            def work(sync_conn):
                ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                return compare_metadata(ctx, Base.metadata), set(inspect(sync_conn).get_table_names())

            return await conn.run_sync(work)
    finally:
        await engine.dispose()


def _check(url):
    upgrade(url)
    diff, tables = asyncio.run(_diff_and_tables(url))
    assert diff == [], f"models and migrations differ: {diff}"
    assert set(Base.metadata.tables) <= tables
    downgrade(url, "base")
    _, tables = asyncio.run(_diff_and_tables(url))
    assert tables <= {"alembic_version"}
    upgrade(url)


def test_sqlite_migrations(tmp_path):
    _check(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


def test_postgres_migrations():
    import uuid

    from tests.support.databases import PG_ADMIN_URL, pg_admin

    name = f"tradebot_mig_{uuid.uuid4().hex[:8]}"
    asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        _check(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
    finally:
        asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
