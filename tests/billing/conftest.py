"""Billing's end-to-end tests reuse the bot's world (emulator + engine + real aiogram bot)."""

from tests.bot.conftest import world, world_factory  # noqa: F401  (fixtures)
