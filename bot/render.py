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

from bot import formatting
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


# Numbers and dates in the current locale, through ``bot.formatting`` (Babel).


def price(value: Decimal | str | None) -> str:
    return formatting.price(value, current_locale())


def number(value: Decimal | str | int | None, places: int = 2) -> str:
    return formatting.number(value, current_locale(), places)


def money(value: Decimal | str | None, currency: str) -> str:
    return formatting.money(value, esc(currency), current_locale())


def signed_money(value: Decimal | str | None, currency: str) -> str:
    return formatting.money(value, esc(currency), current_locale(), signed=True)


def utc_time(moment: datetime) -> str:
    return formatting.when(moment, current_locale())


def duration(seconds: int) -> str:
    return formatting.duration(seconds, current_locale())


def reward_risk(signal: Signal) -> Decimal | None:
    """The R:R the signal declares, as shown (two decimals); subscribers' minimum R:R compares it."""
    rr = signal_reward_risk(signal)
    return None if rr is None else rounded_rr(rr)


def side_label(side: str) -> str:
    return _("BUY") if side == "buy" else _("SELL")


def order_type_label(order_type: str) -> str:
    labels = {"market": _("market"), "limit": _("limit"), "stop": _("stop")}
    return labels.get(order_type, esc(order_type))


def signal_text(signal: Signal, order_expiry_hours: int | None = None) -> str:
    """The signal as subscribers see it. Two clocks, both shown: the approval window (the signal's
    ``ttl_seconds``) and, for limit and stop orders, how long the order rests at the broker after
    an approval (``ORDER_EXPIRY_HOURS``): the order does not end with the approval window."""
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
    lines.append(_("R:R {rr} · Risk {risk}%").format(rr=number(rr), risk=number(signal.risk_percent)))
    if signal.strategy:
        lines.append(_("Strategy: {strategy}").format(strategy=esc(signal.strategy)))
    if signal.confidence is not None:
        pct = (signal.confidence * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        lines.append(_("Confidence: {confidence}%").format(confidence=number(pct, 0)))
    if signal.note:
        lines.append(_("Note: {note}").format(note=f"<i>{esc(signal.note)}</i>"))
    lines.append(
        _("⏳ Approve within {window} (until {time})").format(
            window=duration(signal.ttl_seconds), time=utc_time(signal.expires_at)
        )
    )
    if signal.order_type != "market" and order_expiry_hours is not None:
        lines.append(
            _("🕒 If approved, the {kind} order stays open up to {life} unless filled").format(
                kind=order_type_label(signal.order_type), life=duration(order_expiry_hours * 3600)
            )
        )
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


def _detail(details: dict[str, Any], name: str) -> Decimal | None:
    try:
        value = Decimal(str(details[name]))
    except (KeyError, ArithmeticError, ValueError):
        return None
    return value if value.is_finite() else None


def refusal_numbers(code: str | None, details: dict[str, Any] | None) -> str | None:
    """The refusal with its numbers (current locale), or None when the details do not carry them."""
    d = details or {}
    if code == "min_rr":
        rr, minimum = _detail(d, "rr"), _detail(d, "min_rr")
        if rr is not None and minimum is not None:
            rr = rr.quantize(TWO, rounding=ROUND_HALF_UP)
            return _("the reward-to-risk ratio at the market is {rr}, below the minimum {minimum}").format(
                rr=number(rr), minimum=number(minimum)
            )
    if code in ("min_stop_distance", "min_tp_distance"):
        distance, required = _detail(d, "distance_points"), _detail(d, "required_points")
        if distance is not None and required is not None:
            text = (
                _("the stop loss is {distance} points from the price; the minimum is {required} points")
                if code == "min_stop_distance"
                else _(
                    "the take profit is {distance} points from the price; the minimum is {required} points"
                )
            )
            return text.format(distance=number(distance, 1), required=number(required, 0))
    if code == "entry_wrong_side":
        entry, quote = _detail(d, "entry"), _detail(d, "quote")
        if entry is not None and quote is not None:
            return _("the entry {entry} is on the wrong side of the market price {quote}").format(
                entry=price(entry), quote=price(quote)
            )
    if code == "entry_too_close":
        distance, level = _detail(d, "distance_points"), _detail(d, "stops_level")
        if distance is not None and level is not None:
            return _(
                "the entry is {distance} points from the market; the broker needs at least {level}"
            ).format(distance=number(distance, 1), level=number(level, 0))
    if code == "invalid_levels":
        level, reference = _detail(d, "level"), _detail(d, "reference")
        if level is not None and reference is not None:
            text = (
                _("the stop loss {level} is on the wrong side of the price {reference}")
                if d.get("leg") == "stop loss"
                else _("the take profit {level} is on the wrong side of the price {reference}")
            )
            return text.format(level=price(level), reference=price(reference))
    if code == "volume_below_min":
        volume, minimum = _detail(d, "volume"), _detail(d, "volume_min")
        if volume is not None and minimum is not None:
            return _("your risk allows {volume} lots, below the broker's minimum of {minimum} lots").format(
                volume=price(volume), minimum=price(minimum)
            )
    if code == "market_closed" and isinstance(d.get("opens_at"), str):
        try:
            opens = datetime.fromisoformat(d["opens_at"])
        except ValueError:
            return None
        return _("the market is closed; it opens {time}").format(time=utc_time(opens))
    return None


def result_line(event_type: str, payload: dict[str, Any]) -> str:
    volume = price(payload.get("volume"))
    at = price(payload.get("price"))
    symbol = esc(payload.get("symbol") or "")
    if event_type == "order.filled":
        return _("🟢 Filled: {volume} lots {symbol} at {price}.").format(
            volume=volume, symbol=symbol, price=at
        )
    if event_type == "order.placed":
        placed = _("🕒 Order placed: {volume} lots {symbol} at {price}, waiting for the price.").format(
            volume=volume, symbol=symbol, price=at
        )
        expires = payload.get("expires_at")
        if isinstance(expires, str):
            placed += "\n" + _("It is cancelled if not filled by {time}.").format(
                time=utc_time(datetime.fromisoformat(expires))
            )
        return placed
    details = payload.get("details") if isinstance(payload.get("details"), dict) else None
    reason = refusal_numbers(payload.get("reason_code"), details) or refusal_reason(
        payload.get("reason_code"), payload.get("reason"), details
    )
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
