"""Fixtures for the bot: a world (emulator + engine + bot) per test, built on SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.bot.harness import World, make_world

WorldFactory = Callable[..., Awaitable[World]]


@pytest.fixture
async def world_factory(sqlite_url: str) -> AsyncIterator[WorldFactory]:
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
