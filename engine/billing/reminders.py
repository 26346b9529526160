"""The billing sweep: reminders before a paid plan ends, and the drop to the default plan after.

A periodic task (``BillingSweeper.run``) finds

- active subscriptions ending within ``reminder_days`` that were not yet reminded for their
  current end: marks them reminded and emits ``subscription.expiring``;
- active subscriptions past their end (past the renewal grace while Telegram is still renewing
  a Stars subscription): marks them expired and emits ``subscription.expired``.

Each row is claimed by a conditional UPDATE, so two instances (or a sweep racing a payment that
just extended the plan) never announce the same thing twice; the bot turns the events into
messages through its outbox, keyed by subscription and end date. Entitlements never wait for
the sweep: ``standing_of`` reads the clock.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from loguru import logger
from sqlalchemy import and_, or_, select, update

from engine.billing.entitlements import ACTIVE, EXPIRED
from engine.billing.plans import PlanCatalog
from engine.states import SUBSCRIPTION
from engine.store.audit import audit
from engine.store.db import Database, utcnow
from engine.store.events import EventRelay, emit
from engine.store.models import Subscription, User

SUBSCRIPTION_EXPIRING = "subscription.expiring"
SUBSCRIPTION_EXPIRED = "subscription.expired"


@dataclass
class SweepResult:
    reminded: list[int] = field(default_factory=list)  # subscription ids
    expired: list[int] = field(default_factory=list)


class BillingSweeper:
    def __init__(
        self, db: Database, catalog: PlanCatalog, relay: EventRelay | None = None, *, batch: int = 200
    ) -> None:
        self._db = db
        self._catalog = catalog
        self._relay = relay
        self._batch = batch

    async def sweep(self, now: datetime | None = None) -> SweepResult:
        now = now or utcnow()
        result = SweepResult()
        await self._expire(now, result)
        await self._remind(now, result)
        if (result.reminded or result.expired) and self._relay is not None:
            self._relay.notify()
        return result

    async def _expire(self, now: datetime, result: SweepResult) -> None:
        grace = self._catalog.renewal_grace
        renewing = Subscription.recurring.is_(True) & or_(
            Subscription.renewal_state.is_(None), Subscription.renewal_state == ACTIVE
        )
        due = or_(
            and_(~renewing, Subscription.expires_at <= now),
            and_(renewing, Subscription.expires_at <= now - grace),
        )
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(Subscription, User)
                    .join(User, User.id == Subscription.user_id)
                    .where(Subscription.status == ACTIVE, due)
                    .order_by(Subscription.expires_at)
                    .limit(self._batch)
                )
            ).all()
            for sub, user in rows:
                claimed = await session.execute(
                    update(Subscription)
                    .where(
                        Subscription.id == sub.id,
                        Subscription.status.in_(SUBSCRIPTION.sources(EXPIRED)),
                        Subscription.expires_at == sub.expires_at,
                    )
                    .values(status=EXPIRED)
                )
                if claimed.rowcount != 1:  # type: ignore[attr-defined]
                    continue  # extended or expired meanwhile
                audit(
                    session,
                    "billing",
                    "subscription.expired",
                    f"user:{user.id}",
                    plan=sub.plan,
                    expires_at=sub.expires_at.isoformat(),
                )
                emit(
                    session,
                    SUBSCRIPTION_EXPIRED,
                    subscription_id=sub.id,
                    user_id=user.id,
                    telegram_id=user.telegram_id,
                    plan=sub.plan,
                    expires_at=sub.expires_at.isoformat(),
                    default_plan=self._catalog.default_key,
                )
                result.expired.append(sub.id)

    async def _remind(self, now: datetime, result: SweepResult) -> None:
        if self._catalog.reminder_days <= 0:
            return
        horizon = now + timedelta(days=self._catalog.reminder_days)
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(Subscription, User)
                    .join(User, User.id == Subscription.user_id)
                    .where(
                        Subscription.status == ACTIVE,
                        Subscription.reminded_at.is_(None),
                        Subscription.expires_at > now,
                        Subscription.expires_at <= horizon,
                    )
                    .order_by(Subscription.expires_at)
                    .limit(self._batch)
                )
            ).all()
            for sub, user in rows:
                claimed = await session.execute(
                    update(Subscription)
                    .where(
                        Subscription.id == sub.id,
                        Subscription.reminded_at.is_(None),
                        Subscription.expires_at == sub.expires_at,
                    )
                    .values(reminded_at=now)
                )
                if claimed.rowcount != 1:  # type: ignore[attr-defined]
                    continue
                renewing = sub.recurring and sub.renewal_state in (None, ACTIVE)
                emit(
                    session,
                    SUBSCRIPTION_EXPIRING,
                    subscription_id=sub.id,
                    user_id=user.id,
                    telegram_id=user.telegram_id,
                    plan=sub.plan,
                    expires_at=sub.expires_at.isoformat(),
                    renewing=renewing,
                )
                result.reminded.append(sub.id)

    async def run(self, interval_seconds: float = 60.0) -> None:
        """Sweep forever (cancel the task to stop)."""
        while True:
            try:
                await self.sweep()
            except Exception as exc:
                logger.opt(exception=exc).error("billing sweep failed")
            await asyncio.sleep(interval_seconds)
