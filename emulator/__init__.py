"""Telegram Bot API emulator: Telegram on loopback, strict enough to catch what real Telegram would.

``BotAPIEmulator`` serves the Bot API (and a control API that plays the users); ``EmulatorClient``
drives the control API; ``run`` serves it until interrupted (``tradebot emulator``).
"""

from emulator.config import EmulatorConfig
from emulator.control import EmulatorClient, EmulatorControlError
from emulator.server import BotAPIEmulator, run

__all__ = ["BotAPIEmulator", "EmulatorClient", "EmulatorConfig", "EmulatorControlError", "run"]
