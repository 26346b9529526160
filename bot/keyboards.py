"""Inline keyboards (labels localized in the current locale)."""

from __future__ import annotations

import time
from typing import Any

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, MenuButtonWebApp, WebAppInfo
from aiogram.utils.i18n import gettext as _

from bot.callbacks import (
    APPROVE,
    CLOSE,
    CLOSE_HALF,
    NO,
    REJECT,
    STOP_TO_ENTRY,
    AccountCb,
    AdminCb,
    ChannelCb,
    ConsentCb,
    DecisionCb,
    PositionCb,
    PositionConfirmCb,
    RiskCb,
    SettingsCb,
    version_digest,
)
from bot.render_trades import control_labels

LANGUAGES = {"en": "English", "es": "Español"}
NO_KEYBOARD: dict[str, list[list[dict[str, str]]]] = {"inline_keyboard": []}


def _button(text: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data)


def decision_markup(decision_id: str, labels: tuple[str, str] | None = None) -> dict[str, Any]:
    """A DM signal's Approve / Reject keyboard as Bot API JSON (``labels`` from ``decision_labels``)."""
    approve, reject = labels or decision_labels()
    return {
        "inline_keyboard": [
            [
                {
                    "text": approve,
                    "callback_data": DecisionCb(action=APPROVE, decision_id=decision_id).pack(),
                },
                {"text": reject, "callback_data": DecisionCb(action=REJECT, decision_id=decision_id).pack()},
            ]
        ]
    }


def decision_labels() -> tuple[str, str]:
    return _("✅ Approve"), _("❌ Reject")


def channel_keyboard(signal_id: str, start_link: str | None) -> InlineKeyboardMarkup:
    approve, reject = decision_labels()
    rows = [
        [
            _button(approve, ChannelCb(action=APPROVE, signal_id=signal_id).pack()),
            _button(reject, ChannelCb(action=REJECT, signal_id=signal_id).pack()),
        ]
    ]
    if start_link:
        rows.append([InlineKeyboardButton(text=_("🤖 Open the bot"), url=start_link)])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def consent_keyboard(version: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(_("I understand and agree"), ConsentCb(digest=version_digest(version)).pack())]
        ]
    )


def settings_keyboard(language: str, notifications: bool) -> InlineKeyboardMarkup:
    langs = [
        _button(("• " if code == language else "") + name, SettingsCb(field="lang", value=code).pack())
        for code, name in LANGUAGES.items()
    ]
    toggle = _("🔕 Turn notifications off") if notifications else _("🔔 Turn notifications on")
    notify = _button(toggle, SettingsCb(field="notify", value="off" if notifications else "on").pack())
    risk = _button(_("⚖️ Risk limits"), RiskCb(action="show").pack())
    return InlineKeyboardMarkup(inline_keyboard=[langs, [notify], [risk]])


def account_keyboard(kind: str | None) -> InlineKeyboardMarkup:
    rows = [[_button(_("🔄 Refresh"), AccountCb(action="refresh").pack())]]
    if kind == "mt5":
        rows.append([_button(_("Unlink MT5 (back to paper)"), AccountCb(action="unlink").pack())])
    else:
        rows.append([_button(_("🔗 Link MT5"), AccountCb(action="link").pack())])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def cancel_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[_button(_("Cancel"), AccountCb(action="cancel").pack())]])


def closeall_keyboard(now: float | None = None, *, scope: str = "e") -> InlineKeyboardMarkup:
    issued = int(now if now is not None else time.time())
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _button(
                    _("Yes, close everything"), AdminCb(action="closeall", issued=issued, scope=scope).pack()
                ),
                _button(_("Cancel"), AdminCb(action="cancel", issued=issued, scope=scope).pack()),
            ]
        ]
    )


def control_buttons(ref: str, prefix: str = "") -> list[InlineKeyboardButton]:
    """Close, Close 50 %, Stop → entry for ``ref`` (``d<decision id>`` or ``p<position id>``)."""
    labels = control_labels()
    actions = (CLOSE, CLOSE_HALF, STOP_TO_ENTRY)
    return [
        _button(prefix + label, PositionCb(action=action, ref=ref).pack())
        for label, action in zip(labels, actions, strict=True)
    ]


def controls_markup(decision_id: str) -> dict[str, Any]:
    """The buttons under a filled signal, as Bot API JSON (for the outbox)."""
    row = [{"text": b.text, "callback_data": b.callback_data} for b in control_buttons("d" + decision_id)]
    return {"inline_keyboard": [row]}


def positions_keyboard(position_ids: list[int]) -> InlineKeyboardMarkup | None:
    """/positions: one row of buttons per position, numbered like the list."""
    rows = [control_buttons(f"p{pid}", f"{n}· ") for n, pid in enumerate(position_ids, 1)]
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def close_confirm_keyboard(action: str, ref: str, now: float | None = None) -> InlineKeyboardMarkup:
    issued = int(now if now is not None else time.time())
    yes = _("Yes, close half") if action == CLOSE_HALF else _("Yes, close")
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _button(yes, PositionConfirmCb(action=action, ref=ref, issued=issued).pack()),
                _button(_("Cancel"), PositionConfirmCb(action=NO, ref=ref, issued=issued).pack()),
            ]
        ]
    )


# ---------------------------------------------------------------- the Mini App (/app, the menu button)


def app_button_text() -> str:
    return _("📱 Open the app")


def menu_button_text() -> str:
    return _("📱 App")


def app_keyboard(url: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=app_button_text(), web_app=WebAppInfo(url=url))]]
    )


def menu_button(url: str) -> MenuButtonWebApp:
    return MenuButtonWebApp(text=menu_button_text(), web_app=WebAppInfo(url=url))
