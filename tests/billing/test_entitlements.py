"""Entitlements at the moment of execution: the gate in ExecutionService, and per-decision overrides."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from engine.billing.entitlements import ACTIVE, EXPIRED, GRACE, NONE, REVOKED, EntitlementGate, standing_of
from engine.billing.payments import BillingService
from engine.risk.chain import TradeContext
from engine.states import OrderStatus
from engine.store.db import Database
from engine.store.models import AutoTradeSettings, Subscription, User
from tests.support.billing import catalog, execution_service, now, pay, shift_expiry
from tests.support.factories import account_of, make_approval, make_user, paper_subscribers
from tests.support.prices import FixedPrices


def sub(**kw: object) -> Subscription:
    values: dict[str, object] = {
        "user_id": 1,
        "plan": "pro",
        "status": ACTIVE,
        "recurring": False,
        "renewal_state": None,
    }
    values.update(kw)
    return Subscription(**values)


def test_standing_follows_the_clock_not_the_sweep() -> None:
    c, t = catalog(), now()
    assert standing_of(None, c, t).state == NONE and standing_of(None, c, t).plan.key == "free"
    assert standing_of(sub(expires_at=t + timedelta(days=1)), c, t).plan.key == "pro"
    ended = standing_of(sub(expires_at=t - timedelta(seconds=1)), c, t)
    assert (ended.state, ended.plan.key, ended.paid_plan) == (EXPIRED, "free", "pro")
    renewing = sub(expires_at=t - timedelta(hours=1), recurring=True, renewal_state="active")
    assert standing_of(renewing, c, t).state == GRACE and standing_of(renewing, c, t).plan.key == "pro"
    assert standing_of(renewing, c, t + timedelta(hours=24)).state == EXPIRED  # grace is 24 h
    cancelled = sub(expires_at=t - timedelta(hours=1), recurring=True, renewal_state="canceled")
    assert standing_of(cancelled, c, t).state == EXPIRED
    refunded = standing_of(sub(expires_at=t + timedelta(days=3), status=REVOKED), c, t)
    assert (refunded.state, refunded.plan.key) == (REVOKED, "free")


async def test_gate_codes(db: Database) -> None:
    gate = EntitlementGate(catalog())
    billing = BillingService(db, catalog())
    free_mt5 = await make_user(db, 50, kind="mt5")
    producer, _ = await paper_subscribers(db, users=0)
    account = await account_of(db, free_mt5)
    await make_approval(db, producer, free_mt5, account)

    async def check(s: AsyncSession, user: User | None, via: str = "dm") -> tuple[str, str] | None:
        refusal = await gate.check(TradeContext(s, account, user, None, now(), via=via))
        if refusal is None:
            return None
        assert refusal.gate == "entitlement"
        return refusal.code, refusal.message

    async with db.session() as s:
        code, message = await check(s, free_mt5) or ("", "")
    assert (
        code == "plan_required"
        and "free plan does not include execution on a MetaTrader 5 account" in message
    )

    await pay(billing, 50, "pro")
    async with db.session() as s:
        assert await check(s, free_mt5) is None
        code, message = await check(s, free_mt5, "auto") or ("", "")
    assert code == "plan_required" and "auto-execution" in message

    await pay(billing, 50, "auto")
    async with db.session() as s:
        code, _ = await check(s, free_mt5, "auto") or ("", "")
        assert code == "auto_disabled"  # entitled, but the subscriber has not opted in
        s.add(AutoTradeSettings(user_id=free_mt5.id, enabled=True))
        await s.flush()
        assert await check(s, free_mt5, "auto") is None
        assert await check(s, None, "auto") is None  # the operator's account

    await shift_expiry(db, free_mt5, now() - timedelta(days=2))
    async with db.session() as s:
        code, message = await check(s, free_mt5, "auto") or ("", "")
    assert code == "plan_expired" and "your auto plan has expired" in message


async def test_execution_refuses_an_expired_plan_and_runs_a_paid_one(db: Database) -> None:
    prices = FixedPrices()
    execution = execution_service(db, prices)
    billing = BillingService(db, catalog())
    user = await make_user(db, 60, kind="mt5")
    account = await account_of(db, user)
    producer, _ = await paper_subscribers(db, users=0)

    refused = await execution.execute_decision(await make_approval(db, producer, user, account, key="a"))
    assert (
        refused is not None
        and refused.status == OrderStatus.REFUSED
        and refused.reason_code == "plan_required"
    )

    await pay(billing, 60, "pro")
    filled = await execution.execute_decision(await make_approval(db, producer, user, account, key="b"))
    assert filled is not None and filled.status == OrderStatus.FILLED

    await shift_expiry(db, user, now() - timedelta(days=2))  # lapsed; the sweep has not run yet
    expired = await execution.execute_decision(await make_approval(db, producer, user, account, key="c"))
    assert (
        expired is not None
        and expired.status == OrderStatus.REFUSED
        and expired.reason_code == "plan_expired"
    )
    assert expired.reason is not None and "pro plan has expired" in expired.reason
