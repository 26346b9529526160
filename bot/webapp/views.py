"""What the Mini App shows, as JSON: always one subscriber's own rows, read through the engine.

Money and prices are exact decimal strings (the page formats them for display and never does
arithmetic on money), times are ISO 8601 UTC. Every query here is narrowed to the caller's user
id (``users.id``) before anything else; the routes never pass an id the caller chose without
checking that it is theirs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from bot.render import reward_risk
from engine.analytics import Period, Scope, Trade
from engine.analytics.series import Curve, drawdown_series
from engine.approvals.service import VIA_DM
from engine.brokers.base import BrokerPosition
from engine.ops.views import Scope as OpsScope
from engine.services import EngineServices
from engine.states import DecisionStatus, PositionStatus, SignalStatus
from engine.store.db import utcnow
from engine.store.models import Decision, ExecutionAccount, Order, Position, Signal, User

OPEN_SIGNAL = (SignalStatus.ACCEPTED.value, SignalStatus.DISPATCHED.value)
LIVE_POSITION = (PositionStatus.OPEN.value, PositionStatus.CLOSING.value)
MAX_SIGNALS = 50
MAX_HISTORY = 200
MAX_CURVE_POINTS = 240
BROKER_SECONDS = 4.0
OUTCOMES = ("all", "win", "loss")


def s(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


# ---------------------------------------------------------------------- signals


def signal_json(signal: Signal, decision_id: str | None, now: datetime) -> dict[str, Any]:
    targets = [
        {"price": str(t.get("price")), "close_percent": int(t.get("close_percent") or 0)}
        for t in (signal.targets or [])
    ]
    return {
        "id": signal.id,
        "decision_id": decision_id,
        "instrument": signal.instrument,
        "side": signal.side,
        "order_type": signal.order_type,
        "entry": s(signal.entry),
        "sl": s(signal.sl),
        "tp": s(signal.tp),
        "targets": targets,
        "rr": s(reward_risk(signal)),
        "risk_percent": s(signal.risk_percent),
        "strategy": signal.strategy,
        "confidence": s(signal.confidence),
        "note": signal.note,
        "received_at": iso(signal.received_at),
        "expires_at": iso(signal.expires_at),
        "ttl_seconds": signal.ttl_seconds,
        "seconds_left": max(0, int((signal.expires_at - now).total_seconds())),
    }


async def pending_signals(services: EngineServices, user: User) -> list[dict[str, Any]]:
    """The signals waiting for this subscriber's decision: their pending DM decisions, and in
    channel mode the posted signals they have not decided yet. Newest first."""
    now = utcnow()
    channel = services.settings.signal_channel_id
    async with services.db.session() as session:
        rows = (
            await session.execute(
                select(Decision.id, Signal)
                .join(Signal, Signal.id == Decision.signal_id)
                .where(
                    Decision.user_id == user.id,
                    Decision.via == VIA_DM,
                    Decision.status == DecisionStatus.PENDING.value,
                    Signal.status.in_(OPEN_SIGNAL),
                    Signal.expires_at > now,
                )
                .order_by(Signal.received_at.desc())
                .limit(MAX_SIGNALS)
            )
        ).all()
        found = [signal_json(signal, decision_id, now) for decision_id, signal in rows]
        if channel is not None:
            decided = select(Decision.signal_id).where(Decision.user_id == user.id)
            posted = (
                await session.scalars(
                    select(Signal)
                    .where(
                        Signal.status.in_(OPEN_SIGNAL),
                        Signal.expires_at > now,
                        Signal.channel_message_id.is_not(None),
                        Signal.id.not_in(decided),
                    )
                    .order_by(Signal.received_at.desc())
                    .limit(MAX_SIGNALS)
                )
            ).all()
            found += [signal_json(signal, None, now) for signal in posted]
    found.sort(key=lambda item: str(item["received_at"]), reverse=True)
    return found[:MAX_SIGNALS]


# ---------------------------------------------------------------------- positions


@dataclass(frozen=True, slots=True)
class OwnedPosition:
    position: Position
    signal_id: str | None


async def owned_position(services: EngineServices, user: User, position_id: int) -> OwnedPosition | None:
    """The position if it is on one of this subscriber's accounts, else None."""
    async with services.db.session() as session:
        row = (
            await session.execute(
                select(Position, Order.signal_id)
                .join(ExecutionAccount, ExecutionAccount.id == Position.account_id)
                .outerjoin(Order, Order.id == Position.order_id)
                .where(Position.id == position_id, ExecutionAccount.owner_id == user.id)
            )
        ).first()
    return None if row is None else OwnedPosition(row[0], row[1])


async def _account_json(
    services: EngineServices, account: ExecutionAccount
) -> tuple[dict[str, Any], dict[str, BrokerPosition]]:
    """The account's card and its broker positions by ticket (live P/L), or the broker's error."""
    out: dict[str, Any] = {
        "id": account.id,
        "kind": account.kind,
        "login": account.login,
        "server": account.server,
        "currency": account.currency,
        "trading_state": account.trading_state,
        "balance": None,
        "equity": None,
        "floating": None,
        "error": None,
    }
    view = await services.accounts.view(account, seconds=BROKER_SECONDS)
    if view.snapshot is None:
        out["error"] = view.error or "?"
        return out, {}
    snap = view.snapshot
    out.update(
        currency=snap.currency or account.currency,
        balance=s(snap.balance),
        equity=s(snap.equity),
        floating=s(snap.equity - snap.balance),
    )
    return out, {p.ticket: p for p in view.positions}


async def positions_json(services: EngineServices, user: User) -> dict[str, Any]:
    async with services.db.session() as session:
        accounts = (
            await session.scalars(
                select(ExecutionAccount)
                .where(ExecutionAccount.owner_id == user.id, ExecutionAccount.active.is_(True))
                .order_by(ExecutionAccount.id)
            )
        ).all()
        ids = [a.id for a in accounts]
        rows = (
            await session.execute(
                select(Position, Order.signal_id)
                .outerjoin(Order, Order.id == Position.order_id)
                .where(Position.account_id.in_(ids), Position.status.in_(LIVE_POSITION))
                .order_by(Position.opened_at, Position.id)
            )
        ).all()
    live = await asyncio.gather(*(_account_json(services, a) for a in accounts))
    cards = [card for card, _positions in live]
    by_ticket = {(card["id"], ticket): p for card, positions in live for ticket, p in positions.items()}
    currency = {card["id"]: card["currency"] for card in cards}
    positions = []
    for position, signal_id in rows:
        broker = by_ticket.get((position.account_id, position.ticket))
        positions.append(
            {
                "id": position.id,
                "account_id": position.account_id,
                "currency": currency.get(position.account_id),
                "symbol": position.symbol,
                "side": position.side,
                "volume": s(broker.volume if broker else position.volume),
                "open_price": s(position.open_price),
                "current_price": s(broker.current_price) if broker else None,
                "sl": s(broker.sl if broker else position.sl),
                "tp": s(broker.tp if broker else position.tp),
                "profit": s(broker.profit) if broker else None,
                "live": broker is not None,
                "status": position.status,
                "opened_at": iso(position.opened_at),
                "signal_id": signal_id,
                "manageable": signal_id is not None and position.status == PositionStatus.OPEN.value,
            }
        )
    orders = []
    for account_id in ids:
        report = await services.ops.positions(OpsScope.account(account_id), limit=50)
        orders += [
            {
                "id": o.id,
                "account_id": o.account_id,
                "symbol": o.symbol,
                "side": o.side,
                "order_type": o.order_type,
                "volume": s(o.volume),
                "price": s(o.price),
                "sl": s(o.sl),
                "tp": s(o.tp),
                "status": o.status,
                "expires_at": iso(o.expires_at),
            }
            for o in report.orders
        ]
    return {
        "accounts": cards,
        "positions": positions,
        "orders": orders,
        "simulated_market": services.paper_market.simulated,
    }


# ---------------------------------------------------------------------- history and stats


def trade_json(trade: Trade) -> dict[str, Any]:
    return {
        "position_id": trade.position_id,
        "account_id": trade.account_id,
        "symbol": trade.symbol,
        "side": trade.side,
        "volume": s(trade.volume),
        "open_time": iso(trade.open_time),
        "open_price": s(trade.open_price),
        "close_time": iso(trade.close_time),
        "close_price": s(trade.close_price),
        "net": s(trade.net),
        "close_reason": trade.close_reason,
        "strategy": trade.strategy,
    }


async def history_json(
    services: EngineServices, user: User, period: Period, instrument: str | None, outcome: str
) -> dict[str, Any]:
    trades = await services.analytics.trades(Scope(user_id=user.id, instrument=instrument), period)
    if outcome == "win":
        trades = [t for t in trades if t.net > 0]
    elif outcome == "loss":
        trades = [t for t in trades if t.net < 0]
    everything = await services.analytics.trades(Scope(user_id=user.id), period)
    instruments = sorted({*services.settings.instruments, *(t.symbol.upper() for t in everything)})
    net = sum((t.net for t in trades), Decimal(0))
    newest = list(reversed(trades))[:MAX_HISTORY]
    return {
        "period": period.spec,
        "instrument": instrument,
        "outcome": outcome,
        "count": len(trades),
        "wins": sum(1 for t in trades if t.net > 0),
        "losses": sum(1 for t in trades if t.net < 0),
        "net": s(net),
        "trades": [trade_json(t) for t in newest],
        "instruments": instruments,
    }


def curve_points(curve: Curve, limit: int = MAX_CURVE_POINTS) -> list[dict[str, Any]]:
    """Equity and its drawdown at each point, as analytics measures it (``drawdown_series``: from the
    peak of P&L net of capital flows, so a withdrawal is not a drawdown), thinned evenly to at most
    ``limit`` points; each thinned stretch keeps its deepest point, so the chart never hides one."""
    _amounts, fractions = drawdown_series(curve)
    points = [
        (at, equity, (fraction or Decimal(0)) * 100)
        for at, equity, fraction in zip(curve.times, curve.equity, fractions, strict=True)
    ]
    if len(points) > limit:
        body, step = points[:-1], (len(points) - 1) / (limit - 1)
        chunks = [body[int(i * step) : int((i + 1) * step)] for i in range(limit - 1)]
        points = [*(max(chunk, key=lambda p: p[2]) for chunk in chunks if chunk), points[-1]]
    return [
        {"t": at.isoformat(), "equity": s(equity), "drawdown_pct": s(dd.quantize(Decimal("0.01")))}
        for at, equity, dd in points
    ]


def _ratio(value: float | None) -> str | None:
    return None if value is None else f"{value:.2f}"


async def stats_json(services: EngineServices, user: User, period: Period) -> dict[str, Any]:
    scope = Scope(user_id=user.id)
    m = await services.analytics.metrics(scope, period)
    curve = await services.analytics.curve(scope, period)
    return {
        "period": period.spec,
        "start": iso(m.start),
        "end": iso(m.end),
        "has_data": m.has_data,
        "metrics": {
            "trades": m.trades,
            "wins": m.wins,
            "losses": m.losses,
            "win_rate": s(m.win_rate),
            "net_profit": s(m.net_profit),
            "total_return": s(m.total_return),
            "total_return_pct": s(m.total_return_pct),
            "profit_factor": None
            if m.profit_factor is None or not m.profit_factor.is_finite()
            else s(m.profit_factor),
            "profit_factor_infinite": m.profit_factor is not None and not m.profit_factor.is_finite(),
            "expectancy": s(m.expectancy),
            "average_win": s(m.average_win),
            "average_loss": s(m.average_loss),
            "max_drawdown": s(m.max_drawdown),
            "max_drawdown_pct": s(m.max_drawdown_pct),
            "current_drawdown_pct": s(m.current_drawdown_pct),
            "sharpe": _ratio(m.sharpe),
            "start_equity": s(m.start_equity),
            "end_equity": s(m.end_equity),
        },
        "curve": curve_points(curve),
    }


# ---------------------------------------------------------------------- settings and plan


async def settings_json(services: EngineServices, user: User) -> dict[str, Any]:
    auto = await services.auto_execute.view(user.telegram_id)
    return {
        "language": user.language,
        "languages": ["en", "es"],
        "notifications": user.notifications,
        "auto": None
        if auto is None
        else {
            "enabled": auto.enabled,
            "risk_percent": s(auto.limits.risk_percent),  # the subscriber's risk limits size them
            "max_volume": s(auto.limits.max_lots),
            "entitled": auto.entitled,
        },
    }


async def plan_json(services: EngineServices, user: User, invite_link: str) -> dict[str, Any]:
    standing = await services.billing.standing(user.telegram_id)
    summary = await services.referrals.summary(user.telegram_id)
    catalog = services.billing.catalog
    plan = None
    if standing is not None:
        p = standing.plan
        plan = {
            "key": p.key,
            "title": p.title,
            "description": p.description,
            "price_stars": p.price_stars,
            "period_days": p.period_days,
            "state": standing.state,
            "expires_at": iso(standing.expires_at),
            "renewing": standing.renewing,
        }
    referral = None
    if summary is not None:
        referral = {
            "code": summary.code,
            "link": invite_link,
            "invited": summary.invited,
            "paying": summary.paying,
            "earned": s(summary.earned),
            "paid_out": s(summary.paid_out),
            "balance": s(summary.balance),
            "share_percent": s(catalog.referral_share_percent),
        }
    return {"billing": catalog.billing, "plan": plan, "referral": referral}
