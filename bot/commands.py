"""The command menus (setMyCommands) in English and Spanish, with admin commands for admins, and the
menu button that opens the Mini App (setChatMenuButton)."""

from __future__ import annotations

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault
from aiogram.utils.i18n import gettext as _
from loguru import logger

from bot.context import BotContext
from bot.render import in_locale
from bot.routers.miniapp import menu_button

MENU_LANGUAGES: tuple[str | None, ...] = (None, "es")  # None: the default menu (English)


def subscriber_commands() -> list[BotCommand]:
    return [
        BotCommand(command="start", description=_("Subscribe and accept the risk disclaimer")),
        BotCommand(command="account", description=_("Your account, balance and positions")),
        BotCommand(command="app", description=_("Your trading console (Mini App)")),
        BotCommand(command="settings", description=_("Language and notifications")),
        BotCommand(command="stats", description=_("Performance and equity chart")),
        BotCommand(command="export", description=_("Your closed trades as CSV")),
        BotCommand(command="subscribe", description=_("Plans and payment in Stars")),
        BotCommand(command="auto", description=_("Automatic execution on or off")),
        BotCommand(command="invite", description=_("Your referral link")),
        BotCommand(command="referrals", description=_("Invited users and referral balance")),
        BotCommand(command="help", description=_("What the bot does")),
        BotCommand(command="stop", description=_("Stop receiving signals")),
    ]


def admin_commands() -> list[BotCommand]:
    return [
        BotCommand(command="status", description=_("Engine status, equity, outbox")),
        BotCommand(command="positions", description=_("Every open position")),
        BotCommand(command="pause", description=_("Pause signals and executions")),
        BotCommand(command="resume", description=_("Resume signals and executions")),
        BotCommand(command="closeall", description=_("Close every position")),
        BotCommand(command="refund", description=_("Refund a Stars payment")),
        BotCommand(command="leaderboard", description=_("Referrers by balance")),
    ]


async def set_menu_button(bot: Bot, ctx: BotContext) -> None:
    """The default menu button of private chats opens the Mini App (when it has a public URL)."""
    url = ctx.settings.miniapp_public_url()
    if url is None:
        return
    with in_locale(ctx.i18n, ctx.i18n.default_locale):
        button = menu_button(url)
    try:
        await bot.set_chat_menu_button(menu_button=button)
    except TelegramAPIError as exc:  # the bot works without it; /app still opens the Mini App
        logger.warning("the Mini App menu button was not set: {}", exc)


async def set_commands(bot: Bot, ctx: BotContext) -> None:
    for language in MENU_LANGUAGES:
        with in_locale(ctx.i18n, language or ctx.i18n.default_locale):
            subscriber = subscriber_commands()
            admin = subscriber + admin_commands()
        await bot.set_my_commands(subscriber, scope=BotCommandScopeDefault(), language_code=language)
        for admin_id in ctx.settings.admin_ids:
            try:
                await bot.set_my_commands(
                    admin, scope=BotCommandScopeChat(chat_id=admin_id), language_code=language
                )
            except TelegramAPIError as exc:  # e.g. the admin has not started the bot yet
                logger.warning("admin menu for {} not set: {}", admin_id, exc)
