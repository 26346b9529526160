"""The billing sweep: one reminder per end date, then the drop to the free plan."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from engine.billing.payments import BillingService
from engine.billing.reminders import SUBSCRIPTION_EXPIRED, SUBSCRIPTION_EXPIRING, BillingSweeper
from engine.store.db import Database
from tests.support.billing import catalog, now, pay, shift_expiry, subscription
from tests.support.factories import make_user
from tests.support.queries import events


async def test_reminder_once_then_expiry(db: Database) -> None:
    billing, sweeper = BillingService(db, catalog()), BillingSweeper(db, catalog())
    user = await make_user(db, 70)
    await pay(billing, 70, "pro", recurring=False)
    assert (await sweeper.sweep()).reminded == []  # 30 days left: nothing to say

    await shift_expiry(db, user, now() + timedelta(days=2, hours=23))
    results = await asyncio.gather(sweeper.sweep(), sweeper.sweep())  # two instances at once
    assert sorted(len(r.reminded) for r in results) == [0, 1]
    assert (await sweeper.sweep()).reminded == []
    [reminder] = await events(db, SUBSCRIPTION_EXPIRING)
    assert reminder.payload["telegram_id"] == 70 and reminder.payload["renewing"] is False

    extended = await pay(billing, 70, "pro", recurring=False)  # paying again re-arms the reminder
    sub = await subscription(db, user)
    assert sub is not None and sub.reminded_at is None and sub.expires_at == extended.expires_at

    await shift_expiry(db, user, now() - timedelta(minutes=1))
    result = await sweeper.sweep()
    assert len(result.expired) == 1 and result.reminded == []
    assert (await sweeper.sweep()).expired == []
    sub = await subscription(db, user)
    assert sub is not None and sub.status == "expired"
    [gone] = await events(db, SUBSCRIPTION_EXPIRED)
    assert gone.payload["plan"] == "pro" and gone.payload["default_plan"] == "free"
    st = await billing.standing(70)
    assert st is not None and st.plan.key == "free"


async def test_a_renewing_subscription_waits_for_the_renewal_charge(db: Database) -> None:
    billing, sweeper = BillingService(db, catalog()), BillingSweeper(db, catalog())
    user = await make_user(db, 71)
    await pay(billing, 71, "pro", recurring=True)
    await shift_expiry(db, user, now() + timedelta(days=1))
    await sweeper.sweep()
    [reminder] = await events(db, SUBSCRIPTION_EXPIRING)
    assert reminder.payload["renewing"] is True

    await shift_expiry(db, user, now() - timedelta(hours=2))
    assert (await sweeper.sweep()).expired == []  # inside the 24 h grace
    renewed = await pay(billing, 71, "pro", recurring=True, first=False)
    sub = await subscription(db, user)
    assert sub is not None and sub.status == "active" and renewed.created
    assert abs(sub.expires_at - (now() + timedelta(days=30) - timedelta(hours=2))) < timedelta(seconds=5)

    await shift_expiry(db, user, now() - timedelta(hours=25))
    assert len((await sweeper.sweep()).expired) == 1  # no renewal came


async def test_a_cancelled_subscription_ends_on_its_date(db: Database) -> None:
    billing, sweeper = BillingService(db, catalog()), BillingSweeper(db, catalog())
    user = await make_user(db, 72)
    await pay(billing, 72, "pro", recurring=True)
    await billing.renewal_changed(72, "tb1:pro:250:30:72", "canceled")
    await shift_expiry(db, user, now() - timedelta(minutes=1))
    assert len((await sweeper.sweep()).expired) == 1
