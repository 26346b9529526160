"""Bot API method handlers; importing this package registers them all in ``HANDLERS``."""

from emulator.methods import bot_info, messages, payments, updates
from emulator.methods.base import HANDLERS, Call, Result

__all__ = ["HANDLERS", "Call", "Result", "bot_info", "messages", "payments", "updates"]
