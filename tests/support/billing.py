"""Builders for billing tests: the plan catalog, payments as Telegram delivers them, subscriptions,
a paper execution service."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from engine.billing.entitlements import EntitlementGate
from engine.billing.invoices import InvoicePayload
from engine.billing.payments import BillingService, PaymentOutcome
from engine.billing.plans import PlanCatalog, load_plans
from engine.brokers.paper import PaperBroker
from engine.brokers.registry import BrokerRegistry
from engine.execution.orders import OrderRules
from engine.execution.service import ExecutionConfig, ExecutionService
from engine.risk.chain import RiskChain, standard_gates
from engine.risk.limit_gates import limit_gates
from engine.risk.limits import LimitDefaults, RiskLimitsService
from engine.risk.market_hours import AlwaysOpen, MarketHours
from engine.store.db import Database
from engine.store.events import EventRelay
from engine.store.models import ExecutionAccount, Subscription, User
from tests.support.prices import FixedPrices

FAST = ExecutionConfig(
    max_attempts=2, retry_initial_seconds=0.01, retry_max_seconds=0.02, stale_submitting_seconds=0
)
_charges = itertools.count(1)


def catalog() -> PlanCatalog:
    return load_plans(None)


def now() -> datetime:
    return datetime.now(UTC)


async def pay(
    billing: BillingService,
    telegram_id: int,
    plan: str = "pro",
    *,
    charge: str | None = None,
    recurring: bool = True,
    first: bool = True,
    stars: int | None = None,
) -> PaymentOutcome:
    """A ``successful_payment`` as Telegram delivers it for an invoice issued to ``telegram_id``."""
    p = billing.catalog.get(plan)
    assert p is not None
    amount = p.price_stars if stars is None else stars
    payload = InvoicePayload(plan, amount, p.period_days, telegram_id).pack()
    return await billing.record_payment(
        telegram_id,
        currency="XTR",
        total_amount=amount,
        invoice_payload=payload,
        charge_id=charge or f"stx-{next(_charges)}",
        provider_charge_id=f"{telegram_id}_1",
        is_recurring=recurring,
        is_first_recurring=recurring and first,
        subscription_expiration_date=int((now() + timedelta(days=30)).timestamp()) if recurring else None,
    )


async def subscription(db: Database, user: User) -> Subscription | None:
    async with db.session() as s:
        return await s.scalar(select(Subscription).where(Subscription.user_id == user.id))


async def shift_expiry(db: Database, user: User, when: datetime) -> None:
    async with db.session() as s:
        sub = await s.scalar(select(Subscription).where(Subscription.user_id == user.id))
        assert sub is not None
        sub.expires_at = when


def _rules(account: ExecutionAccount) -> OrderRules:
    return OrderRules(
        min_rr=Decimal("1.5"), min_stop_points=5, market_hours=MarketHours(default=AlwaysOpen())
    )


def risk_chain() -> RiskChain:
    """The risk chain of a billing world: the standard gates, the entitlement gate (as the composition
    root adds it) and the subscriber's own limits."""
    chain = RiskChain([*standard_gates(_rules), *limit_gates(LimitDefaults())])
    chain.add(EntitlementGate(catalog()), before="drawdown")
    return chain


def risk_limits(db: Database) -> RiskLimitsService:
    """Subscribers' risk limits with the built-in defaults (sizing by the signal's risk)."""
    return RiskLimitsService(db, LimitDefaults(), ["EURUSD"])


def execution_service(db: Database, prices: FixedPrices, **kw: Any) -> ExecutionService:
    """The real execution service over paper brokers (any account kind trades on paper here)."""

    async def factory(account: ExecutionAccount) -> PaperBroker:
        return PaperBroker(db, account.id, prices=prices)

    return ExecutionService(db, BrokerRegistry(factory), _rules, EventRelay(db), FAST, risk_chain())
