"""Auto-execution: for subscribers who opted in (and whose plan includes it), a signal executes
without a tap, sized by the subscriber's risk limits (``engine.risk.limits``: their sizing and max
lots, the same as for a tapped approval; ``/auto risk`` and ``/auto maxvol`` set those two).

A relay subscriber on ``signal.accepted`` (and ``engine.resumed``, for signals that arrived
while paused) approves the signal for each such subscriber: it moves the pending DM decision
the fan-out opened to APPROVED, or inserts one (channel mode), with ``via="auto"``; the unique
(signal, user) pair makes it once. Each approval is audited, emits ``decision.recorded``, and is handed to
execution after its commit. A subscriber is approved only when an order for the signal would
pass the pre-trade risk chain (``engine.risk.chain``: pause, account state, market hours, plan,
drawdown, ...); the same chain refuses at the moment of execution anyway (an expired plan,
auto-execution turned off since).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from loguru import logger
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.billing.entitlements import VIA_AUTO, standing
from engine.billing.plans import AUTO_EXECUTE, PlanCatalog
from engine.risk.chain import RiskChain, TradeContext
from engine.risk.limits import (
    EffectiveLimits,
    LimitError,
    RiskLimitsService,
    Sizing,
    check_number,
    limits_of,
)
from engine.settings import Settings
from engine.states import DecisionStatus, SignalStatus, UserStatus
from engine.store.audit import audit
from engine.store.db import Database, utcnow
from engine.store.events import DECISION_RECORDED, ENGINE_RESUMED, SIGNAL_ACCEPTED, Event, EventRelay, emit
from engine.store.models import AutoTradeSettings, Decision, ExecutionAccount, Signal, User

_OPEN = (SignalStatus.ACCEPTED.value, SignalStatus.DISPATCHED.value)


class AutoTradeError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class AutoTradeView:
    enabled: bool
    limits: EffectiveLimits  # how auto-executed orders are sized: the subscriber's risk limits
    entitled: bool  # the subscriber's plan includes auto-execution now


class AutoExecutor:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        catalog: PlanCatalog,
        relay: EventRelay | None = None,
        submit: Callable[[str], Any] | None = None,
        *,
        chain: RiskChain,
        limits: RiskLimitsService,
    ) -> None:
        self._db = db
        self._chain = chain  # the execution service's own risk chain, entitlement gate included
        self._limits = limits  # where the sizing of auto-executed orders is kept
        self._settings = settings
        self._catalog = catalog
        self._relay = relay
        self._submit = submit  # ExecutionService.submit_in_background

    # ------------------------------------------------------------------ the subscriber's settings

    async def view(self, telegram_id: int) -> AutoTradeView | None:
        async with self._db.session() as session:
            user = await session.scalar(select(User).where(User.telegram_id == telegram_id))
            if user is None:
                return None
            prefs = await session.get(AutoTradeSettings, user.id)
            st = await standing(session, user.id, self._catalog)
            limits = await limits_of(session, user.id, self._limits.defaults)
        return AutoTradeView(
            enabled=bool(prefs and prefs.enabled), limits=limits, entitled=st.allows(AUTO_EXECUTE)
        )

    async def configure(
        self,
        telegram_id: int,
        *,
        enabled: bool | None = None,
        risk_percent: Decimal | None = None,
        max_volume: Decimal | None = None,
        clear_max_volume: bool = False,
    ) -> AutoTradeView:
        """Change the opt-in, or the risk limits auto-executed orders are sized by: risk % of equity
        (0 < x <= 10; sizing becomes ``risk_percent``) or max lots per trade (0.01..100), two
        decimals at most, checked as /settings → Risk checks them."""
        try:
            if risk_percent is not None:
                risk_percent = Decimal(check_number("risk_percent", risk_percent))
        except LimitError as exc:
            raise AutoTradeError("bad_risk", str(exc)) from None
        try:
            if max_volume is not None:
                max_volume = Decimal(check_number("max_lots", max_volume))
        except LimitError as exc:
            raise AutoTradeError("bad_volume", str(exc)) from None
        async with self._db.session() as session:
            user = await session.scalar(select(User).where(User.telegram_id == telegram_id))
            if user is None:
                raise AutoTradeError("unknown_user", "send /start first")
            st = await standing(session, user.id, self._catalog)
            if enabled and not st.allows(AUTO_EXECUTE):
                raise AutoTradeError(
                    "plan_required", f"the {st.plan.key} plan does not include auto-execution"
                )
            prefs = await session.get(AutoTradeSettings, user.id, with_for_update=True)
            if prefs is None:
                prefs = AutoTradeSettings(user_id=user.id, enabled=False)
                session.add(prefs)
            actor = f"tg:{telegram_id}"
            if enabled is not None:
                prefs.enabled = enabled
                audit(session, actor, "auto.configured", f"user:{user.id}", enabled=enabled)
            sizing: dict[str, Any] = {}
            if risk_percent is not None:
                sizing.update(sizing=Sizing.RISK_PERCENT.value, risk_percent=risk_percent)
            if max_volume is not None or clear_max_volume:
                sizing["max_lots"] = max_volume
            if sizing:
                await self._limits.write(session, user.id, actor, **sizing)
            limits = await limits_of(session, user.id, self._limits.defaults)
            return AutoTradeView(prefs.enabled, limits, st.allows(AUTO_EXECUTE))

    # ------------------------------------------------------------------ the relay subscriber

    async def handle(self, event: Event) -> None:
        await self.handle_batch([event])

    async def handle_batch(self, events: Sequence[Event]) -> list[str]:
        """The relay subscriber. One query for the batch finds the opted-in subscribers; with none
        (the usual case) the batch costs nothing more, whatever the number of signals."""
        ids = [str(e.payload["signal_id"]) for e in events if e.type == SIGNAL_ACCEPTED]
        backlog = any(e.type == ENGINE_RESUMED for e in events)
        if not ids and not backlog:
            return []
        async with self._db.sessions() as session:
            if not await self._candidates(session):
                return []
        if backlog:
            return await self.run_backlog()
        approved: list[str] = []
        for signal_id in ids:
            approved += await self.run_for_signal(signal_id)
        return approved

    async def run_backlog(self) -> list[str]:
        async with self._db.session() as session:
            ids = (
                await session.scalars(
                    select(Signal.id)
                    .where(Signal.status.in_(_OPEN), Signal.expires_at > utcnow())
                    .order_by(Signal.received_at)
                )
            ).all()
        approved: list[str] = []
        for signal_id in ids:
            approved += await self.run_for_signal(signal_id)
        return approved

    async def run_for_signal(self, signal_id: str) -> list[str]:
        """Approve ``signal_id`` for every opted-in, entitled subscriber; returns the decision ids."""
        now = utcnow()
        approved: list[str] = []
        async with self._db.session() as session:
            signal = await session.get(Signal, signal_id)
            if signal is None or signal.status not in _OPEN or signal.expires_at <= now:
                return []
            for user, account in await self._candidates(session):
                context = TradeContext(session, account, user, signal, now, via=VIA_AUTO)
                if await self._chain.check(context) is not None:
                    continue
                decision_id = await self._approve(session, signal, user, account)
                if decision_id is not None:
                    approved.append(decision_id)
        if approved and self._relay is not None:
            self._relay.notify()
        for decision_id in approved:
            if self._submit is not None:
                self._submit(decision_id)
        if approved:
            logger.info("signal {}: auto-executing for {} subscriber(s)", signal_id, len(approved))
        return approved

    async def _candidates(self, session: AsyncSession) -> list[tuple[User, ExecutionAccount]]:
        rows = (
            await session.execute(
                select(User, ExecutionAccount)
                .join(AutoTradeSettings, AutoTradeSettings.user_id == User.id)
                .join(ExecutionAccount, ExecutionAccount.owner_id == User.id)
                .where(
                    AutoTradeSettings.enabled.is_(True),
                    User.status == UserStatus.ACTIVE.value,
                    User.consent_version == self._settings.consent_version,
                    ExecutionAccount.active.is_(True),
                )
                .order_by(User.id, ExecutionAccount.id.desc())
            )
        ).all()
        seen: set[int] = set()
        out = []
        for user, account in rows:
            if user.id in seen:
                continue  # the newest active account only, as approvals use
            seen.add(user.id)
            out.append((user, account))
        return out

    async def _approve(
        self,
        session: AsyncSession,
        signal: Signal,
        user: User,
        account: ExecutionAccount,
    ) -> str | None:
        now = utcnow()
        values = {
            "status": DecisionStatus.APPROVED.value,
            "via": VIA_AUTO,
            "account_id": account.id,
            "consent_version": user.consent_version,
            "decided_at": now,
        }
        existing = await session.scalar(
            select(Decision).where(Decision.signal_id == signal.id, Decision.user_id == user.id)
        )
        if existing is not None:
            if existing.status != DecisionStatus.PENDING:
                return None  # the subscriber decided already
            changed = await session.execute(
                update(Decision)
                .where(Decision.id == existing.id, Decision.status == DecisionStatus.PENDING.value)
                .values(**values)
            )
            if changed.rowcount != 1:  # type: ignore[attr-defined]
                return None  # a tap got there first
            decision_id = existing.id
        else:
            decision = Decision(signal_id=signal.id, user_id=user.id, chat_id=user.telegram_id, **values)
            try:
                async with session.begin_nested():
                    session.add(decision)
            except IntegrityError:
                return None  # a decision appeared meanwhile (a channel tap): it stands
            decision_id = decision.id
        audit(
            session,
            "auto",
            "decision.approved",
            f"decision:{decision_id}",
            signal_id=signal.id,
            user_id=user.id,
            telegram_id=user.telegram_id,
            account_id=account.id,
            via=VIA_AUTO,
            consent_version=user.consent_version,
        )
        emit(
            session,
            DECISION_RECORDED,
            decision_id=decision_id,
            signal_id=signal.id,
            user_id=user.id,
            status=DecisionStatus.APPROVED.value,
            via=VIA_AUTO,
        )
        return decision_id
