"""Every Bot API call takes its turn in the send budget, and a 429 is waited out, not lost.

``BudgetMiddleware`` is an aiogram request middleware on the bot's session: before each call
that sends to a chat or answers a user (messages, edits, callback answers, documents, photos,
invoices...), it waits for the budget (``bot.ratelimit.SendBudget``: the global rate, the chat's rate, the
group's per-minute rate), so handler replies and the outbox share one budget and a burst of
new users is served in arrival order at the budget's pace. A ``TelegramRetryAfter`` pauses the
whole budget for ``retry_after`` and the call is made again (up to ``max_wait_seconds`` in all);
past that the 429 reaches the handler, and the inbox hands the update back to be handled again
after ``retry_after`` (``bot.inbox``), so a long flood wait delays a reply, never loses it.

The outbox sender acquires the budget itself and settles a 429 by rescheduling its row, so its
calls are marked with ``outbox_call`` and passed straight through. Calls that send nothing to
anyone (``getUpdates``, ``getMe``, webhook and menu setup, file downloads) are not counted.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import (
    Close,
    DeleteMyCommands,
    DeleteWebhook,
    GetChat,
    GetFile,
    GetMe,
    GetMyCommands,
    GetUpdates,
    GetWebhookInfo,
    LogOut,
    SetMyCommands,
    SetWebhook,
)
from aiogram.methods.base import TelegramType
from loguru import logger

from bot.ratelimit import SendBudget

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import Response, TelegramMethod

outbox_call: ContextVar[bool] = ContextVar("outbox_call", default=False)

UNCOUNTED: tuple[type[Any], ...] = (
    GetUpdates,
    GetMe,
    GetWebhookInfo,
    SetWebhook,
    DeleteWebhook,
    SetMyCommands,
    GetMyCommands,
    DeleteMyCommands,
    GetFile,
    GetChat,
    LogOut,
    Close,
)


def target_chat(method: object) -> int | None:
    """The chat a call sends to, when it names one by number (the per-chat and group limits)."""
    chat_id = getattr(method, "chat_id", None)
    return chat_id if isinstance(chat_id, int) and not isinstance(chat_id, bool) else None


class BudgetMiddleware(BaseRequestMiddleware):
    def __init__(self, budget: SendBudget, *, max_wait_seconds: float = 120.0) -> None:
        self.budget = budget
        self.max_wait_seconds = max_wait_seconds
        self.retried = 0  # 429s waited out

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        if outbox_call.get() or isinstance(method, UNCOUNTED):
            return await make_request(bot, method)
        chat = target_chat(method)
        waited = 0.0
        while True:
            await self._turn(chat)
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                wait = float(exc.retry_after)
                await self.budget.pause(wait)  # every other call waits too: the bot is over its limit
                if waited + wait > self.max_wait_seconds:
                    raise
                self.retried += 1
                waited += wait
                logger.info("{}: Telegram asked to wait {} s; waiting", type(method).__name__, wait)

    async def _turn(self, chat: int | None) -> None:
        for _ in range(1000):  # the chat's own pace (about one a second), then a global slot
            wait = await self.budget.chat_wait(chat) if chat is not None else 0.0
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        await self.budget.acquire(chat)
