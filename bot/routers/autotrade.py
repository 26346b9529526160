"""Auto-execution settings (/auto) and the one-tap "close" button on auto-executed positions.

``/auto`` shows the opt-in and how orders are sized (the subscriber's risk limits, as in
/settings → Risk) with an on/off button; ``/auto on|off`` changes the opt-in, ``/auto risk 0.5``
(sizing by 0.5 % of equity) and ``/auto maxvol 0.2`` (``off``: back to the default) the limits.
Turning it on needs a plan with auto-execution. The admin's ``/pause`` and the drawdown guard
stop auto-execution as they stop approvals.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _

from bot.billing_texts import AutoCb
from bot.context import BotContext
from bot.render import signed_money
from bot.render_risk import field_value, sizing_text
from bot.replies import edit_or_keep
from engine.accounts.subscribers import actor_for
from engine.approvals.auto_execute import AutoTradeError, AutoTradeView
from engine.states import PositionStatus
from engine.store.models import ExecutionAccount, Position, User


def auto_text(view: AutoTradeView) -> str:
    state = _("on") if view.enabled else _("off")
    text = _(
        "🤖 <b>Auto-execution</b>: {state}\n"
        "Sizing: {sizing}\nMax volume: {cap}\n\n"
        "When it is on, each signal executes on your account without a tap, sized by your risk "
        "limits, and this chat announces the order with a button to close it.\n"
        "Change: /auto risk 0.5, /auto maxvol 0.2 (or off), /auto on, /auto off; every limit in "
        "/settings → Risk."
    ).format(state=state, sizing=sizing_text(view.limits), cap=field_value("max_lots", view.limits.max_lots))
    if not view.entitled:
        text += "\n\n" + _("Your plan does not include auto-execution: /subscribe.")
    return text


def auto_keyboard(view: AutoTradeView) -> InlineKeyboardMarkup:
    if view.enabled:
        button = InlineKeyboardButton(
            text=_("Turn auto-execution off"), callback_data=AutoCb(action="off").pack()
        )
    else:
        button = InlineKeyboardButton(
            text=_("Turn auto-execution on"), callback_data=AutoCb(action="on").pack()
        )
    return InlineKeyboardMarkup(inline_keyboard=[[button]])


def error_text(exc: AutoTradeError) -> str:
    texts = {
        "bad_risk": _("The risk must be above 0 and at most 10 (percent of equity), two decimals at most."),
        "bad_volume": _("The max volume must be from 0.01 to 100 lots, two decimals at most."),
        "unknown_user": _("Please send /start to the bot first."),
        "plan_required": _("Your plan does not include auto-execution: /subscribe."),
    }
    return texts.get(exc.code, str(exc))


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text.replace(",", "."))
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


async def auto_command(message: Message, command: CommandObject, ctx: BotContext) -> None:
    if message.from_user is None:
        return
    auto = ctx.engine.auto_execute
    uid = message.from_user.id
    args = (command.args or "").lower().split()
    try:
        if not args:
            view = await auto.view(uid)
            if view is None:
                raise AutoTradeError("unknown_user", "send /start first")
        elif args in (["on"], ["off"]):
            view = await auto.configure(uid, enabled=args[0] == "on")
        elif len(args) == 2 and args[0] == "risk":
            view = await auto.configure(uid, risk_percent=_decimal(args[1]) or Decimal(-1))
        elif len(args) == 2 and args[0] in ("maxvol", "max_volume", "volume"):
            if args[1] in ("off", "none"):
                view = await auto.configure(uid, clear_max_volume=True)
            else:
                view = await auto.configure(uid, max_volume=_decimal(args[1]) or Decimal(-1))
        else:
            await message.answer(_("Usage: /auto, /auto on, /auto off, /auto risk 0.5, /auto maxvol 0.2"))
            return
    except AutoTradeError as exc:
        await message.answer(error_text(exc))
        return
    await message.answer(auto_text(view), reply_markup=auto_keyboard(view))


async def toggle(query: CallbackQuery, callback_data: AutoCb, ctx: BotContext) -> None:
    try:
        view = await ctx.engine.auto_execute.configure(
            query.from_user.id, enabled=callback_data.action == "on"
        )
    except AutoTradeError as exc:
        await query.answer(error_text(exc), show_alert=True)
        return
    await query.answer(_("Saved."))
    if isinstance(query.message, Message):
        await edit_or_keep(query.message, auto_text(view), auto_keyboard(view))


async def close(query: CallbackQuery, callback_data: AutoCb, ctx: BotContext, user: User | None) -> None:
    async with ctx.engine.db.session() as session:
        position = await session.get(Position, callback_data.position_id)
        account = await session.get(ExecutionAccount, position.account_id) if position else None
    if position is None or account is None or user is None or account.owner_id != user.id:
        await query.answer(_("This button is not yours."), show_alert=True)
        return
    if position.status == PositionStatus.CLOSED:
        await query.answer(_("This position is already closed."))
    else:
        summary = await ctx.engine.closer.close_position(position.id, "user", actor_for(query.from_user.id))
        if summary.closed:
            await query.answer(
                _("Closed. Result: {pnl}").format(pnl=signed_money(summary.pnl, account.currency))
            )
        elif summary.requested:
            await query.answer(
                _("The position could not be closed yet; try again in a moment."), show_alert=True
            )
            return
        else:
            await query.answer(_("This position is already closed."))
    if isinstance(query.message, Message):
        await edit_or_keep(query.message, query.message.html_text, InlineKeyboardMarkup(inline_keyboard=[]))


def build_router() -> Router:
    """A fresh router (a router can belong to one dispatcher only)."""
    router = Router(name="autotrade")
    router.message.register(auto_command, Command("auto"), F.chat.type == "private")
    router.callback_query.register(toggle, AutoCb.filter(F.action.in_({"on", "off"})))
    router.callback_query.register(close, AutoCb.filter(F.action == "close"))
    return router
