"""Approvals: one decision per signal and subscriber, recorded exactly once, audited.

The database decides who wins, not a check before a write: in DM mode the pending decision
row is moved by a conditional ``UPDATE ... WHERE status = 'pending'`` (the first tap changes
one row, every later or concurrent tap changes none); in channel mode the row is inserted on
the tap and the unique ``(signal_id, user_id)`` constraint refuses a second one. Each recorded
decision carries the subscriber's active account and the disclaimer version they consented to,
is audited (user, chat, message, time, consent version) and emits ``decision.recorded``; an
approval is handed to execution only after its commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.accounts.service import AccountService
from engine.accounts.subscribers import STATUS_ACTIVE, actor_for
from engine.risk.control import is_paused
from engine.settings import Settings
from engine.states import DECISION, SIGNAL, DecisionStatus, SignalStatus
from engine.store.audit import audit
from engine.store.db import Database, utcnow
from engine.store.events import DECISION_RECORDED, SIGNAL_EXPIRED, EventRelay, emit
from engine.store.models import Decision, Signal, User

VIA_DM = "dm"
VIA_CHANNEL = "channel"
SOURCE_CHAT = "chat"  # a tap on the buttons in Telegram
SOURCE_MINIAPP = "miniapp"  # the Mini App (bot/webapp)
_OPEN_SIGNAL = (SignalStatus.ACCEPTED.value, SignalStatus.DISPATCHED.value)


class Verdict(StrEnum):
    APPROVED = "approved"  # recorded now
    REJECTED = "rejected"  # recorded now
    ALREADY_APPROVED = "already_approved"
    ALREADY_REJECTED = "already_rejected"
    EXPIRED = "expired"
    NOT_YOURS = "not_yours"  # a tap on someone else's message (forged callback)
    NOT_FOUND = "not_found"
    UNKNOWN_USER = "unknown_user"  # channel mode: the tapper never started the bot
    NEEDS_CONSENT = "needs_consent"  # not consented to the current disclaimer, or left
    NO_ACCOUNT = "no_account"
    PAUSED = "paused"


_ALREADY = {
    DecisionStatus.APPROVED.value: Verdict.ALREADY_APPROVED,
    DecisionStatus.REJECTED.value: Verdict.ALREADY_REJECTED,
    DecisionStatus.EXPIRED.value: Verdict.EXPIRED,
}


@dataclass(frozen=True, slots=True)
class DecisionOutcome:
    verdict: Verdict
    decision_id: str | None = None
    signal_id: str | None = None
    account_id: int | None = None

    @property
    def recorded(self) -> bool:
        return self.verdict in (Verdict.APPROVED, Verdict.REJECTED)


def is_expired(signal: Signal, now: datetime) -> bool:
    return signal.status not in _OPEN_SIGNAL or signal.expires_at <= now


class ApprovalService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        accounts: AccountService,
        relay: EventRelay | None = None,
        execute: Callable[[str], Any] | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._accounts = accounts
        self._relay = relay
        self._execute = execute  # e.g. ExecutionService.submit_in_background

    # ------------------------------------------------------------------ delivery

    async def record_message(self, session: AsyncSession, decision_id: str, message_id: int) -> None:
        """The DM carrying the buttons was delivered as ``message_id``."""
        await session.execute(
            update(Decision)
            .where(Decision.id == decision_id, Decision.message_id.is_(None))
            .values(message_id=message_id)
        )

    # ------------------------------------------------------------------ taps

    async def decide_dm(
        self,
        decision_id: str,
        *,
        telegram_id: int,
        chat_id: int,
        message_id: int,
        approve: bool,
        execute: bool = True,
    ) -> DecisionOutcome:
        """A tap on Approve / Reject under the signal's DM (``message_id`` in ``chat_id``)."""
        return await self._decide_pending(
            decision_id, telegram_id, approve, execute, tapped=(chat_id, message_id)
        )

    async def decide_own(
        self, decision_id: str, *, telegram_id: int, approve: bool, execute: bool = True
    ) -> DecisionOutcome:
        """The subscriber decides a pending DM decision away from the chat (the Mini App, with
        Telegram's signed ``initData`` proving who they are): the same conditional update as a
        tap, so a decision is recorded once whichever front end gets there first, and the DM is
        edited as after a tap (``decision.recorded``)."""
        return await self._decide_pending(decision_id, telegram_id, approve, execute, tapped=None)

    async def _decide_pending(
        self,
        decision_id: str,
        telegram_id: int,
        approve: bool,
        execute: bool,
        *,
        tapped: tuple[int, int] | None,
    ) -> DecisionOutcome:
        now = utcnow()
        target = DecisionStatus.APPROVED if approve else DecisionStatus.REJECTED
        async with self._db.session() as session:
            decision = await session.get(Decision, decision_id)
            if decision is None or decision.via != VIA_DM:
                return DecisionOutcome(Verdict.NOT_FOUND, decision_id)
            user = await session.get(User, decision.user_id)
            assert user is not None
            if tapped is None:  # the Mini App: the message stays the one the DM went out as
                chat_id, message_id = decision.chat_id, decision.message_id
                owns = user.telegram_id == telegram_id
            else:
                chat_id, message_id = tapped
                owns = (
                    user.telegram_id == telegram_id
                    and decision.chat_id == chat_id
                    and decision.message_id in (None, message_id)
                )
            if not owns:
                audit(
                    session,
                    actor_for(telegram_id),
                    "decision.refused",
                    f"decision:{decision_id}",
                    reason="not the owner of this message" if tapped else "not the owner of this decision",
                    chat_id=chat_id,
                    message_id=message_id,
                )
                return DecisionOutcome(Verdict.NOT_YOURS, decision_id, decision.signal_id)
            signal = await session.get(Signal, decision.signal_id)
            assert signal is not None
            base = DecisionOutcome(Verdict.NOT_FOUND, decision_id, signal.id)
            if decision.status != DecisionStatus.PENDING:
                return _with(base, _ALREADY[decision.status])
            if is_expired(signal, now):
                await self._expire_decisions(session, signal.id)
                return _with(base, Verdict.EXPIRED)
            account_id = decision.account_id
            if approve:
                refusal, account_id = await self._may_approve(session, user)
                if refusal is not None:
                    return _with(base, refusal)
            DECISION.check(DecisionStatus.PENDING, target)
            changed = await session.execute(
                update(Decision)
                .where(Decision.id == decision_id, Decision.status == DecisionStatus.PENDING.value)
                .values(
                    status=target.value,
                    decided_at=now,
                    account_id=account_id,
                    consent_version=user.consent_version,
                    message_id=message_id,
                )
            )
            if changed.rowcount != 1:  # type: ignore[attr-defined]
                await session.rollback()
                status = await session.scalar(select(Decision.status).where(Decision.id == decision_id))
                return _with(base, _ALREADY.get(status or "", Verdict.NOT_FOUND))
            self._record(
                session,
                decision_id,
                signal.id,
                user,
                telegram_id,
                chat_id,
                message_id,
                target,
                VIA_DM,
                now,
                source=SOURCE_CHAT if tapped else SOURCE_MINIAPP,
            )
        return self._after_commit(decision_id, signal.id, account_id, target, execute)

    async def decide_channel(
        self,
        signal_id: str,
        *,
        telegram_id: int,
        chat_id: int,
        message_id: int,
        approve: bool,
        execute: bool = True,
        source: str = SOURCE_CHAT,
    ) -> DecisionOutcome:
        """A tap on the channel post (``message_id`` in ``chat_id``); the Mini App decides a
        channel signal here too, naming the post and ``source=SOURCE_MINIAPP``."""
        now = utcnow()
        target = DecisionStatus.APPROVED if approve else DecisionStatus.REJECTED
        async with self._db.session() as session:
            user = await session.scalar(select(User).where(User.telegram_id == telegram_id))
            if user is None:
                return DecisionOutcome(Verdict.UNKNOWN_USER, None, signal_id)
            if user.status != STATUS_ACTIVE or user.consent_version != self._settings.consent_version:
                return DecisionOutcome(Verdict.NEEDS_CONSENT, None, signal_id)
            signal = await session.get(Signal, signal_id)
            if signal is None:
                return DecisionOutcome(Verdict.NOT_FOUND, None, signal_id)
            existing = await session.scalar(
                select(Decision).where(Decision.signal_id == signal_id, Decision.user_id == user.id)
            )
            if existing is not None:
                return DecisionOutcome(_ALREADY.get(existing.status, Verdict.EXPIRED), existing.id, signal_id)
            if is_expired(signal, now):
                return DecisionOutcome(Verdict.EXPIRED, None, signal_id)
            account_id: int | None = None
            refusal, account_id = await self._may_approve(session, user)
            if approve and refusal is not None:
                return DecisionOutcome(refusal, None, signal_id)
            decision = Decision(
                signal_id=signal_id,
                user_id=user.id,
                account_id=account_id,
                status=target.value,
                via=VIA_CHANNEL,
                chat_id=chat_id,
                message_id=message_id,
                consent_version=user.consent_version,
                decided_at=now,
            )
            session.add(decision)
            user_id = user.id  # the rollback below expires the loaded rows
            try:
                await session.flush()
            except IntegrityError:
                await session.rollback()
                status = await session.scalar(
                    select(Decision.status).where(
                        Decision.signal_id == signal_id, Decision.user_id == user_id
                    )
                )
                return DecisionOutcome(_ALREADY.get(status or "", Verdict.NOT_FOUND), None, signal_id)
            decision_id = decision.id
            self._record(
                session,
                decision_id,
                signal_id,
                user,
                telegram_id,
                chat_id,
                message_id,
                target,
                VIA_CHANNEL,
                now,
                source=source,
            )
        return self._after_commit(decision_id, signal_id, account_id, target, execute)

    async def _may_approve(self, session: AsyncSession, user: User) -> tuple[Verdict | None, int | None]:
        account = await self._accounts.active_account(session, user.id)
        if user.status != STATUS_ACTIVE or user.consent_version != self._settings.consent_version:
            return Verdict.NEEDS_CONSENT, None
        if await is_paused(session):
            return Verdict.PAUSED, None
        if account is None:
            return Verdict.NO_ACCOUNT, None
        return None, account.id

    def _record(
        self,
        session: AsyncSession,
        decision_id: str,
        signal_id: str,
        user: User,
        telegram_id: int,
        chat_id: int | None,
        message_id: int | None,
        target: DecisionStatus,
        via: str,
        now: datetime,
        *,
        source: str = SOURCE_CHAT,
    ) -> None:
        audit(
            session,
            actor_for(telegram_id),
            f"decision.{target.value}",
            f"decision:{decision_id}",
            signal_id=signal_id,
            user_id=user.id,
            telegram_id=telegram_id,
            chat_id=chat_id,
            message_id=message_id,
            consent_version=user.consent_version,
            via=via,
            source=source,
            decided_at=now.isoformat(),
        )
        emit(
            session,
            DECISION_RECORDED,
            decision_id=decision_id,
            signal_id=signal_id,
            user_id=user.id,
            status=target.value,
            via=via,
        )

    def _after_commit(
        self, decision_id: str, signal_id: str, account_id: int | None, target: DecisionStatus, execute: bool
    ) -> DecisionOutcome:
        if self._relay is not None:
            self._relay.notify()
        verdict = Verdict.APPROVED if target is DecisionStatus.APPROVED else Verdict.REJECTED
        outcome = DecisionOutcome(verdict, decision_id, signal_id, account_id)
        if execute:
            self.execute(outcome)
        return outcome

    def execute(self, outcome: DecisionOutcome) -> None:
        """Hand a just-recorded approval to execution (never before its commit; once per approval).

        ``decide_*(..., execute=False)`` leaves this to the caller, e.g. the bot answers the tap
        first so the user's toast does not wait behind the broker work.
        """
        if outcome.verdict is Verdict.APPROVED and outcome.decision_id and self._execute is not None:
            self._execute(outcome.decision_id)

    # ------------------------------------------------------------------ expiry

    async def _expire_decisions(self, session: AsyncSession, signal_id: str) -> None:
        DECISION.check(DecisionStatus.PENDING, DecisionStatus.EXPIRED)
        await session.execute(
            update(Decision)
            .where(Decision.signal_id == signal_id, Decision.status == DecisionStatus.PENDING.value)
            .values(status=DecisionStatus.EXPIRED.value, decided_at=utcnow())
        )

    async def expire_due(self, limit: int = 100) -> list[str]:
        """Signals past their approval window -> EXPIRED, their pending decisions too; emits ``signal.expired``."""
        now = utcnow()
        expired: list[str] = []
        async with self._db.session() as session:
            ids = (
                await session.scalars(
                    select(Signal.id)
                    .where(Signal.status.in_(_OPEN_SIGNAL), Signal.expires_at <= now)
                    .order_by(Signal.expires_at)
                    .limit(limit)
                )
            ).all()
            for signal_id in ids:
                signal = await session.get(Signal, signal_id)
                assert signal is not None
                SIGNAL.check(signal.status, SignalStatus.EXPIRED)
                changed = await session.execute(
                    update(Signal)
                    .where(Signal.id == signal_id, Signal.status.in_(_OPEN_SIGNAL))
                    .values(status=SignalStatus.EXPIRED.value)
                )
                if changed.rowcount != 1:  # type: ignore[attr-defined]
                    continue  # another instance got there first
                await self._expire_decisions(session, signal_id)
                emit(session, SIGNAL_EXPIRED, signal_id=signal_id)
                expired.append(signal_id)
        if expired and self._relay is not None:
            self._relay.notify()
        return expired


def _with(outcome: DecisionOutcome, verdict: Verdict) -> DecisionOutcome:
    return DecisionOutcome(verdict, outcome.decision_id, outcome.signal_id, outcome.account_id)
