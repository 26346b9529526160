"""The bot's world fixtures (emulator + engine + real aiogram bot), for /stats and /export."""

from tests.bot.conftest import world, world_factory  # noqa: F401
