"""Admin commands (``ADMIN_IDS`` only): /pause, /resume, /closeall, /status, /positions.

Anyone else gets a polite refusal, and the attempt is written to the audit log.
"""

from __future__ import annotations

import time
from typing import Any

from aiogram import Router
from aiogram.filters import Command, CommandObject, Filter
from aiogram.types import CallbackQuery, Message, TelegramObject
from aiogram.utils.i18n import gettext as _

from bot.callbacks import AdminCb
from bot.context import BotContext
from bot.keyboards import closeall_keyboard
from bot.outbox import Outgoing, enqueue
from bot.render import in_locale, number, signed_money
from bot.replies import edit_or_keep
from bot.status import actor_name, book_currency, positions_text, status_text
from engine.accounts.subscribers import actor_for
from engine.store.audit import audit

ADMIN_COMMANDS = ("pause", "resume", "closeall", "status", "positions")


class IsAdmin(Filter):
    async def __call__(self, event: TelegramObject, ctx: BotContext, **kwargs: Any) -> bool:
        sender = getattr(event, "from_user", None)
        return ctx.is_admin(sender.id if sender is not None else None)


async def _refuse(ctx: BotContext, telegram_id: int | None, chat_id: int | None, what: str) -> str:
    async with ctx.engine.db.session() as session:
        audit(
            session,
            actor_for(telegram_id) if telegram_id is not None else "tg:?",
            "admin.refused",
            what,
            chat_id=chat_id,
        )
    return _("Sorry, this command is for admins only.")


async def not_admin(message: Message, command: CommandObject, ctx: BotContext) -> None:
    sender = message.from_user.id if message.from_user else None
    await message.answer(await _refuse(ctx, sender, message.chat.id, f"/{command.command}"))


async def not_admin_button(query: CallbackQuery, callback_data: AdminCb, ctx: BotContext) -> None:
    chat = query.message.chat.id if query.message else None
    await query.answer(
        await _refuse(ctx, query.from_user.id, chat, f"button:{callback_data.action}"), show_alert=True
    )


async def pause(message: Message, ctx: BotContext) -> None:
    assert message.from_user is not None
    changed = await ctx.engine.control.set_paused(True, actor_for(message.from_user.id))
    if changed:
        await message.answer(
            _("⏸ Paused: no new signals go out and no approvals execute. /resume to continue.")
        )
    else:
        await message.answer(_("Already paused."))


async def resume(message: Message, ctx: BotContext) -> None:
    assert message.from_user is not None
    changed = await ctx.engine.control.set_paused(False, actor_for(message.from_user.id))
    if changed:
        await message.answer(_("▶️ Resumed: signals and executions are back on."))
    else:
        await message.answer(_("Not paused."))


async def status(message: Message, ctx: BotContext) -> None:
    assert ctx.engine.accounts is not None
    await message.answer(await status_text(ctx.engine.db, ctx.engine.accounts))


async def positions(message: Message, ctx: BotContext) -> None:
    await message.answer(await positions_text(ctx.engine.db))


async def closeall(message: Message) -> None:
    await message.answer(
        _("⚠️ Close <b>every</b> position on <b>every</b> account now?"), reply_markup=closeall_keyboard()
    )


async def closeall_confirmed(query: CallbackQuery, callback_data: AdminCb, ctx: BotContext) -> None:
    message = query.message if isinstance(query.message, Message) else None
    if callback_data.action != "closeall":
        await query.answer(_("Cancelled."))
        if message is not None:
            await edit_or_keep(message, _("Cancelled: nothing was closed."))
        return
    if time.time() - callback_data.issued > ctx.config.closeall_confirm_seconds:
        await query.answer(_("This confirmation has expired. Send /closeall again."), show_alert=True)
        return
    await query.answer(_("Closing every position…"))
    if message is not None:
        await edit_or_keep(message, _("Closing every position…"))
    actor = actor_for(query.from_user.id)
    summary = await ctx.engine.closer.close_everything("closeall", actor)
    async with ctx.engine.db.session() as session:
        audit(
            session,
            actor,
            "admin.closeall",
            None,
            requested=summary.requested,
            closed=summary.closed,
            failed=summary.failed,
            pnl=str(summary.pnl),
        )
    async with ctx.engine.db.session() as session:
        currency = await book_currency(session)
        who = await actor_name(session, actor)
    pnl = (
        signed_money(summary.pnl, currency)
        if currency is not None
        else _("{pnl} (accounts in several currencies; see each account)").format(pnl=number(summary.pnl))
    )
    report = _("Closed {closed} of {requested} positions. P&L: {pnl}.").format(
        closed=summary.closed, requested=summary.requested, pnl=pnl
    )
    if summary.failed:
        report += "\n" + _("{failed} could not be closed; see /positions.").format(failed=summary.failed)
    await _tell_ops(ctx, f"closeall:{query.id}", who, summary.closed, summary.requested, summary.failed, pnl)
    if message is not None:
        await edit_or_keep(message, report)
    elif query.bot is not None:
        await query.bot.send_message(query.from_user.id, report)


async def _tell_ops(
    ctx: BotContext, key: str, who: str, closed: int, requested: int, failed: int, pnl: str
) -> None:
    """The ops chat hears of every close-all: who asked and what it did (durable, through the outbox)."""
    chat = ctx.settings.ops_chat_id
    if chat is None:
        return
    with in_locale(ctx.i18n, ctx.config.ops_language):
        text = _("🧹 Close-all by {actor}: closed {closed} of {requested} positions, P&L {pnl}.").format(
            actor=who, closed=closed, requested=requested, pnl=pnl
        )
        if failed:
            text += "\n" + _("{failed} could not be closed; see /positions.").format(failed=failed)
    async with ctx.engine.db.session() as session:
        await enqueue(
            session,
            [
                Outgoing(
                    f"ops:{key}", chat, "sendMessage", {"chat_id": chat, "text": text, "parse_mode": "HTML"}
                )
            ],
        )
    ctx.wake_outbox()


def build_router() -> Router:
    """A fresh router (a router can belong to one dispatcher only)."""
    router = Router(name="admin")
    router.message.register(not_admin, Command(*ADMIN_COMMANDS), ~IsAdmin())
    router.callback_query.register(not_admin_button, AdminCb.filter(), ~IsAdmin())
    router.message.register(pause, Command("pause"))
    router.message.register(resume, Command("resume"))
    router.message.register(status, Command("status"))
    router.message.register(positions, Command("positions"))
    router.message.register(closeall, Command("closeall"))
    router.callback_query.register(closeall_confirmed, AdminCb.filter())
    return router
