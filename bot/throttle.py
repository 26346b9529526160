"""Per-user throttling of incoming updates, so one user's flood is neither handled nor amplified.

An outer middleware on updates, before anything else of ours (a dropped update costs no query). Each sender may
send ``burst`` updates at once and ``rate_per_second`` on average (a token bucket). The update
that overdraws the bucket starts an episode: the sender gets one short localized answer (a
message, or a toast for a tap), one ``bot.flood`` audit line is written, and every update from
them is dropped without a word for ``quiet_seconds`` (each dropped update pushes the end of
the episode no further: a flooder is heard again ``quiet_seconds`` after the episode began,
if their bucket has refilled). Dropped updates are counted on the throttle (``dropped``).

Rates are measured at arrival (the inbox's ``received_at``), since one chat's updates are handled
one after another. The state is per process (a few numbers per recent sender, forgotten when idle).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiogram import BaseMiddleware, Dispatcher
from aiogram.exceptions import TelegramAPIError
from aiogram.types import TelegramObject, Update
from aiogram.types import User as TgUser
from aiogram.utils.i18n import gettext as _
from loguru import logger

from bot.i18n import pick_locale
from bot.render import in_locale
from engine.accounts.subscribers import actor_for
from engine.store.audit import audit

if TYPE_CHECKING:
    from bot.context import BotContext  # bot.context holds ThrottleConfig in BotConfig

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class ThrottleConfig:
    rate_per_second: float = 1.0
    burst: int = 8
    quiet_seconds: float = 30.0


@dataclass
class _Sender:
    tokens: float
    stamp: float
    quiet_until: float = 0.0
    dropped: int = 0


class Throttle(BaseMiddleware):
    def __init__(
        self, ctx: BotContext, config: ThrottleConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self._ctx = ctx
        self.config = config
        self._clock = clock
        self._senders: dict[int, _Sender] = {}
        self.dropped = 0
        self.episodes = 0

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        sender: TgUser | None = data.get("event_from_user")
        if sender is None or self._ctx.is_admin(sender.id):
            return await handler(event, data)
        received = data.get("received_at")  # when it reached us (the inbox), not when handled
        verdict = self._take(sender.id, received if isinstance(received, float) else self._clock())
        if verdict == "ok":
            return await handler(event, data)
        self.dropped += 1
        if verdict == "episode":
            self.episodes += 1
            await self._warn(sender.id, sender.language_code, event)
        return None

    def setup(self, dispatcher: Dispatcher) -> None:
        """First on updates (after aiogram's own user context): a dropped update costs no query."""
        dispatcher.update.outer_middleware(self)

    def _take(self, user_id: int, now: float) -> str:
        cfg = self.config
        state = self._senders.get(user_id)
        if state is None:
            if len(self._senders) > 50_000:
                self._forget(now)
            state = self._senders[user_id] = _Sender(float(cfg.burst), now)
        if now < state.quiet_until:
            state.dropped += 1
            return "quiet"
        state.tokens = min(float(cfg.burst), state.tokens + (now - state.stamp) * cfg.rate_per_second)
        state.stamp = now
        if state.tokens >= 1.0:
            state.tokens -= 1.0
            return "ok"
        state.quiet_until = now + cfg.quiet_seconds
        state.dropped = 1
        return "episode"

    def _forget(self, now: float) -> None:
        full = self.config.burst / self.config.rate_per_second
        self._senders = {
            k: s for k, s in self._senders.items() if now < s.quiet_until or now - s.stamp < full
        }

    async def _warn(self, user_id: int, language: str | None, event: TelegramObject) -> None:
        seconds = int(self.config.quiet_seconds)
        with in_locale(self._ctx.i18n, pick_locale(language)):
            text = _("You are sending too fast. I will ignore your messages for {seconds} seconds.").format(
                seconds=seconds
            )
        try:
            async with self._ctx.engine.db.session() as session:
                audit(session, actor_for(user_id), "bot.flood", f"tg:{user_id}", quiet_seconds=seconds)
        except Exception as exc:
            logger.warning("could not audit a flood from {}: {!r}", user_id, exc)
        try:
            if isinstance(event, Update) and event.callback_query is not None:
                await event.callback_query.answer(text, show_alert=True)
            elif isinstance(event, Update) and event.message is not None:
                await event.message.answer(text)
        except TelegramAPIError as exc:
            logger.info("flood warning to {} not delivered: {}", user_id, exc)
