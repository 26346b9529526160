"""The offline sandbox: the whole product on one machine, with a web page to act as subscribers.

``tradebot sandbox`` starts the Telegram Bot API emulator, the real bot and engine pointed at it,
a paper or simulated MT5 broker, a cast of simulated subscribers (onboarded through the emulator
as real users would be), an admin, an ops channel, a demo producer posting signed signals through
the real webhook, and a page (``/sandbox`` on the engine's HTTP server) showing every chat.
See ``tradebot.sandbox`` (which composes these parts with the product) for the order things start in, and the README's "First five minutes".
"""

from sandbox.config import SandboxOptions

__all__ = ["SandboxOptions"]
