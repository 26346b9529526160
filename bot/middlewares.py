"""Middlewares: a correlation id per update, the subscriber row, and the user's language."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from aiogram.types import User as TgUser
from aiogram.utils.i18n import I18nMiddleware

from bot.context import BotContext
from bot.i18n import pick_locale
from engine.observability.logs import correlation
from engine.store.models import User

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class UpdateMiddleware(BaseMiddleware):
    """Outer middleware on updates: runs the update under one correlation id, remembers the last
    update id (confirmed to the server on a graceful stop), and loads the sender's ``User`` row
    as ``user`` (None when the sender is unknown)."""

    def __init__(self, ctx: BotContext) -> None:
        self._ctx = ctx
        self.last_update_id: int | None = None
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        update_id = event.update_id if isinstance(event, Update) else None
        self._busy += 1
        self._idle.clear()
        try:
            with correlation(f"tg-{update_id}" if update_id is not None else None):
                sender: TgUser | None = data.get("event_from_user")
                data["user"] = await self._ctx.subscribers.get(sender.id) if sender is not None else None
                return await handler(event, data)
        finally:
            if update_id is not None:
                self.last_update_id = max(update_id, self.last_update_id or 0)
            self._busy -= 1
            if self._busy == 0:
                self._idle.set()

    async def wait_idle(self, seconds: float) -> bool:
        """Wait until no update is being handled (graceful stop); False if the wait timed out."""
        try:
            await asyncio.wait_for(self._idle.wait(), seconds)
        except TimeoutError:
            return False
        return True


class LocaleMiddleware(I18nMiddleware):
    """The subscriber's stored language, else the closest to Telegram's ``language_code``."""

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        user: User | None = data.get("user")
        if user is not None and user.language in self.i18n.available_locales:
            return user.language
        sender: TgUser | None = data.get("event_from_user")
        return pick_locale(sender.language_code if sender else None)
