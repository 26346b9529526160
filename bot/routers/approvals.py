"""Approve / Reject taps, on a DM or on the channel post.

The tap is answered right after the decision is committed (a toast, or an alert when the user
must act); the DM edits and the execution result follow through the outbox, driven by events.
"""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery
from aiogram.utils.i18n import gettext as _

from bot.callbacks import APPROVE, ChannelCb, DecisionCb
from bot.context import BotContext
from bot.fanout import CHANNEL_START_PAYLOAD
from engine.approvals.service import DecisionOutcome, Verdict


def verdict_text(outcome: DecisionOutcome, ctx: BotContext, via_channel: bool) -> tuple[str, bool]:
    """(answer text, show as alert) for a tap's outcome."""
    v = outcome.verdict
    if v is Verdict.APPROVED:
        if via_channel:
            return _("✅ Approved. The order is being sent to your account; the result comes by DM."), False
        return _("✅ Approved. Sending the order…"), False
    if v is Verdict.REJECTED:
        return _("❌ Rejected."), False
    if v is Verdict.ALREADY_APPROVED:
        return _("You already approved this signal."), False
    if v is Verdict.ALREADY_REJECTED:
        return _("You already rejected this signal."), False
    if v is Verdict.EXPIRED:
        return _("⌛ This signal has expired."), True
    if v is Verdict.NOT_YOURS:
        return _("This button is not yours."), True
    if v is Verdict.PAUSED:
        return _("⏸ Trading is paused by an admin. Try again when it resumes."), True
    if v is Verdict.NO_ACCOUNT:
        return _("You have no execution account. Send /account to link one."), True
    if v in (Verdict.UNKNOWN_USER, Verdict.NEEDS_CONSENT):
        link = ctx.start_link(CHANNEL_START_PAYLOAD)
        if link:
            return _("To act on signals, start the bot and accept the risk disclaimer first: {link}").format(
                link=link
            ), True
        return _("To act on signals, start the bot and accept the risk disclaimer first."), True
    return _("This signal is no longer available."), True


async def dm_tap(query: CallbackQuery, callback_data: DecisionCb, ctx: BotContext) -> None:
    message = query.message
    if message is None:
        await query.answer(_("This signal is no longer available."), show_alert=True)
        return
    outcome = await ctx.approvals.decide_dm(
        callback_data.decision_id,
        telegram_id=query.from_user.id,
        chat_id=message.chat.id,
        message_id=message.message_id,
        approve=callback_data.action == APPROVE,
        execute=False,
    )
    text, alert = verdict_text(outcome, ctx, via_channel=False)
    try:
        await query.answer(text, show_alert=alert)
    finally:
        ctx.approvals.execute(outcome)  # after the answer: the toast does not wait for the broker


async def channel_tap(query: CallbackQuery, callback_data: ChannelCb, ctx: BotContext) -> None:
    message = query.message
    if message is None or message.chat.id != ctx.settings.signal_channel_id:
        await query.answer(_("This signal is no longer available."), show_alert=True)
        return
    outcome = await ctx.approvals.decide_channel(
        callback_data.signal_id,
        telegram_id=query.from_user.id,
        chat_id=message.chat.id,
        message_id=message.message_id,
        approve=callback_data.action == APPROVE,
        execute=False,
    )
    text, alert = verdict_text(outcome, ctx, via_channel=True)
    try:
        await query.answer(text, show_alert=alert)
    finally:
        ctx.approvals.execute(outcome)


def build_router() -> Router:
    """A fresh router (a router can belong to one dispatcher only)."""
    router = Router(name="approvals")
    router.callback_query.register(dm_tap, DecisionCb.filter())
    router.callback_query.register(channel_tap, ChannelCb.filter())
    return router
