"""Texts for a position's life after the fill (current locale): target and stop fills, closes by
hand, stop moves, and the note on targets whose share joined another one."""

from __future__ import annotations

from typing import Any

from aiogram.utils.i18n import gettext as _

from bot.render import price, signed_money


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
