"""Fixtures for the producer API: a real aiohttp server on loopback over SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from engine.api import build_http_app
from engine.store.db import Database
from tests.support.api_world import Harness, LiveServer, build_context


@pytest.fixture
async def api(db: Database) -> AsyncIterator[Harness]:
    """The HTTP app on loopback over each database, with one producer."""
    ctx, relay = await build_context(db)
    assert ctx.producers is not None
    producer = await ctx.producers.add("alpha")
    client = TestClient(TestServer(build_http_app(ctx), host="127.0.0.1"))
    await client.start_server()
    try:
        yield Harness(client, ctx, producer, relay)
    finally:
        await client.close()


@pytest.fixture
async def sqlite_api(sqlite_db: Database) -> AsyncIterator[Harness]:
    """Like ``api`` on SQLite only, for tests about HTTP rather than the store."""
    ctx, relay = await build_context(sqlite_db)
    assert ctx.producers is not None
    producer = await ctx.producers.add("alpha")
    client = TestClient(TestServer(build_http_app(ctx), host="127.0.0.1"))
    await client.start_server()
    try:
        yield Harness(client, ctx, producer, relay)
    finally:
        await client.close()


@pytest.fixture
def live_server(sqlite_url: str) -> Iterator[LiveServer]:
    with LiveServer(sqlite_url) as server:
        yield server
