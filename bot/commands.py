"""Every command the bot answers, grouped, in one place: the /help text and the command menus
(setMyCommands, English and Spanish; the admin commands added for ``ADMIN_IDS`` only) are both
made from ``command_groups``, so a command cannot be in one and missing from the other; and the
menu button that opens the Mini App (setChatMenuButton)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault
from aiogram.utils.i18n import gettext as _
from loguru import logger

from bot.context import BotContext
from bot.keyboards import menu_button
from bot.render import in_locale

MENU_LANGUAGES: tuple[str | None, ...] = (None, "es")  # None: the default menu (English)


@dataclass(frozen=True, slots=True)
class Group:
    title: Callable[[], str]
    commands: Callable[[], list[BotCommand]]
    admin: bool = False


def _getting_started() -> list[BotCommand]:
    return [
        BotCommand(command="start", description=_("Subscribe and accept the risk disclaimer")),
        BotCommand(command="help", description=_("What the bot does")),
        BotCommand(command="settings", description=_("Language, notifications, risk limits")),
        BotCommand(command="stop", description=_("Stop receiving signals")),
    ]


def _trading() -> list[BotCommand]:
    return [
        BotCommand(command="account", description=_("Your account, balance and positions")),
        BotCommand(command="app", description=_("Your trading console (Mini App)")),
        BotCommand(command="auto", description=_("Automatic execution on or off")),
        BotCommand(command="positions", description=_("Your open positions, with Close buttons")),
        BotCommand(command="stats", description=_("Performance and equity chart")),
        BotCommand(command="export", description=_("Your closed trades as CSV")),
    ]


def _plans() -> list[BotCommand]:
    return [
        BotCommand(command="subscribe", description=_("Plans and payment in Stars")),
        BotCommand(command="invite", description=_("Your referral link")),
        BotCommand(command="referrals", description=_("Invited users and referral balance")),
    ]


def _admin() -> list[BotCommand]:
    return [
        BotCommand(command="status", description=_("Engine status, equity, outbox")),
        BotCommand(command="positions", description=_("Every open position")),
        BotCommand(command="pause", description=_("Pause signals and executions")),
        BotCommand(command="resume", description=_("Resume signals and executions")),
        BotCommand(command="closeall", description=_("Close every position")),
        BotCommand(command="refund", description=_("Refund a Stars payment")),
        BotCommand(command="payout", description=_("Pay out a referrer's balance")),
        BotCommand(command="leaderboard", description=_("Referrers by balance")),
    ]


def command_groups(is_admin: bool) -> list[Group]:
    groups = [
        Group(lambda: _("Getting started"), _getting_started),
        Group(lambda: _("Trading"), _trading),
        Group(lambda: _("Plans and referrals"), _plans),
        Group(lambda: _("Admin"), _admin, admin=True),
    ]
    return [g for g in groups if is_admin or not g.admin]


def subscriber_commands() -> list[BotCommand]:
    return [c for g in command_groups(False) for c in g.commands()]


def admin_commands() -> list[BotCommand]:
    return [c for g in command_groups(True) if g.admin for c in g.commands()]


def help_text(is_admin: bool) -> str:
    """/help in the current locale: every command the user can run, by group."""
    blocks = [_("<b>Commands</b>")]
    for group in command_groups(is_admin):
        lines = [f"<b>{group.title()}</b>"]
        lines += [f"/{c.command}: {c.description}" for c in group.commands()]
        blocks.append("\n".join(lines))
    blocks.append(
        _(
            "Each signal arrives with Approve and Reject buttons; an approval executes the order on "
            "your account and this chat shows the result."
        )
    )
    return "\n\n".join(blocks)


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
            extra = admin_commands()
            taken = {c.command for c in extra}  # /positions: the admin's wider one replaces it
            admin = [c for c in subscriber if c.command not in taken] + extra
        await bot.set_my_commands(subscriber, scope=BotCommandScopeDefault(), language_code=language)
        for admin_id in ctx.settings.admin_ids:
            try:
                await bot.set_my_commands(
                    admin, scope=BotCommandScopeChat(chat_id=admin_id), language_code=language
                )
            except TelegramAPIError as exc:  # e.g. the admin has not started the bot yet
                logger.warning("admin menu for {} not set: {}", admin_id, exc)
