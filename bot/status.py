"""Admin and ops summaries: engine status, open positions, accounts' equity, outbox depth."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from aiogram.utils.i18n import gettext as _
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.outbox import pending_count
from bot.render import esc, money, price, side_label, utc_time
from engine.accounts.service import AccountService
from engine.risk.control import PAUSE_KEY
from engine.states import PositionStatus
from engine.store.db import Database, utcnow
from engine.store.models import EngineState, ExecutionAccount, Position, User

HEARTBEAT_KEY = "heartbeat"
MAX_ACCOUNTS = 20
MAX_POSITIONS = 30
_OPEN = (PositionStatus.OPEN.value, PositionStatus.CLOSING.value)


async def actor_name(session: AsyncSession, actor: object) -> str:
    """An audit actor as people know it: ``tg:7000001`` becomes ``@alex`` (or the first name)."""
    text = str(actor or "?")
    if text.startswith("tg:") and text[3:].lstrip("-").isdigit():
        user = await session.scalar(select(User).where(User.telegram_id == int(text[3:])))
        if user is not None:
            return _owner(user)
    if text == "operator" or text == "cli":
        return _("operator")
    return esc(text)


async def account_currencies(session: AsyncSession) -> dict[int, str]:
    rows = (await session.execute(select(ExecutionAccount.id, ExecutionAccount.currency))).all()
    return {account_id: currency or "USD" for account_id, currency in rows}


async def book_currency(session: AsyncSession) -> str | None:
    """The currency every active account keeps, or None when they differ (or there are none)."""
    found = set(
        (
            await session.scalars(
                select(ExecutionAccount.currency).where(ExecutionAccount.active.is_(True)).distinct()
            )
        ).all()
    )
    return (found.pop() or "USD") if len(found) == 1 else None


def _owner(user: User | None) -> str:
    if user is None:
        return _("operator")
    if user.username:
        return "@" + esc(user.username)
    return esc(user.first_name or user.telegram_id)


def _heartbeat_at(row: EngineState | None) -> datetime | None:
    if row is None:
        return None
    raw = (row.value or {}).get("at")
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw)
        except ValueError:
            pass
    return row.updated_at


async def status_text(db: Database, accounts: AccountService, *, live_timeout: float = 3.0) -> str:
    async with db.session() as session:
        pause = await session.get(EngineState, PAUSE_KEY)
        heartbeat = await session.get(EngineState, HEARTBEAT_KEY)
        depth = await pending_count(session)
        open_positions = int(
            await session.scalar(select(func.count(Position.id)).where(Position.status.in_(_OPEN))) or 0
        )
        pause_value: dict[str, Any] = (pause.value or {}) if pause is not None else {}
        paused_by = await actor_name(session, pause_value.get("by"))
        rows = (
            await session.execute(
                select(ExecutionAccount, User)
                .outerjoin(User, User.id == ExecutionAccount.owner_id)
                .where(ExecutionAccount.active.is_(True))
                .order_by(ExecutionAccount.id)
            )
        ).all()
    lines = [_("<b>Engine status</b>")]
    if pause_value.get("paused"):
        lines.append(_("⏸ Paused by {actor}").format(actor=paused_by))
    else:
        lines.append(_("▶️ Running"))
    beat = _heartbeat_at(heartbeat)
    if beat is None:
        lines.append(_("💓 Last heartbeat: none yet"))
    else:
        ago = int((utcnow() - beat).total_seconds())
        lines.append(
            _("💓 Last heartbeat: {time} ({seconds} s ago)").format(time=utc_time(beat), seconds=ago)
        )
    lines.append(_("📂 Open positions: {count}").format(count=open_positions))
    lines.append(_("📬 Outbox: {count} pending").format(count=depth))
    lines.append(_("Accounts ({count}):").format(count=len(rows)))
    shown = rows[:MAX_ACCOUNTS]
    views = await asyncio.gather(*(accounts.view(account, seconds=live_timeout) for account, _u in shown))
    for (account, user), view in zip(shown, views, strict=True):
        if view.snapshot is not None:
            equity = money(view.snapshot.equity, view.snapshot.currency)
        else:
            equity = _("unavailable")
        lines.append(
            _("• #{id} {kind} · {owner}: equity {equity}").format(
                id=account.id, kind=esc(account.kind), owner=_owner(user), equity=equity
            )
        )
    if len(rows) > MAX_ACCOUNTS:
        lines.append(_("… and {count} more").format(count=len(rows) - MAX_ACCOUNTS))
    return "\n".join(lines)


async def positions_text(db: Database) -> str:
    async with db.session() as session:
        rows = (
            await session.execute(
                select(Position, ExecutionAccount, User)
                .join(ExecutionAccount, ExecutionAccount.id == Position.account_id)
                .outerjoin(User, User.id == ExecutionAccount.owner_id)
                .where(Position.status.in_(_OPEN))
                .order_by(Position.opened_at)
            )
        ).all()
    if not rows:
        return _("No open positions.")
    lines = [_("<b>Open positions ({count})</b>").format(count=len(rows))]
    for position, account, user in rows[:MAX_POSITIONS]:
        lines.append(
            _(
                "• {side} {volume} {symbol} at {price} · SL {sl} · TP {tp} · account #{account} ({owner})"
            ).format(
                side=side_label(position.side),
                volume=price(position.volume),
                symbol=esc(position.symbol),
                price=price(position.open_price),
                sl=price(position.sl),
                tp=price(position.tp),
                account=account.id,
                owner=_owner(user),
            )
        )
    if len(rows) > MAX_POSITIONS:
        lines.append(_("… and {count} more").format(count=len(rows) - MAX_POSITIONS))
    return "\n".join(lines)


def heartbeat_text(
    payload: dict[str, Any], depth: int, paused: bool, currencies: dict[int, str] | None = None
) -> str:
    """The ops summary of one ``heartbeat`` event (no broker calls: the loop measured it all)."""
    raw_at = payload.get("at")
    try:
        at = datetime.fromisoformat(raw_at) if isinstance(raw_at, str) else utcnow()
    except ValueError:
        at = utcnow()
    lines = [_("💓 <b>Heartbeat</b> {time}").format(time=utc_time(at))]
    lines.append(_("⏸ Paused by {actor}").format(actor=_("an admin")) if paused else _("▶️ Running"))
    lines.append(
        _("Signals: {signals} · trades: {trades} (since start)").format(
            signals=payload.get("lifetime_signals", "?"), trades=payload.get("lifetime_trades", "?")
        )
    )
    lines.append(_("📂 Open positions: {count}").format(count=payload.get("positions_open", "?")))
    lines.append(
        _("Errors: {errors} · failing accounts: {failing} · loop tick {ms} ms").format(
            errors=payload.get("errors_total", 0),
            failing=payload.get("accounts_failing", 0),
            ms=payload.get("loop_duration_ms", "?"),
        )
    )
    lines.append(_("📬 Outbox: {count} pending").format(count=depth))
    equity = payload.get("equity") or {}
    if isinstance(equity, dict) and equity:
        lines.append(_("Equity by account:"))
        known = currencies or {}
        for account_id, value in list(equity.items())[:MAX_ACCOUNTS]:
            currency = known.get(int(account_id), "USD") if str(account_id).isdigit() else "USD"
            lines.append(f"• #{esc(account_id)}: {money(value, currency)}")
    return "\n".join(lines)
