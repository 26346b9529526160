"""Referrals: /invite (the subscriber's link), /referrals (invited, paying, balance); for admins
/leaderboard and /payout <user> <amount> (a negative ledger entry, never below a zero balance)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from bot.billing_texts import stars
from bot.context import BotContext
from bot.render import esc, price
from engine.accounts.names import display_name
from engine.accounts.subscribers import actor_for
from engine.billing.referrals import REFERRAL_PREFIX, ReferralError
from engine.store.models import User


def invite_link(ctx: BotContext, user: User) -> str:
    payload = REFERRAL_PREFIX + user.referral_code
    return ctx.start_link(payload) or payload


async def invite(message: Message, ctx: BotContext, user: User | None) -> None:
    if user is None:
        await message.answer(_("Please send /start to the bot first."))
        return
    share = ctx.engine.billing.catalog.referral_share_percent
    await message.answer(
        _(
            "🔗 Your invite link:\n{link}\n\n"
            "Whoever starts the bot with it is linked to you, and you earn {share}% of each of their "
            "payments. /referrals shows your invitations and balance."
        ).format(link=esc(invite_link(ctx, user)), share=price(share))
    )


async def referrals(message: Message, ctx: BotContext, user: User | None) -> None:
    if user is None or message.from_user is None:
        await message.answer(_("Please send /start to the bot first."))
        return
    summary = await ctx.engine.referrals.summary(message.from_user.id)
    assert summary is not None
    text = _(
        "👥 <b>Your referrals</b>\nInvited: {invited}\nPaying: {paying}\n"
        "Earned: {earned}\nPaid out: {paid}\nBalance: <b>{balance}</b>"
    ).format(
        invited=summary.invited,
        paying=summary.paying,
        earned=stars(summary.earned),
        paid=stars(summary.paid_out),
        balance=stars(summary.balance),
    )
    if summary.invited_names:
        text += "\n\n" + ", ".join(esc(n) for n in summary.invited_names)
    text += "\n\n" + _("Your invite link: {link}").format(link=esc(invite_link(ctx, user)))
    await message.answer(text)


async def leaderboard(message: Message, ctx: BotContext) -> None:
    rows = await ctx.engine.referrals.leaderboard(20)
    if not rows:
        await message.answer(_("Nobody has invited anyone yet."))
        return
    lines = [_("🏆 <b>Referral leaderboard</b>")]
    for n, row in enumerate(rows, 1):
        lines.append(
            _(
                "{n}. {name} ({id}): invited {invited}, paying {paying}, earned {earned}, balance {balance}"
            ).format(
                n=n,
                name=esc(row.name),
                id=row.telegram_id,
                invited=row.invited,
                paying=row.paying,
                earned=stars(row.earned),
                balance=stars(row.balance),
            )
        )
    await message.answer("\n".join(lines))


async def payout(message: Message, command: CommandObject, ctx: BotContext) -> None:
    assert message.from_user is not None  # admins only (bot.admin_gate)
    sender = message.from_user.id
    args = (command.args or "").split(maxsplit=2)
    amount: Decimal | None = None
    if len(args) >= 2:
        try:
            amount = Decimal(args[1].replace(",", "."))
        except InvalidOperation:
            amount = None
    if amount is None:
        await message.answer(_("Usage: /payout &lt;user id or @username&gt; &lt;amount&gt; [note]"))
        return
    target = await ctx.subscribers.find(args[0])
    if target is None:
        await message.answer(_("No such user."))
        return
    try:
        left = await ctx.engine.referrals.payout(
            target, amount, actor_for(sender), args[2] if len(args) > 2 else None
        )
    except ReferralError as exc:
        if exc.code == "insufficient_balance":
            await message.answer(
                _("The payout is larger than the balance ({detail}).").format(detail=esc(exc))
            )
        else:
            await message.answer(_("The payout must be a positive amount."))
        return
    await message.answer(
        _("Paid out {amount} to {name}; balance left: {balance}.").format(
            amount=stars(amount), name=esc(display_name(target)), balance=stars(left)
        )
    )


def build_router() -> Router:
    """A fresh router (a router can belong to one dispatcher only)."""
    router = Router(name="referrals")
    router.message.filter(F.chat.type == "private")
    router.message.register(invite, Command("invite"))
    router.message.register(referrals, Command("referrals"))
    router.message.register(leaderboard, Command("leaderboard"))
    router.message.register(payout, Command("payout"))
    return router
