"""Referral attribution (first /start only, no self-referral, no cycles) and the ledger."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from sqlalchemy import select

from engine.billing.payments import BillingService
from engine.billing.referrals import (
    Attribution,
    ReferralError,
    ReferralService,
    attribute,
    attribute_start,
    balance_of,
)
from engine.store.db import Database
from engine.store.models import AppendOnlyViolation, AuditLog, ReferralEntry, User
from tests.support.billing import catalog, pay
from tests.support.factories import make_user


async def referred_by(db: Database, user: User) -> int | None:
    async with db.session() as s:
        return await s.scalar(select(User.referred_by_id).where(User.id == user.id))


async def test_attribution_rules(db: Database) -> None:
    a = await make_user(db, 100)
    b = await make_user(db, 101)
    c = await make_user(db, 102)
    assert (await attribute_start(db, b.id, "ref_c100", first_start=True)).outcome is Attribution.ATTRIBUTED
    assert await referred_by(db, b) == a.id  # codes are case-insensitive
    # A later /start never changes the referrer, nor adds one.
    assert (
        await attribute_start(db, b.id, "ref_C102", first_start=False)
    ).outcome is Attribution.ALREADY_REFERRED
    assert (
        await attribute_start(db, c.id, "ref_C100", first_start=False)
    ).outcome is Attribution.NOT_FIRST_START
    assert await referred_by(db, c) is None
    assert (await attribute_start(db, c.id, "ref_NOPE", first_start=True)).outcome is Attribution.UNKNOWN_CODE
    assert (await attribute_start(db, c.id, "channel", first_start=True)).outcome is Attribution.NO_REFERRAL
    assert (await attribute_start(db, c.id, None, first_start=True)).outcome is Attribution.NO_REFERRAL
    assert (
        await attribute_start(db, c.id, "ref_C102", first_start=True)
    ).outcome is Attribution.SELF_REFERRAL
    # a <- b: a using b's link would make a cycle; so would a using a link further down the chain.
    assert (await attribute_start(db, a.id, "ref_C101", first_start=True)).outcome is Attribution.CYCLE
    assert (await attribute_start(db, c.id, "ref_C101", first_start=True)).outcome is Attribution.ATTRIBUTED
    assert (await attribute_start(db, a.id, "ref_C102", first_start=True)).outcome is Attribution.CYCLE
    assert await referred_by(db, a) is None
    async with db.session() as s:
        actions = [
            (r.action, r.details["outcome"])
            for r in (await s.scalars(select(AuditLog).order_by(AuditLog.id))).all()
        ]
    assert (
        actions.count(("referral.refused", "cycle")) == 2
        and actions.count(("referral.attributed", "attributed")) == 2
    )


async def test_registration_link_counts_as_the_attribution(db: Database) -> None:
    """Registration may already have linked a new user from the same payload."""
    a = await make_user(db, 110)
    b = await make_user(db, 111, referred_by=a.id)
    async with db.session() as s:
        user = await s.get(User, b.id)
        assert user is not None
        result = await attribute(s, user, "ref_C110", first_start=True)
    assert result.outcome is Attribution.ATTRIBUTED and result.referrer_id == a.id


async def test_ledger_credits_reversals_and_payouts(db: Database) -> None:
    billing, referrals = BillingService(db, catalog()), ReferralService(db)
    a = await make_user(db, 120, username="alice")
    b = await make_user(db, 121, referred_by=a.id)
    await make_user(db, 122, referred_by=a.id)  # invited, never pays
    await make_user(db, 123)  # pays, referred by nobody
    await pay(billing, 121, "pro", charge="c1")
    await pay(billing, 121, "pro", charge="c1")  # delivered twice: credited once
    await pay(billing, 121, "auto", charge="c2")
    await pay(billing, 123, "pro", charge="c3")
    summary = await referrals.summary(120)
    assert summary is not None
    assert (summary.invited, summary.paying, summary.earned, summary.balance) == (
        2,
        1,
        Decimal(170),
        Decimal(170),
    )
    assert summary.code == "C120" and len(summary.invited_names) == 2

    await billing.refund("c2", "tg:900")  # 120 of the 170 came from the refunded payment
    left = await referrals.payout(a, Decimal("25.5"), "tg:900", "bank transfer")
    assert left == Decimal("24.5")
    with pytest.raises(ReferralError, match=r"balance is 24\.5"):
        await referrals.payout(a, Decimal(25), "tg:900")
    with pytest.raises(ReferralError):
        await referrals.payout(a, Decimal(0), "tg:900")
    async with db.session() as s:
        rows = (await s.scalars(select(ReferralEntry).order_by(ReferralEntry.id))).all()
        assert await balance_of(s, a.id) == Decimal("24.5")
    assert [(r.kind, r.amount) for r in rows] == [
        ("credit", Decimal(50)),
        ("credit", Decimal(120)),
        ("reversal", Decimal(-120)),
        ("payout", Decimal("-25.5")),
    ]
    summary = await referrals.summary(120)
    assert summary is not None and (summary.earned, summary.paid_out, summary.balance) == (
        Decimal(50),
        Decimal("25.5"),
        Decimal("24.5"),
    )

    [top] = await referrals.leaderboard()
    assert (top.name, top.invited, top.paying, top.earned, top.balance) == (
        "@alice",
        2,
        1,
        Decimal(50),
        Decimal("24.5"),
    )
    assert b.referred_by_id == a.id


async def test_exact_decimal_shares_and_an_append_only_ledger(db: Database) -> None:
    billing = BillingService(db, catalog())
    a = await make_user(db, 130)
    await make_user(db, 131, referred_by=a.id)
    for n in range(3):
        await pay(billing, 131, "pro", charge=f"odd-{n}", stars=251)  # 20 % = 50.2 each
    async with db.session() as s:
        assert await balance_of(s, a.id) == Decimal("150.6")  # a float sum would be 150.60000000000002
        entry = await s.scalar(select(ReferralEntry))
        assert entry is not None
        entry.amount = Decimal(1_000_000)
        with pytest.raises(AppendOnlyViolation):
            await s.flush()
        await s.rollback()
        entry = await s.scalar(select(ReferralEntry))
        await s.delete(entry)
        with pytest.raises(AppendOnlyViolation):
            await s.flush()
        await s.rollback()


async def test_concurrent_payouts_never_overdraw(db: Database) -> None:
    billing, referrals = BillingService(db, catalog()), ReferralService(db)
    a = await make_user(db, 140)
    await make_user(db, 141, referred_by=a.id)
    await pay(billing, 141, "pro")  # a balance of 50
    results = await asyncio.gather(
        *(referrals.payout(a, Decimal(30), "tg:900") for _ in range(3)), return_exceptions=True
    )
    assert sum(isinstance(r, Decimal) for r in results) == 1
    assert all(isinstance(r, ReferralError) for r in results if not isinstance(r, Decimal))
    async with db.session() as s:
        assert await balance_of(s, a.id) == Decimal(20)
