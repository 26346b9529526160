"""Admin and ops summaries: the command layer's plain data (``engine.ops``) rendered for Telegram."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.render import esc, money, number, price, side_label, signed_money, utc_time
from engine.accounts.names import actor_display, display_name
from engine.ops.views import CloseAllResult, EngineStatus, InstanceStatus, Owner, PositionsReport
from engine.store.db import utcnow

MAX_ACCOUNTS = 20
MAX_POSITIONS = 30


async def actor_name(session: AsyncSession, actor: object) -> str:
    """An audit actor as people know it: ``tg:7000001`` becomes ``@alex``; the operator by that word."""
    name = await actor_display(session, actor)
    return esc(name) if name is not None else _("operator")


def owner_label(owner: Owner | None) -> str:
    if owner is None:
        return _("operator")
    return esc(display_name(owner))


def trading_state_label(state: str) -> str:
    return {
        "active": _("active"),
        "reducing": _("closes only"),
        "halted": _("halted"),
    }.get(state, esc(state))


def instance_lines(instances: tuple[InstanceStatus, ...]) -> list[str]:
    """The running instances (several ``tradebot run`` on one store): leader, accounts, Redis."""
    if not instances:
        return []
    alive = sum(1 for i in instances if i.alive)
    lines = [_("🖥 Instances: {alive} running").format(alive=alive)]
    for instance in instances:
        parts = [esc(instance.id)]
        if instance.alive:
            if instance.leader:
                parts.append(_("trading loop"))
            parts.append(_("MT5 accounts: {count}").format(count=instance.accounts))
            if instance.telegram_budget:
                parts.append(_("Telegram budget: {state}").format(state=esc(instance.telegram_budget)))
        else:
            ago = int((utcnow() - instance.seen_at).total_seconds())
            parts.append(_("gone (last seen {seconds} s ago)").format(seconds=ago))
        lines.append("• " + " · ".join(parts))
    return lines


def status_text(status: EngineStatus) -> str:
    lines = [_("<b>Engine status</b>")]
    if status.paused:
        who = esc(status.paused_by_name) if status.paused_by_name is not None else _("operator")
        lines.append(_("⏸ Paused by {actor}").format(actor=who))
    else:
        lines.append(_("▶️ Running"))
    if status.heartbeat_at is None:
        lines.append(_("💓 Last heartbeat: none yet"))
    else:
        ago = int((utcnow() - status.heartbeat_at).total_seconds())
        lines.append(
            _("💓 Last heartbeat: {time} ({seconds} s ago)").format(
                time=utc_time(status.heartbeat_at), seconds=ago
            )
        )
    if status.leader is not None and status.leader.alive:
        lines.append(_("🔁 Trading loop: {instance}").format(instance=esc(status.leader.instance)))
    else:
        lines.append(_("🔁 Trading loop: not running"))
    for gateway in status.gateways:
        if gateway.up:
            lines.append(_("🖥 Gateway {name}: up").format(name=esc(gateway.name)))
        else:
            lines.append(
                _("🖥 Gateway {name}: DOWN ({detail})").format(
                    name=esc(gateway.name), detail=esc(gateway.detail or "?")
                )
            )
    lines.extend(instance_lines(status.instances))
    if status.simulated_market:
        lines.append(_("⚠️ Paper accounts trade a simulated market (random walk prices)."))
    lines.append(_("📂 Open positions: {count}").format(count=status.open_positions))
    lines.append(_("🕒 Pending orders: {count}").format(count=status.pending_orders))
    lines.append(_("📬 Outbox: {count} pending").format(count=status.outbox_pending))
    lines.append(_("Accounts ({count}):").format(count=status.accounts_total))
    for account in status.accounts[:MAX_ACCOUNTS]:
        if account.equity is None:
            equity = _("unavailable")
        elif account.equity_live or account.equity_at is None:
            equity = money(account.equity, account.currency)
        else:
            equity = _("{equity} at {time}").format(
                equity=money(account.equity, account.currency), time=utc_time(account.equity_at)
            )
        line = _("• #{id} {kind} · {owner}: equity {equity}").format(
            id=account.id, kind=esc(account.kind), owner=owner_label(account.owner), equity=equity
        )
        line += " · " + _("{positions} open, {orders} pending").format(
            positions=account.open_positions, orders=account.pending_orders
        )
        if account.trading_state != "active":
            line += " · " + trading_state_label(account.trading_state)
        lines.append(line)
    if status.accounts_total > min(len(status.accounts), MAX_ACCOUNTS):
        shown = min(len(status.accounts), MAX_ACCOUNTS)
        lines.append(_("… and {count} more").format(count=status.accounts_total - shown))
    return "\n".join(lines)


def positions_text(report: PositionsReport) -> str:
    if not report.positions_total and not report.orders_total:
        return _("No open positions and no pending orders.")
    lines = [_("<b>Open positions ({count})</b>").format(count=report.positions_total)]
    for position in report.positions[:MAX_POSITIONS]:
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
                account=position.account_id,
                owner=owner_label(position.owner),
            )
        )
    if report.positions_total > len(report.positions[:MAX_POSITIONS]):
        shown = len(report.positions[:MAX_POSITIONS])
        lines.append(_("… and {count} more").format(count=report.positions_total - shown))
    if report.orders_total:
        lines.append("")
        lines.append(_("<b>Pending orders ({count})</b>").format(count=report.orders_total))
        lines.extend(pending_order_lines(report, with_owner=True))
    return "\n".join(lines)


def pending_order_lines(report: PositionsReport, *, with_owner: bool) -> list[str]:
    lines = []
    for order in report.orders[:MAX_POSITIONS]:
        text = _("• {side} {type} {volume} {symbol} at {price} · SL {sl} · TP {tp}").format(
            side=side_label(order.side),
            type=order_type_label(order.order_type),
            volume=price(order.volume),
            symbol=esc(order.symbol),
            price=price(order.price),
            sl=price(order.sl),
            tp=price(order.tp),
        )
        if with_owner:
            text += " · " + _("account #{account} ({owner})").format(
                account=order.account_id, owner=owner_label(order.owner)
            )
        lines.append(text)
    if report.orders_total > len(report.orders[:MAX_POSITIONS]):
        shown = len(report.orders[:MAX_POSITIONS])
        lines.append(_("… and {count} more").format(count=report.orders_total - shown))
    return lines


def order_type_label(order_type: str) -> str:
    return {"limit": _("limit"), "stop": _("stop"), "market": _("market")}.get(order_type, esc(order_type))


def closeall_pnl(result: CloseAllResult) -> str:
    if result.currency is not None:
        return signed_money(result.pnl, result.currency)
    return _("{pnl} (accounts in several currencies; see each account)").format(pnl=number(result.pnl))


def closeall_text(result: CloseAllResult) -> str:
    report = _("Closed {closed} of {requested} positions. P&L: {pnl}.").format(
        closed=result.closed, requested=result.requested, pnl=closeall_pnl(result)
    )
    if result.orders_requested:
        report += "\n" + _("Cancelled {cancelled} of {requested} pending orders.").format(
            cancelled=result.orders_cancelled, requested=result.orders_requested
        )
    if result.failed:
        report += "\n" + _("{failed} could not be closed; see /positions.").format(failed=result.failed)
    if result.orders_failed:
        report += "\n" + _("{failed} pending orders could not be cancelled; see /positions.").format(
            failed=result.orders_failed
        )
    return report


def closeall_ops_text(result: CloseAllResult) -> str:
    """What the ops chat hears of a close-all: who asked and what it did."""
    who = esc(result.actor_name) if result.actor_name is not None else _("operator")
    text = _("🧹 Close-all by {actor}: closed {closed} of {requested} positions, P&L {pnl}.").format(
        actor=who, closed=result.closed, requested=result.requested, pnl=closeall_pnl(result)
    )
    if result.orders_requested:
        text += "\n" + _("Cancelled {cancelled} of {requested} pending orders.").format(
            cancelled=result.orders_cancelled, requested=result.orders_requested
        )
    if result.failed:
        text += "\n" + _("{failed} could not be closed; see /positions.").format(failed=result.failed)
    return text


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
