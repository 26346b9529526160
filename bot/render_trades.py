"""Texts for a position's life after the fill (current locale): target and stop fills, closes by
hand, stop moves, the note on targets whose share joined another one, what a provider's update or
the subscriber's own Close / Close 50 % / Stop → entry did, and an expired pending order."""

from __future__ import annotations

from typing import Any

from aiogram.utils.i18n import gettext as _

from bot.render import esc, price, side_label, signed_money


def _numbers(values: Any) -> list[int]:
    return sorted(int(n) for n in values or [])


def fill_text(payload: dict[str, Any], currency: str) -> str:
    """One fill of a managed position (``position.partially_closed`` or ``position.closed``)."""
    volume = price(payload.get("fill_volume") or payload.get("volume"))
    at = price(payload.get("fill_price") or payload.get("price") or payload.get("close_price"))
    pnl = signed_money(payload.get("fill_profit") or payload.get("profit"), currency)
    kind = payload.get("kind")
    if kind == "target":
        numbers = _numbers(payload.get("targets"))
        if len(numbers) > 1:
            text = _("🎯 Targets {targets} hit: closed {volume} lots at {price} ({pnl}).").format(
                targets=", ".join(str(n) for n in numbers), volume=volume, price=at, pnl=pnl
            )
        else:
            text = _("🎯 Target {target} hit: closed {volume} lots at {price} ({pnl}).").format(
                target=numbers[0] if numbers else "?", volume=volume, price=at, pnl=pnl
            )
    elif kind == "stop":
        text = _("🛑 Stop hit: closed {volume} lots at {price} ({pnl}).").format(
            volume=volume, price=at, pnl=pnl
        )
    elif kind == "manual":
        text = _("✋ Closed in the terminal: {volume} lots at {price} ({pnl}).").format(
            volume=volume, price=at, pnl=pnl
        )
    else:
        text = _("📕 Closed: {volume} lots at {price} ({pnl}).").format(volume=volume, price=at, pnl=pnl)
    if payload.get("stop_moved"):
        text += " " + _("Stop moved to entry.")
    return text


def stop_moved_text(payload: dict[str, Any]) -> str | None:
    """A stop change on its own (``position.modified``); None when it was told with a fill."""
    if payload.get("with_fill") or payload.get("sl") is None:
        return None
    sl = price(payload.get("sl"))
    by = payload.get("by")
    if by == "breakeven":
        return _("🔒 Stop moved to entry ({price}).").format(price=sl)
    if by == "trailing":
        return _("📈 Stop trailed to {price}.").format(price=sl)
    if by == "hand":
        return _("✋ Stop moved in the terminal to {price}; the bot leaves it alone from now on.").format(
            price=sl
        )
    return _("Stop moved to {price}.").format(price=sl)


def joined_note(plans: list[Any]) -> str | None:
    """Targets whose share was below the minimum volume and closes with another target."""
    lines: list[str] = []
    for plan in plans:
        for share in plan or []:
            for joined in _numbers(share.get("joined")):
                lines.append(
                    _(
                        "Target {joined}'s share was below the minimum volume and joined target {target}."
                    ).format(joined=joined, target=share.get("number"))
                )
    return "\n".join(dict.fromkeys(lines)) or None


# ---------------------------------------------------------------- updates and the subscriber's controls


def control_labels() -> tuple[str, str, str]:
    """The buttons under a filled signal and in /positions: Close, Close 50 %, Stop → entry."""
    return _("Close"), _("Close 50 %"), _("Stop → entry")


def change_reason(code: str | None, reason: str | None) -> str:
    """Why an update or a control could not be applied to one position."""
    known = {
        "position_closed": _("the position is already closed"),
        "position_gone": _("the position is already closed"),
        "invalid_volume": _("that share is below the broker's minimum volume"),
        "stops_level": _("the new stop is too close to the price"),
        "freeze_level": _("the price is too close to the stop to change it now"),
        "wrong_side": _("the stop would be on the wrong side of the price"),
        "retcode_10018": _("the market is closed"),
        "market_closed": _("the market is closed"),
        "broker_unavailable": _("the broker could not be reached"),
        "not_filled": _("the order has not filled yet"),
        "order_filled": _("the order has already filled"),
        "unknown_symbol": _("your account cannot trade this instrument"),
    }
    if code in known:
        return known[code]
    return esc(reason or code or "?")


def _closing(payload: dict[str, Any]) -> bool:
    return payload.get("action") == "close"


def _percent(payload: dict[str, Any]) -> int:
    return int((payload.get("params") or {}).get("percent") or 100)


def change_text(event_type: str, payload: dict[str, Any], currency: str) -> str | None:
    """What an update (the provider's) or a control (the subscriber's own) did to one position:
    ``position.closed``, ``position.partially_closed``, ``position.modified`` or
    ``position.change_refused`` carrying ``source``."""
    mine = payload.get("source") == "subscriber"
    if event_type == "position.closed":
        values = {
            "volume": price(payload.get("volume")),
            "price": price(payload.get("close_price")),
            "pnl": signed_money(payload.get("profit"), currency),
        }
        if mine:
            return _("📕 Closed at your request: {volume} lots at {price} ({pnl}).").format(**values)
        return _("📕 Closed by the provider: {volume} lots at {price} ({pnl}).").format(**values)
    if event_type == "position.partially_closed":
        values = {
            "volume": price(payload.get("closed_volume")),
            "price": price(payload.get("price")),
            "pnl": signed_money(payload.get("profit"), currency),
            "remaining": price(payload.get("remaining_volume")),
        }
        if mine:
            return _(
                "✂️ Closed {volume} lots at {price} ({pnl}) at your request; {remaining} lots stay open."
            ).format(**values)
        return _(
            "✂️ The provider closed {volume} lots at {price} ({pnl}); {remaining} lots stay open."
        ).format(**values)
    if event_type == "position.modified":
        if payload.get("action") == "move_tp":
            return _("🎯 The provider moved the take profit to {price}.").format(
                price=price(payload.get("tp"))
            )
        sl = price(payload.get("sl"))
        if mine:
            return _("🔒 Stop moved to entry ({price}) at your request.").format(price=sl)
        if (payload.get("params") or {}).get("sl") == "entry":
            return _("🔒 The provider moved the stop to entry ({price}).").format(price=sl)
        return _("🛡 The provider moved the stop to {price}.").format(price=sl)
    if event_type == "position.change_refused":
        reason = change_reason(payload.get("reason_code"), payload.get("reason"))
        if not mine:
            if payload.get("order_id") and payload.get("position_id") is None:
                return None  # a resting order's levels: nothing the subscriber can act on
            return _("⚠️ The provider's update could not be applied to your position: {reason}.").format(
                reason=reason
            )
        if _closing(payload) and _percent(payload) < 100:
            return _("⚠️ Could not close {percent}% of the position: {reason}.").format(
                percent=_percent(payload), reason=reason
            )
        if _closing(payload):
            return _("⚠️ Could not close the position: {reason}.").format(reason=reason)
        return _("⚠️ Could not move the stop to entry: {reason}.").format(reason=reason)
    return None


def expired_text(payload: dict[str, Any]) -> str:
    """A resting order removed at the broker because its expiry passed (``order.expired``)."""
    return _(
        "⌛ Your pending order expired and was removed at the broker: {side} {volume} {symbol} at {price}."
    ).format(
        side=side_label(str(payload.get("side") or "")),
        volume=price(payload.get("volume")),
        symbol=esc(payload.get("symbol") or ""),
        price=price(payload.get("price")),
    )
