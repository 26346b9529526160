"""Builders for trade-management tests: one signal executed for N subscribers, on paper accounts
(a fixed market) or on simulated MT5 accounts behind the real MT5 broker code."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from engine.brokers.base import Broker
from engine.brokers.registry import BrokerRegistry
from engine.execution.orders import OrderRules
from engine.execution.service import ExecutionConfig, ExecutionService
from engine.management.changes import ChangeService
from engine.management.updates import UpdateService
from engine.risk.market_hours import AlwaysOpen, MarketHours
from engine.states import DecisionStatus
from engine.store.db import Database
from engine.store.events import EventRelay
from engine.store.models import Decision, ExecutionAccount, Position, Producer, Signal, User
from mt5sim import control
from tests.support.prices import FixedPrices

PASSWORD, SERVER = "pw-sim", "MT5Sim-Demo"
FAST = ExecutionConfig(max_attempts=3, retry_initial_seconds=0.01, retry_max_seconds=0.05)


def login_of(n: int) -> int:
    return 7100 + n


@dataclass
class World:
    db: Database
    kind: str
    producer_id: str
    signal_id: str
    users: list[User]
    accounts: list[ExecutionAccount]
    registry: BrokerRegistry
    execution: ExecutionService
    updates: UpdateService
    changes: ChangeService
    relay: EventRelay
    prices: FixedPrices | None = None
    state: Path | None = None

    async def broker(self, account: ExecutionAccount) -> Broker:
        return await self.registry.get(account)

    async def positions(self) -> list[Position]:
        async with self.db.sessions() as s:
            return list((await s.scalars(select(Position).order_by(Position.account_id))).all())


def start_sim(path: Path, users: int) -> None:
    control.ignore_market_hours(state=path)
    for n in range(users):
        control.create_account(login_of(n), PASSWORD, server=SERVER, balance=10000, state=path)
    control.set_price("EURUSD", Decimal("1.10000"), Decimal("1.10010"), state=path)


async def build_world(
    db: Database,
    kind: str,
    *,
    users: int = 20,
    order_type: str = "market",
    entry: str | None = None,
    state: Path | None = None,
    module: str = "mt5sim",
) -> World:
    """A producer, ``users`` subscribers each with an account, one signal approved by all of them,
    and its orders executed (filled, or resting for limit orders)."""
    prices = FixedPrices() if kind == "paper" else None
    now = datetime.now(UTC)
    async with db.session() as s:
        producer = Producer(name="p-updates", secret_enc="x", token_digest="u" * 64)
        s.add(producer)
        await s.flush()
        signal = Signal(
            producer_id=producer.id,
            external_id="setup-1",
            idempotency_key="setup-1",
            body_hash="h",
            instrument="EURUSD",
            side="buy",
            order_type=order_type,
            entry=Decimal(entry) if entry else None,
            sl=Decimal("1.09800"),
            tp=Decimal("1.10400"),
            risk_percent=Decimal("1"),
            ttl_seconds=900,
            status="dispatched",
            received_at=now,
            expires_at=now + timedelta(seconds=900),
        )
        s.add(signal)
        people, accounts, decisions = [], [], []
        for n in range(users):
            user = User(telegram_id=5000 + n, referral_code=f"u{n}", consent_version="2026-11")
            s.add(user)
            await s.flush()
            account = ExecutionAccount(owner_id=user.id, kind=kind, balance=Decimal(10000))
            if kind == "mt5":
                account.login, account.server = str(login_of(n)), SERVER
            else:
                account.reference_equity = Decimal(10000)
            s.add(account)
            await s.flush()
            decision = Decision(
                signal_id=signal.id,
                user_id=user.id,
                account_id=account.id,
                status=DecisionStatus.APPROVED.value,
                decided_at=now,
                consent_version="2026-11",
                chat_id=user.telegram_id,
                message_id=100 + n,
            )
            s.add(decision)
            await s.flush()
            people.append(user)
            accounts.append(account)
            decisions.append(decision.id)
        s.expunge_all()

    async def factory(account: ExecutionAccount) -> Broker:
        if account.kind == "paper":
            from engine.brokers.paper import PaperBroker

            return PaperBroker(db, account.id, prices=prices)
        from engine.brokers.mt5 import create_mt5_broker

        return create_mt5_broker(
            module,
            int(account.login or 0),
            PASSWORD,
            SERVER,
            backoff_initial=0.01,
            backoff_max=0.05,
        )

    registry = BrokerRegistry(factory)
    relay = EventRelay(db)
    rules = lambda account: OrderRules(market_hours=MarketHours(default=AlwaysOpen()))  # noqa: E731
    execution = ExecutionService(db, registry, rules, relay, FAST)
    for decision_id in decisions:
        await execution.execute_decision(decision_id)
    world = World(
        db,
        kind,
        producer.id,
        signal.id,
        people,
        accounts,
        registry,
        execution,
        UpdateService(db, relay),
        ChangeService(db, registry, relay),
        relay,
        prices,
        state,
    )
    return world


async def submit(world: World, body: dict[str, Any], key: str | None = None) -> str:
    import json

    outcome = await world.updates.submit(
        world.producer_id, world.signal_id, json.dumps(body).encode(), idempotency_key=key
    )
    return outcome.update_id
