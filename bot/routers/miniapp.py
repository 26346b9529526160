"""/app: the Mini App (docs/miniapp.md), opened by a ``web_app`` button in the private chat.

The bot's default menu button opens it too (``bot.commands.set_menu_button`` at start-up); /app
also sets this chat's menu button in the subscriber's own language. Without a public HTTPS URL
(``MINIAPP_URL``, or an HTTPS ``WEBHOOK_URL``) there is no Mini App to open, and /app says so.
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _
from loguru import logger

from bot.context import BotContext
from bot.keyboards import app_keyboard, menu_button


async def app_command(message: Message, ctx: BotContext, bot: Bot) -> None:
    url = ctx.settings.miniapp_public_url()
    if url is None:
        await message.answer(_("The Mini App is not set up on this server yet (MINIAPP_URL)."))
        return
    await message.answer(
        _("📱 Your trading console: signals to approve, positions with live P/L, history and stats."),
        reply_markup=app_keyboard(url),
    )
    try:
        await bot.set_chat_menu_button(chat_id=message.chat.id, menu_button=menu_button(url))
    except TelegramAPIError as exc:  # the button in the message still opens it
        logger.warning("menu button for chat {} not set: {}", message.chat.id, exc)


def build_router() -> Router:
    """A fresh router (a router can belong to one dispatcher only)."""
    router = Router(name="miniapp")
    router.message.register(app_command, Command("app"), F.chat.type == "private")
    return router
