"""/settings → Risk: the subscriber's own risk limits (``engine.risk.limits``).

The panel shows each limit (marked "(default)" where the operator's default applies) with a
button per limit. Sizing modes and instruments are taps; a number is a short conversation (aiogram
FSM): the bot asks for the value, and a value that is not a number, out of range or too precise
is answered with what is allowed, nothing is saved, and the bot waits for another try (or Cancel).
"default" puts a limit back to the operator's default.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.callbacks import RiskCb
from bot.context import BotContext
from bot.keyboards import settings_keyboard
from bot.render_risk import (
    cancel_keyboard,
    instruments_keyboard,
    instruments_text,
    limit_error_text,
    prompt_text,
    risk_keyboard,
    risk_text,
)
from bot.replies import edit_or_keep
from bot.routers.settings import settings_text
from engine.accounts.subscribers import actor_for
from engine.risk.limits import NUMBER_FIELDS, LimitError
from engine.store.db import utcnow
from engine.store.models import User


class RiskInput(StatesGroup):
    value = State()  # waiting for the number of the field named in the state's data


_NOT_A_COMMAND = F.text & ~F.text.startswith("/")


async def risk_button(
    query: CallbackQuery, callback_data: RiskCb, ctx: BotContext, user: User | None, state: FSMContext
) -> None:
    message = query.message if isinstance(query.message, Message) else None
    if user is None or message is None:
        await query.answer(_("Please send /start first."), show_alert=True)
        return
    service = ctx.engine.risk_limits
    uid = user.telegram_id
    action, value = callback_data.action, callback_data.value
    if action == "back":
        await state.clear()
        await query.answer()
        await edit_or_keep(
            message,
            settings_text(user.language, user.notifications),
            settings_keyboard(user.language, user.notifications),
        )
        return
    if action == "cancel":
        await state.clear()
        await query.answer(_("Cancelled."))
        await edit_or_keep(message, _("Cancelled."))
        return
    if action == "ask" and value in NUMBER_FIELDS:
        view = await service.view(uid)
        if view is None:
            await query.answer(_("Please send /start first."), show_alert=True)
            return
        await state.set_state(RiskInput.value)
        await state.update_data(field=value)
        await query.answer()
        await message.answer(prompt_text(value, view), reply_markup=cancel_keyboard())
        return
    try:
        if action == "sizing":
            view = await service.set_sizing(uid, value, actor_for(uid))
        elif action == "inst":
            view = await service.toggle_instrument(uid, value, actor_for(uid))
        else:
            found = await service.view(uid)
            if found is None:
                raise LimitError("unknown_user", "send /start first")
            view = found
    except LimitError as exc:
        await query.answer(limit_error_text(exc), show_alert=True)
        return
    await state.clear()
    await query.answer(_("Saved.") if action in ("sizing", "inst") else None)
    if action in ("instruments", "inst"):
        await edit_or_keep(message, instruments_text(), instruments_keyboard(view))
    else:
        await edit_or_keep(message, risk_text(view, utcnow()), risk_keyboard(view))


async def got_value(message: Message, state: FSMContext, ctx: BotContext) -> None:
    sender = message.from_user
    if sender is None:
        return
    field = str((await state.get_data()).get("field", ""))
    try:
        view = await ctx.engine.risk_limits.set_number(
            sender.id, field, message.text or "", actor_for(sender.id)
        )
    except LimitError as exc:
        if exc.code in ("unknown_field", "unknown_user"):
            await state.clear()
            await message.answer(limit_error_text(exc))
            return
        await message.answer(limit_error_text(exc), reply_markup=cancel_keyboard())
        return
    await state.clear()
    await message.answer(_("Saved.") + "\n\n" + risk_text(view, utcnow()), reply_markup=risk_keyboard(view))


def build_router() -> Router:
    """A fresh router (a router can belong to one dispatcher only)."""
    router = Router(name="settings_risk")
    router.callback_query.register(risk_button, RiskCb.filter())
    router.message.register(got_value, StateFilter(RiskInput.value), F.chat.type == "private", _NOT_A_COMMAND)
    return router
