"""An engine built by the composition root over a test database, with paper accounts on a fixed market."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from engine.brokers.base import Broker
from engine.brokers.paper import PaperBroker
from engine.execution.service import ExecutionConfig
from engine.ops.service import OpsService
from engine.services import EngineServices
from engine.settings import Settings
from engine.states import OrderStatus
from engine.store.db import Database
from engine.store.models import AuditLog, ExecutionAccount, Order, User
from tests.support.factories import make_approval, paper_subscribers
from tests.support.prices import FixedPrices
from tradebot.app import build_services

FAST = ExecutionConfig(max_attempts=2, retry_initial_seconds=0.01, retry_max_seconds=0.02)


def settings_for(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "consent_version": "2026-11",
        "instruments": "EURUSD",
        "market_hours": "*=24/7",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class OpsWorld:
    services: EngineServices
    prices: FixedPrices
    producer: str
    pairs: list[tuple[User, ExecutionAccount]]

    @property
    def db(self) -> Database:
        return self.services.db

    @property
    def ops(self) -> OpsService:
        assert self.services.ops is not None
        return self.services.ops

    async def fill(self, index: int = 0, **kw: Any) -> Order:
        """A market order approved and filled: one open position."""
        user, account = self.pairs[index]
        order = await self.services.execution.execute_decision(
            await make_approval(self.db, self.producer, user, account, **kw)
        )
        assert order is not None and order.status == OrderStatus.FILLED, order
        return order

    async def place_limit(
        self, index: int = 0, entry: str = "1.09500", sl: str = "1.09000", tp: str = "1.10500"
    ) -> Order:
        """A buy limit below the market, resting at the broker."""
        user, account = self.pairs[index]
        decision = await make_approval(
            self.db, self.producer, user, account, order_type="limit", entry=entry, sl=sl, tp=tp
        )
        order = await self.services.execution.execute_decision(decision)
        assert order is not None and order.status == OrderStatus.PLACED, order
        return order

    async def broker(self, index: int = 0) -> Broker:
        return await self.services.brokers.get(self.pairs[index][1])

    async def audit(self, action: str) -> list[AuditLog]:
        async with self.db.session() as s:
            return list(
                (
                    await s.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id))
                ).all()
            )

    async def account(self, index: int = 0) -> ExecutionAccount:
        async with self.db.session() as s:
            row = await s.get(ExecutionAccount, self.pairs[index][1].id)
            assert row is not None
            return row


@asynccontextmanager
async def ops_world(db: Database, *, users: int = 2, **overrides: Any) -> AsyncIterator[OpsWorld]:
    prices = FixedPrices()
    holder: dict[str, Database] = {}

    async def factory(account: ExecutionAccount) -> Broker:
        return PaperBroker(holder["db"], account.id, prices=prices)

    services = build_services(
        settings_for(db.url, **overrides), broker_factory=factory, execution_config=FAST
    )
    holder["db"] = services.db
    producer, pairs = await paper_subscribers(services.db, users=users)
    try:
        yield OpsWorld(services, prices, producer, pairs)
    finally:
        await services.execution.drain(5)
        await services.brokers.close()
        await services.db.dispose()
