"""The page's sidebar: accounts, open positions, pending orders and equity, from the store and
the brokers, plus the engine's pause switch and the latest signals with who posted them (Fib-RSI
or the demo producer). Money stays Decimal until it becomes a JSON string here."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from loguru import logger
from sqlalchemy import select

from engine.brokers.base import BrokerOrder, BrokerPosition
from engine.services import EngineServices
from engine.store.models import ExecutionAccount, Producer, Signal, User
from sandbox.cast import by_id
from sandbox.strategy import source_of

BROKER_SECONDS = 3.0
RECENT_SIGNALS = 6


def _s(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _position(p: BrokerPosition) -> dict[str, Any]:
    return {
        "ticket": p.ticket,
        "symbol": p.symbol,
        "side": str(p.side),
        "volume": _s(p.volume),
        "open_price": _s(p.open_price),
        "current_price": _s(p.current_price),
        "sl": _s(p.sl),
        "tp": _s(p.tp),
        "profit": _s(p.profit),
    }


def _order(o: BrokerOrder) -> dict[str, Any]:
    return {
        "ticket": o.ticket,
        "symbol": o.symbol,
        "side": str(o.side),
        "type": str(o.order_type),
        "volume": _s(o.volume),
        "price": _s(o.price),
    }


async def _account(services: EngineServices, account: ExecutionAccount, user: User | None) -> dict[str, Any]:
    person = by_id(user.telegram_id) if user is not None else None
    out: dict[str, Any] = {
        "id": account.id,
        "kind": account.kind,
        "label": account.label or account.kind,
        "currency": account.currency,
        "owner": person.name if person else (user.first_name if user else "operator"),
        "telegram_id": user.telegram_id if user else None,
        "paused": account.paused,
        "trading_state": account.trading_state,
        "reference_equity": _s(account.reference_equity),
        "positions": [],
        "orders": [],
    }
    try:
        async with asyncio.timeout(BROKER_SECONDS):
            broker = await services.brokers.get(account)
            snapshot = await broker.account()
            positions = await broker.positions()
            orders = await broker.pending_orders()
    except Exception as exc:
        logger.debug("sandbox page: account {} unavailable: {!r}", account.id, exc)
        out["error"] = str(exc) or type(exc).__name__
        return out
    out.update(
        balance=_s(snapshot.balance),
        equity=_s(snapshot.equity),
        currency=snapshot.currency or account.currency,
        pnl=_s(snapshot.equity - account.reference_equity) if account.reference_equity is not None else None,
        positions=[_position(p) for p in positions],
        orders=[_order(o) for o in orders],
    )
    return out


async def portfolio(services: EngineServices) -> dict[str, Any]:
    assert services.ops is not None and services.accounts is not None
    status = await services.ops.status(limit=0, live_seconds=None)  # the pause, from the command layer
    rows = await services.accounts.list_accounts()
    async with services.db.session() as session:
        signals = (
            await session.execute(
                select(Signal, Producer.name)
                .join(Producer, Producer.id == Signal.producer_id)
                .order_by(Signal.received_at.desc())
                .limit(RECENT_SIGNALS)
            )
        ).all()
    accounts = await asyncio.gather(*(_account(services, account, user) for account, user in rows))
    return {
        "paused": status.paused,
        "accounts": list(accounts),
        "signals": [
            {
                "id": s.id,
                "instrument": s.instrument,
                "side": s.side,
                "order_type": s.order_type,
                "status": s.status,
                "received_at": s.received_at.isoformat(),
                "strategy": s.strategy,
                "producer": producer,
                "source": source_of(producer),
            }
            for s, producer in signals
        ],
    }
