"""Admin commands (``ADMIN_IDS`` only): /pause, /resume, /closeall, /status, /positions.

Each renders the command layer (``engine.ops``): the same actions, results and audit lines as
`tradebot pause|resume|closeall|status|positions` and the admin REST API. /pause, /resume,
/closeall and /positions take an optional scope: ``account ID`` (or ``#ID``) or
``subscriber TELEGRAM_ID``.

Anyone else is stopped before these handlers by ``bot.admin_gate`` (a refusal and an audit line).
"""

from __future__ import annotations

import time

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.callbacks import AdminCb, scope_from_token, scope_token
from bot.context import BotContext
from bot.keyboards import closeall_keyboard
from bot.outbox import Outgoing, enqueue
from bot.render import esc, in_locale
from bot.replies import edit_or_keep
from bot.status import (
    MAX_ACCOUNTS,
    MAX_POSITIONS,
    closeall_ops_text,
    closeall_text,
    positions_text,
    status_text,
    trading_state_label,
)
from engine.accounts.subscribers import actor_for
from engine.ops.views import CloseAllResult, OpsError, PauseResult, Scope, ScopeKind


def parse_scope(args: str | None) -> Scope | None:
    """``""`` everything, ``account 12`` (or ``#12``) one account, ``subscriber 7000001`` one
    subscriber's accounts; None when the arguments say something else."""
    words = (args or "").split()
    if not words:
        return Scope.everything()
    if len(words) == 1 and words[0].startswith("#") and words[0][1:].isdigit():
        return Scope.account(int(words[0][1:]))
    if len(words) == 2 and words[1].isdigit() and int(words[1]) > 0:
        if words[0] == "account":
            return Scope.account(int(words[1]))
        if words[0] == "subscriber":
            return Scope.subscriber(int(words[1]))
    return None


def _usage(command: str) -> str:
    return _("Usage: /{command}, /{command} account ID or /{command} subscriber TELEGRAM_ID").format(
        command=command
    )


def ops_error_text(error: OpsError) -> str:
    return _("Nothing changed: {reason}.").format(reason=esc(error.message))


def pause_text(result: PauseResult) -> str:
    if result.scope.kind is ScopeKind.EVERYTHING:
        if result.action == "pause":
            if result.changed:
                return _("⏸ Paused: no new signals go out and no approvals execute. /resume to continue.")
            return _("Already paused.")
        return _("▶️ Resumed: signals and executions are back on.") if result.changed else _("Not paused.")
    lines = []
    for change in result.accounts:
        state = trading_state_label(change.trading_state)
        if change.outcome == "still_in_drawdown":
            lines.append(
                _("Account #{account}: still past its drawdown limit; stays {state}.").format(
                    account=change.account_id, state=state
                )
            )
        elif change.outcome == "changed":
            lines.append(_("Account #{account}: now {state}.").format(account=change.account_id, state=state))
        else:
            lines.append(
                _("Account #{account}: unchanged ({state}).").format(account=change.account_id, state=state)
            )
    return "\n".join(lines)


async def _scoped(message: Message, command: CommandObject) -> Scope | None:
    scope = parse_scope(command.args)
    if scope is None:
        await message.answer(_usage(command.command))
    return scope


async def pause(message: Message, command: CommandObject, ctx: BotContext) -> None:
    assert message.from_user is not None and ctx.engine.ops is not None
    scope = await _scoped(message, command)
    if scope is None:
        return
    try:
        result = await ctx.engine.ops.pause(scope, actor_for(message.from_user.id))
    except OpsError as exc:
        await message.answer(ops_error_text(exc))
        return
    await message.answer(pause_text(result))


async def resume(message: Message, command: CommandObject, ctx: BotContext) -> None:
    assert message.from_user is not None and ctx.engine.ops is not None
    scope = await _scoped(message, command)
    if scope is None:
        return
    try:
        result = await ctx.engine.ops.resume(scope, actor_for(message.from_user.id))
    except OpsError as exc:
        await message.answer(ops_error_text(exc))
        return
    await message.answer(pause_text(result))


async def status(message: Message, ctx: BotContext) -> None:
    assert ctx.engine.ops is not None
    await message.answer(status_text(await ctx.engine.ops.status(limit=MAX_ACCOUNTS)))


async def positions(message: Message, command: CommandObject, ctx: BotContext) -> None:
    assert ctx.engine.ops is not None
    scope = await _scoped(message, command)
    if scope is None:
        return
    try:
        report = await ctx.engine.ops.positions(scope, limit=MAX_POSITIONS)
    except OpsError as exc:
        await message.answer(ops_error_text(exc))
        return
    await message.answer(positions_text(report))


async def closeall(message: Message, command: CommandObject) -> None:
    scope = await _scoped(message, command)
    if scope is None:
        return
    if scope.kind is ScopeKind.EVERYTHING:
        question = _(
            "⚠️ Close <b>every</b> position and cancel <b>every</b> pending order on <b>every</b> account now?"
        )
    else:
        question = _("⚠️ Close every position and cancel every pending order of {scope} now?").format(
            scope=esc(scope.describe())
        )
    await message.answer(question, reply_markup=closeall_keyboard(scope=scope_token(scope)))


async def closeall_confirmed(query: CallbackQuery, callback_data: AdminCb, ctx: BotContext) -> None:
    assert ctx.engine.ops is not None
    message = query.message if isinstance(query.message, Message) else None
    if callback_data.action != "closeall":
        await query.answer(_("Cancelled."))
        if message is not None:
            await edit_or_keep(message, _("Cancelled: nothing was closed."))
        return
    if time.time() - callback_data.issued > ctx.config.closeall_confirm_seconds:
        await query.answer(_("This confirmation has expired. Send /closeall again."), show_alert=True)
        return
    scope = scope_from_token(callback_data.scope)
    await query.answer(_("Closing every position…"))
    if message is not None:
        await edit_or_keep(message, _("Closing every position…"))
    try:
        result = await ctx.engine.ops.close_all(scope, actor_for(query.from_user.id))
    except OpsError as exc:
        report = ops_error_text(exc)
    else:
        report = closeall_text(result)
        await _tell_ops(ctx, f"closeall:{query.id}", result)
    if message is not None:
        await edit_or_keep(message, report)
    elif query.bot is not None:
        await query.bot.send_message(query.from_user.id, report)


async def _tell_ops(ctx: BotContext, key: str, result: CloseAllResult) -> None:
    """The ops chat hears of every close-all: who asked and what it did (durable, through the outbox)."""
    chat = ctx.settings.ops_chat_id
    if chat is None:
        return
    with in_locale(ctx.i18n, ctx.config.ops_language):
        text = closeall_ops_text(result)
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
    router.message.register(pause, Command("pause"))
    router.message.register(resume, Command("resume"))
    router.message.register(status, Command("status"))
    router.message.register(positions, Command("positions"))
    router.message.register(closeall, Command("closeall"))
    router.callback_query.register(closeall_confirmed, AdminCb.filter())
    return router
