"""Builders for multi-target tests: a signal with targets, approved, and execution services on the
paper broker and on the simulated terminal (hedging or netting)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.brokers.paper import PaperBroker
from engine.brokers.registry import BrokerRegistry
from engine.execution.orders import OrderRules
from engine.execution.service import ExecutionConfig, ExecutionService
from engine.risk.market_hours import AlwaysOpen, MarketHours
from engine.states import DecisionStatus
from engine.store.events import EventRelay
from engine.store.models import Decision, ExecutionAccount, Signal
from mt5sim import control
from tests.support.prices import FixedPrices

FAST = ExecutionConfig(
    max_attempts=3, retry_initial_seconds=0.01, retry_max_seconds=0.05, stale_submitting_seconds=0
)
RULES = OrderRules(market_hours=MarketHours(default=AlwaysOpen()))
SIM_PASSWORD, SIM_SERVER = "pw-sim", "MT5Sim-Demo"
THREE = [("1.10300", 50), ("1.10500", 30), ("1.10800", 20)]


async def approve_targets(
    db: Any,
    producer_id: str,
    user: Any,
    account: Any,
    targets: list[tuple[str, int]] = THREE,
    *,
    sl: str = "1.09800",
    breakeven_after: int = 1,
    trail_points: int | None = None,
    risk: str = "1",
) -> str:
    async with db.session() as s:
        now = datetime.now(UTC)
        signal = Signal(
            producer_id=producer_id, idempotency_key=f"k-{now.timestamp()}-{user.id}", body_hash="h",
            instrument="EURUSD", side="buy", order_type="market", sl=Decimal(sl),
            tp=Decimal(targets[-1][0]),
            targets=[{"price": p, "close_percent": c} for p, c in targets],
            breakeven_after=breakeven_after, trail_points=trail_points, risk_percent=Decimal(risk),
            ttl_seconds=900, received_at=now, expires_at=now + timedelta(seconds=900),
        )  # fmt: skip
        s.add(signal)
        await s.flush()
        decision = Decision(
            signal_id=signal.id, user_id=user.id, account_id=account.id, status=DecisionStatus.APPROVED.value,
            decided_at=now, consent_version="2026-11", chat_id=user.telegram_id, message_id=77,
        )  # fmt: skip
        s.add(decision)
        await s.flush()
    return decision.id


def paper_registry(db: Any, prices: FixedPrices) -> BrokerRegistry:
    async def factory(account: ExecutionAccount) -> PaperBroker:
        return PaperBroker(db, account.id, prices=prices)

    return BrokerRegistry(factory)


def sim_account(path: Path, login: int, margin_mode: int) -> None:
    control.ignore_market_hours(state=path)
    control.create_account(login, SIM_PASSWORD, server=SIM_SERVER, margin_mode=margin_mode, state=path)
    control.set_price("EURUSD", Decimal("1.10000"), Decimal("1.10010"), state=path)


async def as_mt5(db: Any, account_id: int, login: int) -> None:
    async with db.session() as s:
        row = await s.get(ExecutionAccount, account_id)
        row.kind, row.login, row.server = "mt5", str(login), SIM_SERVER


def sim_registry() -> BrokerRegistry:
    from engine.brokers.mt5 import create_mt5_broker

    async def factory(account: ExecutionAccount) -> Any:
        return create_mt5_broker(
            "mt5sim", int(account.login or 0), SIM_PASSWORD, account.server or "", backoff_initial=0.01,
            backoff_max=0.05,
        )  # fmt: skip

    return BrokerRegistry(factory)


def execution(db: Any, registry: BrokerRegistry) -> ExecutionService:
    return ExecutionService(db, registry, lambda account: RULES, EventRelay(db), FAST)
