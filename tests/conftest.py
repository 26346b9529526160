"""Shared fixtures: the same tests run on SQLite and on PostgreSQL, with migrations applied.

PostgreSQL: a fresh database per test run on 127.0.0.1:5432 (``TEST_PG_URL`` to override),
migrated once, emptied between tests. Unreachable PostgreSQL is a failure, not a skip.
SQLite: migrated once into a template file that each test copies.
The bot's world (emulator + engine + real aiogram bot) for the bot, billing and analytics tests.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import text

from engine.store.db import Database
from engine.store.migrate import upgrade
from engine.store.models import Base
from tests.support.bot_world import World, WorldFactory, make_world
from tests.support.databases import PG_ADMIN_URL, pg_admin

# End-to-end suites run real processes, sockets and timers; on a loaded 2-core machine a tick can be
# late. Their tests get up to two reruns (reported as "rerun" in the summary, never hidden); unit,
# property and store tests get none.
E2E_DIRS = ("bot", "loop", "billing", "sandbox")
E2E_FILES = ("test_bot_stats.py", "test_miniapp_api.py")


# Hypothesis fails an example that takes over 200 ms by default; on a shared machine a pause of the
# process can do that to any example. Properties are about values, never about wall-clock time.
hypothesis_settings.register_profile("tradebot", deadline=None)
hypothesis_settings.load_profile("tradebot")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath))
        if path.parent.name in E2E_DIRS or path.name in E2E_FILES:
            item.add_marker(pytest.mark.flaky(reruns=2, reruns_delay=1))


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    name = f"tradebot_test_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # a failure, never a skip: CI must run both databases
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {exc!r}", pytrace=False)
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    yield url
    asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "tradebot.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


async def _truncate_pg(db: Database) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with db.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The URL of a migrated, empty database: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    if database.dialect == "postgresql":
        await _truncate_pg(database)
    yield database
    await database.dispose()


@pytest.fixture
async def sqlite_db(sqlite_url: str) -> AsyncIterator[Database]:
    """SQLite only, for tests that are about something other than the store."""
    database = Database(sqlite_url)
    yield database
    await database.dispose()


@pytest.fixture
async def world_factory(sqlite_url: str) -> AsyncIterator[WorldFactory]:
    """Builds bot worlds on SQLite (settings overridable); all are closed after the test."""
    made: list[World] = []

    async def make(**overrides: Any) -> World:
        world = await make_world(sqlite_url, **overrides)
        made.append(world)
        return world

    yield make
    for world in reversed(made):
        await world.close()


@pytest.fixture
async def world(world_factory: WorldFactory) -> World:
    return await world_factory()


# ---- the MT5 gateway: suites that run straight on mt5sim and again through the gateway ----
@pytest.fixture(scope="session")
def gateway_tls(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A self-signed certificate for 127.0.0.1, made at test time; clients pin it (tests.support.gateway.Tls)."""
    from tests.support.gateway import Tls

    return Tls.make(tmp_path_factory.mktemp("gateway-tls"))


@pytest.fixture
def gateway(gateway_tls: Any) -> Iterator[Any]:
    """A TLS gateway serving mt5sim in a thread, the default gateway of ``engine.brokers.remote``."""
    from engine.brokers import remote
    from tests.support.gateway import GatewayThread

    gw = GatewayThread(gateway_tls).start()
    remote.configure({"default": gw.endpoint()})
    yield gw
    remote.configure({})
    gw.stop()


@pytest.fixture(params=["direct", "gateway"])
def mt5_module(request: pytest.FixtureRequest) -> str:
    """``MT5_MODULE`` for MT5 suites run twice: ``mt5sim`` direct, and through a TLS gateway."""
    if request.param == "direct":
        return "mt5sim"
    request.getfixturevalue("gateway")
    return "engine.brokers.remote"
