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


def test_instances_starting_together_migrate_one_at_a_time():
    """Three processes upgrading one empty PostgreSQL database at once (several instances started
    together): one migrates, the others wait for it and find nothing left to do."""
    import os
    import subprocess
    import sys
    import uuid
    from pathlib import Path

    from tests.support.databases import PG_ADMIN_URL, pg_admin

    root = Path(__file__).resolve().parents[2]
    name = f"tradebot_mig_{uuid.uuid4().hex[:8]}"
    asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        code = f"from engine.store.migrate import upgrade; upgrade({url!r})"
        env = {**os.environ, "PYTHONPATH": str(root)}
        procs = [
            subprocess.Popen([sys.executable, "-c", code], env=env, cwd=root, stderr=subprocess.PIPE)
            for _ in range(3)
        ]
        results = [(p.wait(timeout=120), p.stderr.read().decode() if p.stderr else "") for p in procs]
        assert [code for code, _ in results] == [0, 0, 0], results
        diff, _tables = asyncio.run(_diff_and_tables(url))
        assert diff == []
    finally:
        asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
