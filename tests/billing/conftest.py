"""Billing's end-to-end tests use the bot's world (emulator + engine + real aiogram bot) with
billing turned on (``BILLING=on``: the shipped plans, /subscribe and entitlement gating)."""

from __future__ import annotations

import pytest

from tests.support.bot_world import World, WorldFactory


@pytest.fixture
async def world(world_factory: WorldFactory) -> World:
    return await world_factory(billing="on")
