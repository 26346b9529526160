"""/settings: language (English, Spanish), notifications (on: with sound; off: silent), and the
button to the subscriber's risk limits (``bot.routers.settings_risk``)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.callbacks import SettingsCb
from bot.context import BotContext
from bot.keyboards import LANGUAGES, settings_keyboard
from bot.replies import edit_or_keep
from engine.store.models import User


def settings_text(language: str, notifications: bool) -> str:
    # Whole lines, not "on"/"off" alone: a bare "on" is shared with other features' catalogs,
    # whose translation may agree with another noun ("activada" vs "activadas").
    state = _("Notifications: on") if notifications else _("Notifications: off (messages arrive silently)")
    return _("<b>Settings</b>\nLanguage: {language}\n{notifications}").format(
        language=LANGUAGES.get(language, language), notifications=state
    )


async def show(message: Message, user: User | None, state: FSMContext) -> None:
    await state.clear()  # /settings leaves a half-done risk-limit question
    if user is None:
        await message.answer(_("Please send /start first."))
        return
    await message.answer(
        settings_text(user.language, user.notifications),
        reply_markup=settings_keyboard(user.language, user.notifications),
    )


async def change(
    query: CallbackQuery, callback_data: SettingsCb, ctx: BotContext, user: User | None, i18n: I18n
) -> None:
    if user is None:
        await query.answer(_("Please send /start first."), show_alert=True)
        return
    language, notifications = user.language, user.notifications
    if callback_data.field == "lang" and callback_data.value in LANGUAGES:
        language = callback_data.value
        await ctx.subscribers.set_language(user.telegram_id, language)
    elif callback_data.field == "notify":
        notifications = callback_data.value == "on"
        await ctx.subscribers.set_notifications(user.telegram_id, notifications)
    else:
        await query.answer()
        return
    with i18n.use_locale(language):
        await query.answer(_("Saved."))
        if isinstance(query.message, Message):
            await edit_or_keep(
                query.message,
                settings_text(language, notifications),
                settings_keyboard(language, notifications),
            )


def build_router() -> Router:
    """A fresh router (a router can belong to one dispatcher only)."""
    router = Router(name="settings")
    router.message.register(show, Command("settings"), F.chat.type == "private")
    router.callback_query.register(change, SettingsCb.filter())
    return router
