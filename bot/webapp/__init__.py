"""The Telegram Mini App: the subscriber's and the admin's console inside Telegram (docs/miniapp.md).

``MiniApp(ctx).mount(app)`` serves the page under ``/app/`` and its API under ``/app/api/`` on the
product's HTTP server; ``attach(relay)`` feeds live hints to open pages.
"""

from bot.webapp.app import MiniApp

__all__ = ["MiniApp"]
