"""Direct replies survive a 429: a request middleware waits out Telegram's ``retry_after``.

Handler replies (``message.answer``, ``callback.answer``...) are made in the update's own
context, not through the outbox, so a flood-control answer would otherwise lose them. The outbox
sender paces and retries by itself (a 429 pauses all its sends), so its calls are marked with
``outbox_call`` and passed straight through.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import TYPE_CHECKING

from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods.base import TelegramType
from loguru import logger

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import Response, TelegramMethod

outbox_call: ContextVar[bool] = ContextVar("outbox_call", default=False)


class RetryAfterMiddleware(BaseRequestMiddleware):
    def __init__(self, *, max_tries: int = 4, max_wait_seconds: float = 30.0) -> None:
        self.max_tries = max_tries
        self.max_wait_seconds = max_wait_seconds

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        waited = 0.0
        for attempt in range(1, self.max_tries + 1):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                wait = float(exc.retry_after)
                if outbox_call.get() or attempt == self.max_tries or waited + wait > self.max_wait_seconds:
                    raise
                logger.info("{}: Telegram asked to wait {} s (try {})", type(method).__name__, wait, attempt)
                waited += wait
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")
