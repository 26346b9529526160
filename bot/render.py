"""Message texts for subscribers: signals, decisions and execution results (HTML, localized).

Every function reads the current locale (aiogram's i18n context), so callers outside an update
(the fan-out, the notifier) wrap calls in ``in_locale``. Anything a producer or a user wrote
is HTML-escaped here; numbers are Decimals, formatted without losing digits.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from babel.numbers import format_decimal

from engine.risk.limits import rounded_rr, signal_reward_risk
from engine.store.models import Signal

TWO = Decimal("0.01")


@contextmanager
def in_locale(i18n: I18n, locale: str) -> Iterator[None]:
    with i18n.context(), i18n.use_locale(locale if locale in i18n.available_locales else i18n.default_locale):
        yield


def current_locale() -> str:
    i18n = I18n.get_current(no_error=True)
    return i18n.current_locale if i18n is not None else "en"


def esc(value: object) -> str:
    return html.escape(str(value), quote=False)


def price(value: Decimal | str | None) -> str:
    if value is None:
        return "—"
    d = Decimal(str(value))
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def money(value: Decimal | str | None, currency: str = "") -> str:
    if value is None:
        return "—"
    amount = Decimal(str(value)).quantize(TWO, rounding=ROUND_HALF_UP)
    text = format_decimal(amount, format="#,##0.00", locale=current_locale())
    return f"{text} {esc(currency)}".strip()


def signed_money(value: Decimal | str | None, currency: str = "") -> str:
    if value is None:
        return "—"
    d = Decimal(str(value))
    return ("+" if d > 0 else "") + money(d, currency)


def utc_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def reward_risk(signal: Signal) -> Decimal | None:
    """The R:R the signal declares, as shown (two decimals); subscribers' minimum R:R compares it."""
    rr = signal_reward_risk(signal)
    return None if rr is None else rounded_rr(rr)


def side_label(side: str) -> str:
    return _("BUY") if side == "buy" else _("SELL")


def order_type_label(order_type: str) -> str:
    labels = {"market": _("market"), "limit": _("limit"), "stop": _("stop")}
    return labels.get(order_type, esc(order_type))


def signal_text(signal: Signal) -> str:
    icon = "🟢" if signal.side == "buy" else "🔴"
    lines = [
        f"{icon} <b>{side_label(signal.side)} {esc(signal.instrument)}</b> · {order_type_label(signal.order_type)}",
    ]
    if signal.entry is not None:
        lines.append(_("Entry: <code>{entry}</code>").format(entry=price(signal.entry)))
    else:
        lines.append(_("Entry: at market"))
    lines.append(_("Stop loss: <code>{sl}</code>").format(sl=price(signal.sl)))
    lines.append(_("Take profit: <code>{tp}</code>").format(tp=price(signal.tp)))
    rr = reward_risk(signal)
    rr_text = price(rr) if rr is not None else "—"
    lines.append(_("R:R {rr} · Risk {risk}%").format(rr=rr_text, risk=price(signal.risk_percent)))
    if signal.strategy:
        lines.append(_("Strategy: {strategy}").format(strategy=esc(signal.strategy)))
    if signal.confidence is not None:
        pct = (signal.confidence * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        lines.append(_("Confidence: {confidence}%").format(confidence=pct))
    if signal.note:
        lines.append(_("Note: {note}").format(note=f"<i>{esc(signal.note)}</i>"))
    lines.append(_("Expires: {time}").format(time=utc_time(signal.expires_at)))
    return "\n".join(lines)


def decision_line(status: str, decided_at: datetime | None) -> str:
    when = utc_time(decided_at) if decided_at else ""
    if status == "approved":
        return _("✅ Approved at {time}. Sending the order…").format(time=when)
    if status == "rejected":
        return _("❌ Rejected at {time}.").format(time=when)
    return _("⌛ Expired: no decision was taken in time.")


def limit_refusal(code: str | None, params: dict[str, Any]) -> str | None:
    """A refusal by one of the subscriber's own risk limits (``engine.risk.limit_gates``), with its
    facts; None for other codes."""
    p = {k: esc(v) for k, v in params.items()}
    if code == "limit_daily_loss":
        until = params.get("until")
        when = utc_time(datetime.fromisoformat(str(until))) if until else "—"
        return _("your daily loss limit ({limit}%) was reached; new trades resume at {time}").format(
            limit=p.get("limit", "?"), time=when
        )
    if code == "limit_instrument":
        return _("you turned {instrument} off in /settings → Risk").format(
            instrument=p.get("instrument", "?")
        )
    if code == "limit_min_rr":
        return _("its reward-to-risk {rr} is below your minimum {min_rr}").format(
            rr=p.get("rr", "?"), min_rr=p.get("min_rr", "?")
        )
    if code == "limit_max_positions":
        return _("you already have {open} open trades; your maximum is {max}").format(
            open=p.get("open", "?"), max=p.get("max", "?")
        )
    if code == "limit_open_risk":
        return _("it would bring your open risk to {total}% of equity; your maximum is {limit}%").format(
            total=p.get("total", "?"), limit=p.get("limit", "?")
        )
    if code == "max_lots":
        return _(
            "your maximum of {limit} lots per trade is below the broker's minimum of {minimum} lots"
        ).format(limit=price(params.get("limit")), minimum=price(params.get("volume_min")))
    return None


def refusal_reason(code: str | None, reason: str | None, params: dict[str, Any] | None = None) -> str:
    """A localized reason for a refused order (with its facts where the code has them), falling back
    to the engine's own words."""
    limited = limit_refusal(code, params or {})
    if limited is not None:
        return limited
    known = {
        "paused": _("trading is paused by an admin"),
        "account_halted": _("trading on your account is halted"),
        "account_reducing": _("your account only closes positions for now"),
        "cancelled": _("the order was cancelled (an admin's close-all or the drawdown guard)"),
        "drawdown": _("your account is past its drawdown limit"),
        "user_inactive": _("your subscription is not active"),
        "expired": _("the signal expired before it could be executed"),
        "unknown_symbol": _("your account cannot trade this instrument"),
        "market_closed": _("the market is closed"),
        "insufficient_equity": _("not enough equity for this risk"),
        "insufficient_margin": _("not enough free margin"),
        "min_rr": _("the reward-to-risk ratio is below the minimum"),
        "min_stop_distance": _("the stop loss is too close to the price"),
        "min_tp_distance": _("the take profit is too close to the price"),
        "volume_below_min": _("the position size would be below the broker's minimum"),
        "max_volume": _("the position size would exceed the maximum"),
        "invalid_levels": _("the stop loss or take profit is on the wrong side of the price"),
        "entry_wrong_side": _("the entry price is on the wrong side of the market"),
        "entry_too_close": _("the entry price is too close to the market"),
        "no_price": _("no price is available for the instrument"),
        "symbol_not_tradable": _("the instrument is not tradable now"),
        "retries_exhausted": _("the broker could not be reached"),
        "plan_required": _("your plan does not include this; see /subscribe"),
        "plan_expired": _("your plan has expired; see /subscribe"),
        "auto_disabled": _("automatic execution is off for your account"),
    }
    if code in known:
        return known[code]
    if code == "broker" and reason:
        return _("the broker refused it: {reason}").format(reason=esc(reason))
    return esc(reason or code or "?")


def result_line(event_type: str, payload: dict[str, Any]) -> str:
    volume = price(payload.get("volume"))
    at = price(payload.get("price"))
    symbol = esc(payload.get("symbol") or "")
    if event_type == "order.filled":
        return _("🟢 Filled: {volume} lots {symbol} at {price}.").format(
            volume=volume, symbol=symbol, price=at
        )
    if event_type == "order.placed":
        return _("🕒 Order placed: {volume} lots {symbol} at {price}, waiting for the price.").format(
            volume=volume, symbol=symbol, price=at
        )
    reason = refusal_reason(payload.get("reason_code"), payload.get("reason"), payload.get("reason_params"))
    return _("⚠️ Not executed: {reason}.").format(reason=reason)


def position_closed_text(payload: dict[str, Any], currency: str) -> str:
    reasons = {
        "sl": _("stop loss hit"),
        "tp": _("take profit hit"),
        "closeall": _("closed by an admin"),
        "drawdown": _("closed by the drawdown guard"),
    }
    reason = str(payload.get("reason") or "")
    return _(
        "📕 Position closed: {side} {volume} {symbol} at {price} ({reason}).\nResult: <b>{pnl}</b>"
    ).format(
        side=side_label(str(payload.get("side") or "")),
        volume=price(payload.get("volume")),
        symbol=esc(payload.get("symbol") or ""),
        price=price(payload.get("close_price")),
        reason=reasons.get(reason, esc(reason or _("closed"))),
        pnl=signed_money(payload.get("profit"), currency),
    )


def drawdown_owner_text(payload: dict[str, Any]) -> str:
    return _(
        "🛑 Your account reached its drawdown limit ({percent}%). Its positions are being closed and "
        "new signals will not execute on it until equity recovers."
    ).format(
        percent=price(payload.get("drawdown_percent") or payload.get("cap_percent") or payload.get("percent"))
    )
