"""One gate in front of every admin command and admin button (``ADMIN_IDS`` only).

An outer middleware on messages and callback queries: a command named in ``ADMIN_COMMANDS``,
or a tap on an admin button (``AdminCb``), from anyone else gets one polite localized refusal
and an ``admin.refused`` audit line, and never reaches a handler. Handlers of admin commands
therefore do not check the sender themselves, and a new admin command is guarded by adding
its name here (a test checks the admin menu against this list). One exception: ``/positions``
alone (or ``/positions mine``) in a private chat is also every subscriber's own list.
"""

from __future__ import annotations

from typing import Any

from aiogram import BaseMiddleware, Dispatcher
from aiogram.types import CallbackQuery, Message, TelegramObject
from aiogram.utils.i18n import gettext as _

from bot.callbacks import AdminCb
from bot.context import BotContext
from bot.middlewares import Handler
from engine.accounts.subscribers import actor_for
from engine.store.audit import audit

ADMIN_COMMANDS = frozenset(
    {"pause", "resume", "closeall", "status", "positions", "refund", "payout", "leaderboard"}
)
_ADMIN_BUTTON = AdminCb.__prefix__ + AdminCb.__separator__
# ``/positions`` is also a subscriber's own command: in a private chat, with no arguments (or
# ``mine``), anyone reaches it (``bot.routers.positions``); a scope argument is the admin's.
MINE = "mine"


def own_positions_args(args: list[str]) -> str:
    """``/positions`` arguments -> ``""``, ``"mine"`` or something only an admin may ask."""
    return " ".join(args).strip().lower()


def subscriber_form(event: Message, name: str | None) -> bool:
    return (
        name == "positions"
        and event.chat.type == "private"
        and own_positions_args((event.text or "").split(maxsplit=1)[1:]) in ("", MINE)
    )


def command_name(text: str | None) -> str | None:
    """``/Pause@my_bot args`` -> ``pause``; None when ``text`` is not a command."""
    if not text or not text.startswith("/"):
        return None
    head = text.split(maxsplit=1)[0][1:]
    return head.split("@", 1)[0].lower() or None


class AdminGate(BaseMiddleware):
    def __init__(self, ctx: BotContext) -> None:
        self._ctx = ctx

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if isinstance(event, Message):
            name = command_name(event.text or event.caption)
            if name in ADMIN_COMMANDS and not self._admin(event) and not subscriber_form(event, name):
                sender = event.from_user.id if event.from_user else None
                await event.answer(await self._refuse(sender, event.chat.id, f"/{name}"))
                return None
        elif isinstance(event, CallbackQuery):
            if (event.data or "").startswith(_ADMIN_BUTTON) and not self._admin(event):
                chat = event.message.chat.id if event.message else None
                action = (event.data or "").split(AdminCb.__separator__)[1:2]
                what = f"button:{action[0] if action else '?'}"
                await event.answer(await self._refuse(event.from_user.id, chat, what), show_alert=True)
                return None
        return await handler(event, data)

    def _admin(self, event: Message | CallbackQuery) -> bool:
        sender = event.from_user
        return self._ctx.is_admin(sender.id if sender is not None else None)

    async def _refuse(self, telegram_id: int | None, chat_id: int | None, what: str) -> str:
        async with self._ctx.engine.db.session() as session:
            audit(
                session,
                actor_for(telegram_id) if telegram_id is not None else "tg:?",
                "admin.refused",
                what[:128],
                chat_id=chat_id,
            )
        return _("Sorry, this command is for admins only.")

    def setup(self, dispatcher: Dispatcher) -> None:
        dispatcher.message.outer_middleware(self)
        dispatcher.callback_query.outer_middleware(self)
