"""Texts and keyboards of /settings → Risk, and the daily-loss notice (localized, HTML).

The limits themselves, their ranges and defaults are the engine's (``engine.risk.limits``); this
module only says them in the subscriber's language.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _

from bot.callbacks import RiskCb
from bot.render import esc, price, utc_time
from engine.risk.limits import NUMBER_FIELDS, EffectiveLimits, LimitError, RiskView, Sizing

# The numeric limits in the order the panel lists them (sizing values first).
PANEL_FIELDS = (
    "max_lots",
    "max_positions",
    "max_open_risk_percent",
    "daily_loss_percent",
    "min_rr",
)


def field_label(field: str) -> str:
    labels = {
        "risk_percent": _("Risk per trade"),
        "fixed_lots": _("Fixed lots per trade"),
        "max_lots": _("Max lots per trade"),
        "max_positions": _("Max open trades"),
        "max_open_risk_percent": _("Max total open risk"),
        "daily_loss_percent": _("Daily loss limit"),
        "min_rr": _("Minimum R:R"),
        "instruments": _("Instruments"),
        "sizing": _("Sizing"),
    }
    return labels.get(field, esc(field))


def sizing_label(mode: Sizing) -> str:
    labels = {
        Sizing.SIGNAL: _("Signal's risk"),
        Sizing.RISK_PERCENT: _("Risk %"),
        Sizing.FIXED: _("Fixed lots"),
    }
    return labels[mode]


def sizing_text(limits: EffectiveLimits) -> str:
    if limits.sizing is Sizing.RISK_PERCENT:
        return _("{risk}% of equity per trade").format(risk=price(limits.risk_percent))
    if limits.sizing is Sizing.FIXED:
        return _("{lots} lots per trade").format(lots=price(limits.fixed_lots))
    return _("the risk % each signal gives, of equity")


def field_value(field: str, value: Decimal | int | None) -> str:
    """One limit's value as the panel shows it."""
    if value is None:
        return _("none")
    if field in ("max_open_risk_percent", "daily_loss_percent", "risk_percent"):
        return _("{percent}% of equity").format(percent=price(Decimal(value)))
    if field in ("max_lots", "fixed_lots"):
        return _("{lots} lots").format(lots=price(Decimal(value)))
    return price(Decimal(value))


def _line(field: str, value: str, own: bool) -> str:
    line = f"{field_label(field)}: <b>{value}</b>"
    return line if own else line + " " + _("(default)")


def risk_text(view: RiskView, now: datetime) -> str:
    limits = view.limits
    lines = ["⚖️ " + "<b>" + _("Risk limits") + "</b>"]
    lines.append(_line("sizing", sizing_text(limits), "sizing" in limits.own))
    for field in PANEL_FIELDS:
        lines.append(_line(field, field_value(field, getattr(limits, field)), field in limits.own))
    off = sorted(limits.instruments_off & set(view.instruments))
    if off:
        lines.append(_("Instruments off: {names}").format(names=esc(", ".join(off))))
    else:
        lines.append(_("All instruments on."))
    if limits.paused(now) and limits.paused_until is not None:
        lines.append(
            "\n"
            + _("⏸ Your daily loss limit was reached: no new trades until {time}.").format(
                time=utc_time(limits.paused_until)
            )
        )
    lines.append(
        "\n"
        + _(
            "Signals below your minimum R:R or for an instrument you turned off are not offered to "
            "you. Tap a limit to change it; (default) marks the operator's defaults."
        )
    )
    return "\n".join(lines)


def _button(text: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data)


def risk_keyboard(view: RiskView) -> InlineKeyboardMarkup:
    current = view.limits.sizing
    modes = [
        _button(
            ("• " if mode is current else "") + sizing_label(mode),
            RiskCb(action="sizing", value=mode.value).pack(),
        )
        for mode in (Sizing.SIGNAL, Sizing.RISK_PERCENT, Sizing.FIXED)
    ]

    def ask(field: str) -> InlineKeyboardButton:
        return _button("✏️ " + field_label(field), RiskCb(action="ask", value=field).pack())

    rows = [
        modes,
        [ask("risk_percent"), ask("fixed_lots")],
        [ask("max_lots"), ask("max_positions")],
        [ask("max_open_risk_percent"), ask("daily_loss_percent")],
        [ask("min_rr"), _button("🗂 " + field_label("instruments"), RiskCb(action="instruments").pack())],
        [_button(_("« Back"), RiskCb(action="back").pack())],
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def instruments_text() -> str:
    return _(
        "🗂 <b>Instruments</b>\nTap one to turn it on or off. Signals for an instrument that is off "
        "are not offered to you."
    )


def instruments_keyboard(view: RiskView) -> InlineKeyboardMarkup:
    rows = [
        [
            _button(
                ("🚫 " if name in view.limits.instruments_off else "✅ ") + name,
                RiskCb(action="inst", value=name).pack(),
            )
        ]
        for name in view.instruments
    ]
    rows.append([_button(_("« Back"), RiskCb(action="show").pack())])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _range(field: str) -> str:
    bounds = NUMBER_FIELDS[field]
    if bounds.low_inclusive:
        return _("from {low} to {high}").format(low=price(bounds.low), high=price(bounds.high))
    return _("above {low}, up to {high}").format(low=price(bounds.low), high=price(bounds.high))


def prompt_text(field: str, view: RiskView) -> str:
    default = field_value(field, getattr(view.defaults, field))
    return _(
        "Send the new value of <b>{name}</b> ({range}), or <code>default</code> to use the default "
        "({default})."
    ).format(name=field_label(field), range=_range(field), default=default)


def cancel_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[_button(_("Cancel"), RiskCb(action="cancel").pack())]])


def limit_error_text(exc: LimitError) -> str:
    """Why a value was refused; nothing was saved."""
    name = field_label(exc.field)
    if exc.code == "not_a_number":
        return _("❌ That is not a number. Send a number such as 2 or 0.5, or <code>default</code>.")
    if exc.code == "out_of_range":
        if exc.field in NUMBER_FIELDS and NUMBER_FIELDS[exc.field].whole:
            return _("❌ {name} must be a whole number {range}. Nothing was saved; try again:").format(
                name=name, range=_range(exc.field)
            )
        if exc.field in NUMBER_FIELDS:
            return _("❌ {name} must be {range}. Nothing was saved; try again:").format(
                name=name, range=_range(exc.field)
            )
    if exc.code == "too_precise":
        return _("❌ Use at most two decimals. Nothing was saved; try again:")
    if exc.code == "unknown_user":
        return _("Please send /start first.")
    return _("❌ {reason}").format(reason=esc(exc))


def daily_loss_text(payload: dict[str, Any]) -> str:
    until = payload.get("until")
    when = utc_time(datetime.fromisoformat(str(until))) if until else "—"
    return _(
        "🛑 Your daily loss limit of {limit}% was reached (down {loss}% today). No new trades until "
        "{time}, when the next trading day starts. Your open positions stay as they are."
    ).format(limit=price(payload.get("limit_percent")), loss=price(payload.get("loss_percent")), time=when)
