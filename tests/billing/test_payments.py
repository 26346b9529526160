"""Stars payments in the engine: invoices, pre-checkout checks, exactly-once payments, refunds."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from engine.billing.entitlements import ACTIVE, NONE, REVOKED
from engine.billing.invoices import BillingError, CheckoutRefusal, InvoicePayload
from engine.billing.payments import PAYMENT_RECEIVED, PAYMENT_REFUNDED, BillingService
from engine.store.db import Database
from engine.store.models import AuditLog, ReferralEntry, StarPayment, Subscription
from tests.support.billing import catalog, now, pay, shift_expiry, subscription
from tests.support.factories import make_user
from tests.support.queries import events


@pytest.fixture
def billing(db: Database) -> BillingService:
    return BillingService(db, catalog())


def test_invoices_follow_telegrams_rules() -> None:
    service = BillingService(None, catalog())  # type: ignore[arg-type]
    pro = service.invoice("pro", 42)
    assert pro.stars == 250 and pro.subscription_period == 2592000
    assert pro.payload == "tb1:pro:250:30:42" and len(pro.payload.encode()) <= 128
    assert InvoicePayload.parse(pro.payload) == InvoicePayload("pro", 250, 30, 42)
    assert InvoicePayload.parse("tb1:pro:x:30:42") is None and InvoicePayload.parse("other") is None
    with pytest.raises(BillingError, match="free"):
        service.invoice("free", 42)
    with pytest.raises(BillingError, match="no plan"):
        service.invoice("gold", 42)


async def test_pre_checkout_validation(db: Database, billing: BillingService) -> None:
    await make_user(db, 10)
    await make_user(db, 11, status="banned")
    ok = "tb1:pro:250:30:10"
    assert await billing.check_checkout(10, "XTR", 250, ok) is None
    assert await billing.check_checkout(10, "XTR", 250, "junk") is CheckoutRefusal.BAD_PAYLOAD
    assert await billing.check_checkout(10, "XTR", 250, "tb1:gold:250:30:10") is CheckoutRefusal.UNKNOWN_PLAN
    assert await billing.check_checkout(10, "XTR", 0, "tb1:free:0:30:10") is CheckoutRefusal.FREE_PLAN
    assert await billing.check_checkout(10, "USD", 250, ok) is CheckoutRefusal.WRONG_CURRENCY
    assert await billing.check_checkout(10, "XTR", 200, "tb1:pro:200:30:10") is CheckoutRefusal.PRICE_CHANGED
    assert await billing.check_checkout(10, "XTR", 1, ok) is CheckoutRefusal.WRONG_AMOUNT
    assert await billing.check_checkout(12, "XTR", 250, ok) is CheckoutRefusal.NOT_YOURS
    assert await billing.check_checkout(12, "XTR", 250, "tb1:pro:250:30:12") is CheckoutRefusal.UNKNOWN_USER
    assert await billing.check_checkout(11, "XTR", 250, "tb1:pro:250:30:11") is CheckoutRefusal.BANNED
    await pay(billing, 10, "auto")
    assert await billing.check_checkout(10, "XTR", 250, ok) is CheckoutRefusal.DOWNGRADE
    assert await billing.check_checkout(10, "XTR", 600, "tb1:auto:600:30:10") is None  # extending is fine


async def test_a_payment_extends_the_plan_once_per_charge(db: Database, billing: BillingService) -> None:
    user = await make_user(db, 20)
    first = await pay(billing, 20, "pro", charge="stx-A")
    assert first.created and first.plan == "pro"
    assert abs(first.expires_at - (now() + timedelta(days=30))) < timedelta(seconds=5)
    again = await pay(billing, 20, "pro", charge="stx-A")  # the same update delivered again
    assert not again.created and again.payment_id == first.payment_id and again.expires_at == first.expires_at
    st = await billing.standing(20)
    assert st is not None and st.state == ACTIVE and st.plan.key == "pro" and st.renewing

    renewal = await pay(billing, 20, "pro", charge="stx-B", first=False)  # Telegram renews the subscription
    assert renewal.created and renewal.expires_at == first.expires_at + timedelta(days=30)
    sub = await subscription(db, user)
    assert sub is not None and sub.expires_at == renewal.expires_at and sub.last_charge_id == "stx-B"
    async with db.session() as s:
        assert await s.scalar(select(func.count(StarPayment.id))) == 2
        lines = (await s.scalars(select(AuditLog).where(AuditLog.action == "payment.received"))).all()
    assert (
        len(lines) == 2 and lines[0].details["charge_id"] == "stx-A" and lines[0].details["amount"] == "250"
    )
    assert len(await events(db, PAYMENT_RECEIVED)) == 2


async def test_concurrent_deliveries_of_one_payment_record_it_once(
    db: Database, billing: BillingService
) -> None:
    user = await make_user(db, 21)
    outcomes = await asyncio.gather(*(pay(billing, 21, "pro", charge="stx-same") for _ in range(4)))
    assert sorted(o.created for o in outcomes) == [False, False, False, True]
    assert len({o.expires_at for o in outcomes}) == 1
    async with db.session() as s:
        assert await s.scalar(select(func.count(StarPayment.id))) == 1
    sub = await subscription(db, user)
    assert sub is not None and sub.expires_at == outcomes[0].expires_at


async def test_a_lapsed_plan_restarts_today_and_a_new_plan_replaces_the_old(
    db: Database, billing: BillingService
) -> None:
    user = await make_user(db, 22)
    await pay(billing, 22, "pro", recurring=False)
    await shift_expiry(db, user, now() - timedelta(days=5))
    again = await pay(billing, 22, "pro", recurring=False)
    assert abs(again.expires_at - (now() + timedelta(days=30))) < timedelta(seconds=5)
    upgrade = await pay(billing, 22, "auto", recurring=False)
    assert upgrade.plan == "auto" and abs(upgrade.expires_at - (now() + timedelta(days=30))) < timedelta(
        seconds=5
    )
    st = await billing.standing(22)
    assert st is not None and st.plan.key == "auto" and not st.renewing


async def test_an_unknown_payload_keeps_the_money_on_record_but_grants_nothing(
    db: Database, billing: BillingService
) -> None:
    user = await make_user(db, 23)
    outcome = await billing.record_payment(
        23, currency="XTR", total_amount=99, invoice_payload="someone-else", charge_id="stx-X"
    )
    assert outcome.created and outcome.plan == "?"
    assert await subscription(db, user) is None
    st = await billing.standing(23)
    assert st is not None and st.state == NONE and st.plan.key == "free"


async def test_refund_revokes_the_period_and_is_idempotent(db: Database, billing: BillingService) -> None:
    referrer = await make_user(db, 30)
    user = await make_user(db, 31, referred_by=referrer.id)
    await pay(billing, 31, "pro", charge="stx-1")
    second = await pay(billing, 31, "pro", charge="stx-2", first=False)
    refunded = await billing.refund("stx-2", "tg:900")
    assert refunded.found and not refunded.already and refunded.telegram_id == 31
    sub = await subscription(db, user)
    assert sub is not None and sub.status == ACTIVE
    assert sub.expires_at == second.expires_at - timedelta(days=30)  # only the refunded month is gone
    assert (await billing.refund("stx-2", "telegram")).already

    last = await billing.refund("stx-1", "tg:900")
    assert last.standing is not None and last.standing.state == REVOKED and last.standing.plan.key == "free"
    sub = await subscription(db, user)
    assert sub is not None and sub.status == REVOKED and sub.renewal_state == "canceled"
    assert not (await billing.refund("stx-nope", "tg:900")).found
    async with db.session() as s:
        statuses = (await s.scalars(select(StarPayment.status).order_by(StarPayment.id))).all()
        ledger = (await s.scalars(select(ReferralEntry).order_by(ReferralEntry.id))).all()
    assert statuses == ["refunded", "refunded"]
    assert [(e.kind, e.amount) for e in ledger] == [
        ("credit", Decimal(50)),
        ("credit", Decimal(50)),
        ("reversal", Decimal(-50)),
        ("reversal", Decimal(-50)),
    ]
    refunds = await events(db, PAYMENT_REFUNDED)
    assert len(refunds) == 2 and refunds[-1].payload["now_plan"] == "free"


async def test_renewal_state_changes(db: Database, billing: BillingService) -> None:
    user = await make_user(db, 40)
    await pay(billing, 40, "pro")
    payload = "tb1:pro:250:30:40"
    assert await billing.renewal_changed(40, payload, "canceled")
    assert not await billing.renewal_changed(40, payload, "canceled")  # nothing new
    assert not await billing.renewal_changed(40, "tb1:auto:600:30:40", "failed")  # not this plan
    assert not await billing.renewal_changed(40, payload, "paused")  # not a state Telegram sends
    sub = await subscription(db, user)
    assert sub is not None and sub.renewal_state == "canceled"
    st = await billing.standing(40)
    assert st is not None and st.state == ACTIVE and not st.renewing
    assert await billing.renewal_changed(40, payload, "active")
    async with db.session() as s:
        assert (await s.scalar(select(Subscription.renewal_state))) == "active"


async def test_concurrent_payments_and_refunds_of_one_user_lose_no_update(
    db: Database, billing: BillingService
) -> None:
    user = await make_user(db, 24)
    outcomes = await asyncio.gather(
        *(pay(billing, 24, "pro", charge=f"stx-c{n}", recurring=False) for n in range(3))
    )
    assert all(o.created for o in outcomes)
    sub = await subscription(db, user)
    assert sub is not None and abs(sub.expires_at - (now() + timedelta(days=90))) < timedelta(seconds=10)
    await asyncio.gather(*(billing.refund(f"stx-c{n}", "tg:900") for n in range(3)))
    sub = await subscription(db, user)
    assert sub is not None and sub.status == REVOKED
    assert abs(sub.expires_at - now()) < timedelta(seconds=10)
