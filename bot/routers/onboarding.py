"""Onboarding: /start (registration, risk disclaimer, consent), /help, /stop, blocking, fallback."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.filters.chat_member_updated import KICKED, ChatMemberUpdatedFilter
from aiogram.types import CallbackQuery, ChatMemberUpdated, Message
from aiogram.utils.i18n import gettext as _

from bot.callbacks import ConsentCb, version_digest
from bot.commands import help_text
from bot.context import BotContext
from bot.i18n import pick_locale
from bot.keyboards import consent_keyboard
from bot.render import esc, money, utc_time
from engine.accounts.service import KIND_PAPER
from engine.accounts.subscribers import StaleConsent
from engine.billing.referrals import attribute_start  # billing: referral attribution on the first /start
from engine.store.db import utcnow
from engine.store.models import User


def disclaimer_text(version: str) -> str:
    return _(
        "⚠️ <b>Risk disclaimer</b> (version {version})\n\n"
        "Trading foreign exchange, metals, indices and crypto on margin carries a high level of risk "
        "and may not be suitable for everyone. You can lose more than you deposit. Signals are "
        "opinions, not advice; past results do not guarantee future results.\n\n"
        "Nothing is traded without your approval: each signal comes with Approve and Reject buttons, "
        "and an approved signal is executed on your own account at your own risk.\n\n"
        "Tap the button below to confirm that you have read and accept this disclaimer."
    ).format(version=esc(version))


async def send_disclaimer(message: Message, version: str) -> None:
    await message.answer(disclaimer_text(version), reply_markup=consent_keyboard(version))


async def start(message: Message, command: CommandObject, ctx: BotContext, user: User | None) -> None:
    sender = message.from_user
    if sender is None:
        return
    language = user.language if user is not None else pick_locale(sender.language_code)
    registration = await ctx.subscribers.register(
        sender.id,
        username=sender.username,
        first_name=sender.first_name,
        language=language,
        start_payload=command.args,
    )
    # billing: referral attribution (engine/billing/referrals.py), on the /start that registered the user
    await attribute_start(ctx.engine.db, registration.user.id, command.args, first_start=registration.created)
    if not ctx.subscribers.has_consented(registration.user):
        if registration.created:
            await message.answer(_("👋 Welcome! Before the first signal, please read this:"))
        elif registration.user.consent_version:
            await message.answer(_("The risk disclaimer has changed. Please read it again:"))
        await send_disclaimer(message, ctx.subscribers.consent_version)
        return
    if registration.reactivated:
        await message.answer(_("👋 Welcome back! You are subscribed again; new signals will reach you here."))
    else:
        await message.answer(_("You are subscribed. /help lists the commands."))


async def consent(query: CallbackQuery, callback_data: ConsentCb, ctx: BotContext) -> None:
    version = ctx.subscribers.consent_version
    message = query.message if isinstance(query.message, Message) else None
    if callback_data.digest != version_digest(version):
        await query.answer(
            _("This disclaimer was replaced by a newer version. Please read it again."), show_alert=True
        )
        if message is not None:
            await send_disclaimer(message, version)
        return
    try:
        result = await ctx.subscribers.consent(query.from_user.id, version)
    except (LookupError, StaleConsent):
        await query.answer(_("Please send /start first."), show_alert=True)
        return
    await query.answer(_("Thank you!"))
    if message is None:
        return
    agreed = _("✅ Accepted on {time}.").format(time=utc_time(result.user.consented_at or utcnow()))
    await message.edit_text(disclaimer_text(version) + "\n\n" + agreed, reply_markup=None)
    if not result.first_time:
        return
    account = result.account
    if account is None:
        await message.answer(
            _(
                "You are subscribed. Signals will reach you once you link your MetaTrader 5 account: send /account."
            )
        )
    elif account.kind == KIND_PAPER:
        await message.answer(
            _(
                "You are subscribed. Your paper account starts with {balance}. Signals will arrive here with "
                "Approve and Reject buttons. /help lists the commands."
            ).format(balance=money(account.balance, account.currency))
        )
    else:
        await message.answer(_("You are subscribed. Signals will arrive here. /help lists the commands."))


async def help_command(message: Message, ctx: BotContext) -> None:
    await message.answer(help_text(ctx.is_admin(message.from_user.id if message.from_user else None)))


async def stop(message: Message, ctx: BotContext, user: User | None) -> None:
    if user is not None and message.from_user is not None:
        await ctx.subscribers.unsubscribe(message.from_user.id)
    await message.answer(
        _("You are unsubscribed: no more signals will be sent. Send /start to subscribe again.")
    )


async def blocked(update: ChatMemberUpdated, ctx: BotContext) -> None:
    """The user blocked the bot. Unblocking alone does not subscribe again: /start does."""
    if update.chat.type == "private":
        await ctx.subscribers.mark_blocked(update.from_user.id)


async def fallback(message: Message) -> None:
    await message.answer(_("I did not understand that. /help lists the commands."))


def build_router() -> Router:
    """A fresh router (a router can belong to one dispatcher only)."""
    router = Router(name="onboarding")
    router.message.filter(F.chat.type == "private")
    router.message.register(start, CommandStart())
    router.callback_query.register(consent, ConsentCb.filter())
    router.message.register(help_command, Command("help"))
    router.message.register(stop, Command("stop"))
    router.my_chat_member.register(blocked, ChatMemberUpdatedFilter(member_status_changed=KICKED))
    router.message.register(fallback, F.text)
    return router
