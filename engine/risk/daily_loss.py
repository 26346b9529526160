"""The daily loss limit: when a subscriber's account has lost their limit today, their execution
pauses until the next trading day, and they are told.

The trading loop hands every equity reading of an account to ``DailyLossWatch.observe`` (after the
drawdown guard). For an account whose owner has a daily loss limit (their own, or
``RISK_DAILY_LOSS_PERCENT``):

- the trading day (``TRADING_DAY_START``, ``engine.risk.trading_day``) is the account's
  ``day_start_at``; when a new one has begun, ``day_start_equity`` becomes the last equity point
  recorded at or before its start (the close of the day before), else this reading;
- loss % = (day_start_equity − equity) / day_start_equity × 100, on equity (open positions'
  floating results included; deposits and withdrawals are not told apart);
- at or past the limit, ``risk_limits.paused_until`` is set to the start of the next trading day,
  by a conditional write that succeeds once per day, which also audits ``risk.daily_loss`` and
  emits ``risk.daily_loss_reached`` (the bot tells the subscriber). The risk chain's
  ``limit_daily_loss`` gate refuses new orders until then, and the signal fan-out leaves them out;
  open positions stay as they are (the drawdown guard is what closes). The pause ends by itself
  when the next trading day starts, and that day counts from its own start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from loguru import logger
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.brokers.base import AccountSnapshot
from engine.risk.limits import LimitDefaults, resolve
from engine.store.audit import audit
from engine.store.db import Database, utcnow
from engine.store.events import DAILY_LOSS_REACHED, EventRelay, emit
from engine.store.models import EquityPoint, ExecutionAccount, RiskLimits, User

HUNDRED = Decimal(100)
ACTOR = "daily-loss"


@dataclass(frozen=True, slots=True)
class DailyLoss:
    """One reading: the day's start, the loss so far, and whether this reading paused the owner."""

    account_id: int
    day_start: datetime
    day_start_equity: Decimal
    equity: Decimal
    loss_percent: Decimal
    limit_percent: Decimal
    paused_until: datetime | None  # set when this reading reached the limit


def loss_percent(start_equity: Decimal, equity: Decimal) -> Decimal:
    """The day's loss as a % of its starting equity (0 when it is up, or nothing to lose)."""
    if start_equity <= 0 or equity >= start_equity:
        return Decimal(0)
    return (start_equity - equity) * HUNDRED / start_equity


class DailyLossWatch:
    def __init__(self, db: Database, defaults: LimitDefaults, relay: EventRelay | None = None) -> None:
        self._db = db
        self._defaults = defaults
        self._relay = relay

    async def observe(
        self, account_id: int, snapshot: AccountSnapshot, now: datetime | None = None
    ) -> DailyLoss | None:
        """Take one equity reading of an account (None: its owner has no daily loss limit)."""
        now = now or utcnow()
        day = self._defaults.trading_day
        async with self._db.session() as session:
            row = (
                await session.execute(
                    select(ExecutionAccount, User, RiskLimits)
                    .join(User, User.id == ExecutionAccount.owner_id)
                    .outerjoin(RiskLimits, RiskLimits.user_id == User.id)
                    .where(ExecutionAccount.id == account_id)
                )
            ).one_or_none()
            if row is None:
                return None  # the operator's own account: no subscriber's limits
            account, user, limits_row = row
            limits = resolve(limits_row, self._defaults)
            limit = limits.daily_loss_percent
            if limit is None:
                return None
            start = day.start(now)
            if account.day_start_at is None or account.day_start_at != start:
                before = await session.scalar(
                    select(EquityPoint.equity)
                    .where(EquityPoint.account_id == account_id, EquityPoint.at <= start)
                    .order_by(EquityPoint.at.desc())
                    .limit(1)
                )
                account.day_start_at = start
                account.day_start_equity = before if before is not None and before > 0 else snapshot.equity
            start_equity = account.day_start_equity or snapshot.equity
            loss = loss_percent(start_equity, snapshot.equity)
            reading = DailyLoss(account_id, start, start_equity, snapshot.equity, loss, limit, None)
            if loss < limit or limits.paused(now):
                return reading
            until = day.next_start(now)
            if not await self._pause(session, user.id, until, now):
                return reading
            facts = {
                "account_id": account_id,
                "user_id": user.id,
                "loss_percent": format(loss.quantize(Decimal("0.01")), "f"),
                "limit_percent": format(limit, "f"),
                "day_start_equity": str(start_equity),
                "equity": str(snapshot.equity),
                "currency": snapshot.currency,
                "until": until.isoformat(),
            }
            audit(session, ACTOR, "risk.daily_loss", f"user:{user.id}", **facts)
            emit(session, DAILY_LOSS_REACHED, **facts)
        logger.warning(
            "account {}: daily loss {}% reached the owner's limit {}%; paused until {}",
            account_id,
            facts["loss_percent"],
            facts["limit_percent"],
            facts["until"],
        )
        if self._relay is not None:
            self._relay.notify()
        return DailyLoss(account_id, start, start_equity, snapshot.equity, loss, limit, until)

    async def _pause(self, session: AsyncSession, user_id: int, until: datetime, now: datetime) -> bool:
        """Set the pause once per day: only where it is not already in force."""
        changed = await session.execute(
            update(RiskLimits)
            .where(
                RiskLimits.user_id == user_id,
                or_(RiskLimits.paused_until.is_(None), RiskLimits.paused_until <= now),
            )
            .values(paused_until=until, updated_at=now)
        )
        if changed.rowcount == 1:  # type: ignore[attr-defined]
            return True
        if await session.get(RiskLimits, user_id) is not None:
            return False  # paused already (another reading got there first)
        try:
            async with session.begin_nested():
                session.add(RiskLimits(user_id=user_id, instruments_off=[], paused_until=until))
        except IntegrityError:
            return False
        return True
