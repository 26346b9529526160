"""Billing's end-to-end tests reuse the bot's world (emulator + engine + real aiogram bot), with
billing turned on (``BILLING=on``: the shipped plans, /subscribe and entitlement gating)."""

import pytest

from tests.bot.conftest import world_factory  # noqa: F401  (fixture)
from tests.bot.harness import World


@pytest.fixture
async def world(world_factory) -> World:  # type: ignore[no-untyped-def]  # noqa: F811
    return await world_factory(billing="on")
