"""The drawdown guard: the pure math of its two tiers, and the service that acts on them.

Drawdown % = (reference − equity) / reference × 100, never below 0. The reference is the
account's equity when it started trading under the bot (``reference_equity``, set on the first
equity read) or, with ``DRAWDOWN_REFERENCE=high_water``, its high-water mark.

Tiers (``ExecutionAccount.drawdown_state``):
- ``soft`` at ``DRAWDOWN_SOFT_PERCENT`` (default half the cap): new orders on the account are
  refused (the execution gate reads the state) and ``drawdown.warning`` is emitted once.
- ``hard`` at ``DRAWDOWN_CAP_PERCENT``, or at/below the equity floor (the account's own
  ``equity_floor``, else ``EQUITY_FLOOR``): every position of the account is closed through
  ``PositionCloser.close_account`` (its pending orders cancelled), the account is halted
  (``trading_state="halted"``, ``paused_reason="drawdown"``) and
  ``drawdown.triggered`` is emitted once.
- Re-arm: ``hard`` goes back to ``ok`` only when the drawdown is under half the cap (or under
  the soft tier when that is set lower) and equity is above the floor. The account stays
  paused until its owner or an admin resumes it (``DrawdownGuard.resume_account``).
- ``soft`` clears 10 % below that re-arm level, so equity hovering at the soft tier warns once
  rather than on every wiggle.

The hard tier is written in two steps so that a crash cannot lose or repeat the alert: the
state change and pause are committed first, with a record (``EngineState`` key
``drawdown:<account id>``, phase ``closing``) of the positions to close; after the closes, the
alert is emitted in the same transaction that moves the record to phase ``alerted``. A guard
that finds a ``closing`` record (after a crash) closes again (idempotent) and alerts then.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from loguru import logger
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.brokers.base import AccountSnapshot
from engine.brokers.ownership import NotOwnerError
from engine.brokers.registry import BrokerRegistry
from engine.execution.positions import CloseSummary, PositionCloser
from engine.settings import DrawdownReference, Settings
from engine.states import TRADING, PositionStatus, TradingState
from engine.store.audit import audit
from engine.store.db import Database, utcnow
from engine.store.events import DRAWDOWN_TRIGGERED, DRAWDOWN_WARNING, EventRelay, emit
from engine.store.models import EngineState, EquityPoint, ExecutionAccount, Position, User

HUNDRED = Decimal(100)
SOFT_EXIT_FACTOR = Decimal("0.9")
PAUSED_BY_DRAWDOWN = "drawdown"
GUARD_ACTOR = "drawdown-guard"
RESUME_MESSAGE = "Execution on this account stays paused until its owner or an admin resumes it."


class Tier(StrEnum):
    OK = "ok"
    SOFT = "soft"
    HARD = "hard"


class Action(StrEnum):
    NONE = "none"
    WARN = "warn"  # ok -> soft
    CLEAR = "clear"  # soft -> ok
    TRIGGER = "trigger"  # ok|soft -> hard: close everything, pause, alert
    REARM = "rearm"  # hard -> ok (the account stays paused)


@dataclass(frozen=True, slots=True)
class Limits:
    cap: Decimal
    soft: Decimal
    floor: Decimal | None = None

    def __post_init__(self) -> None:
        if not (Decimal(0) < self.soft <= self.cap < HUNDRED):
            raise ValueError(
                f"drawdown limits must satisfy 0 < soft <= cap < 100 (soft {self.soft}, cap {self.cap})"
            )

    @property
    def rearm(self) -> Decimal:
        """The hard tier re-arms under this drawdown: half the cap, or the soft tier if lower."""
        return min(self.soft, self.cap / 2)

    @property
    def soft_exit(self) -> Decimal:
        return self.rearm * SOFT_EXIT_FACTOR

    def breached(self, drawdown: Decimal, equity: Decimal) -> bool:
        return drawdown >= self.cap or (self.floor is not None and equity <= self.floor)


@dataclass(frozen=True, slots=True)
class Step:
    tier: Tier
    action: Action


def drawdown_percent(reference: Decimal | None, equity: Decimal) -> Decimal:
    """(reference − equity) / reference × 100; 0 when equity is at or above the reference or there is none."""
    if reference is None or reference <= 0:
        return Decimal(0)
    return max((reference - equity) / reference * HUNDRED, Decimal(0))


def next_step(tier: Tier, drawdown: Decimal, equity: Decimal, limits: Limits) -> Step:
    """The tier after observing ``drawdown`` (and ``equity`` for the floor), and what to do about it."""
    breached = limits.breached(drawdown, equity)
    if tier is Tier.HARD:
        if not breached and drawdown < limits.rearm:
            return Step(Tier.OK, Action.REARM)
        return Step(Tier.HARD, Action.NONE)
    if breached:
        return Step(Tier.HARD, Action.TRIGGER)
    if tier is Tier.SOFT:
        if drawdown < limits.soft_exit:
            return Step(Tier.OK, Action.CLEAR)
        return Step(Tier.SOFT, Action.NONE)
    if drawdown >= limits.soft:
        return Step(Tier.SOFT, Action.WARN)
    return Step(Tier.OK, Action.NONE)


def _pct(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


# ---------------------------------------------------------------------------------------- guard


@dataclass(frozen=True, slots=True)
class GuardConfig:
    cap: Decimal = Decimal(20)
    soft: Decimal = Decimal(10)
    reference: DrawdownReference = DrawdownReference.START
    equity_floor: Decimal | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> GuardConfig:
        return cls(
            cap=settings.drawdown_cap_percent,
            soft=settings.soft_drawdown_percent,
            reference=settings.drawdown_reference,
            equity_floor=settings.equity_floor,
        )

    def limits_for(self, account: ExecutionAccount) -> Limits:
        floor = account.equity_floor if account.equity_floor is not None else self.equity_floor
        return Limits(cap=self.cap, soft=self.soft, floor=floor)


@dataclass
class Observation:
    account_id: int
    equity: Decimal
    reference: Decimal | None
    drawdown_percent: Decimal
    tier: Tier
    action: Action
    closed: CloseSummary | None = None


class ResumeOutcome(StrEnum):
    RESUMED = "resumed"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    NOT_PAUSED = "not_paused"
    STILL_IN_DRAWDOWN = "still_in_drawdown"  # hard tier not re-armed; pass reset_reference to start afresh


@dataclass(frozen=True, slots=True)
class ResumeResult:
    outcome: ResumeOutcome
    drawdown_state: str | None = None
    reference_equity: Decimal | None = None


def record_key(account_id: int) -> str:
    return f"drawdown:{account_id}"


@dataclass
class _Trigger:
    account_id: int
    phase: str
    facts: dict[str, Any] = field(default_factory=dict)
    position_ids: list[int] = field(default_factory=list)


class DrawdownGuard:
    """Watches each account's equity against its reference; acts on tier changes exactly once."""

    def __init__(
        self,
        db: Database,
        closer: PositionCloser,
        brokers: BrokerRegistry,
        config: GuardConfig,
        relay: EventRelay | None = None,
        before_close: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self._db = db
        self._closer = closer
        self._brokers = brokers
        self.config = config
        self._relay = relay
        # Called with the account id before closing everything (the loop brings the account's
        # positions up to date with the broker, so manual trades are closed too).
        self.before_close = before_close

    async def observe(
        self, account_id: int, snapshot: AccountSnapshot, *, record_point: bool = False
    ) -> Observation:
        """Take one equity reading of an account: record it, move its tier, act on the move."""
        equity = snapshot.equity
        trigger: _Trigger | None = None
        async with self._db.session() as session:
            account = await session.get(ExecutionAccount, account_id, with_for_update=True)
            if account is None:
                raise KeyError(f"execution account {account_id} does not exist")
            if account.reference_equity is None and equity > 0:
                account.reference_equity = equity
                audit(
                    session,
                    GUARD_ACTOR,
                    "drawdown.reference_set",
                    f"account:{account_id}",
                    equity=str(equity),
                )
            if equity > 0 and (account.high_water_equity is None or equity > account.high_water_equity):
                account.high_water_equity = equity
            reference = (
                account.high_water_equity
                if self.config.reference is DrawdownReference.HIGH_WATER
                else account.reference_equity
            )
            drawdown = drawdown_percent(reference, equity)
            limits = self.config.limits_for(account)
            step = next_step(Tier(account.drawdown_state), drawdown, equity, limits)
            facts: dict[str, Any] = {
                "account_id": account_id,
                "owner_id": account.owner_id,
                "reference": None if reference is None else str(reference),
                "equity": str(equity),
                "drawdown_percent": _pct(drawdown),
                "cap": str(limits.cap),
                "soft": str(limits.soft),
                "equity_floor": None if limits.floor is None else str(limits.floor),
                "currency": snapshot.currency,
            }
            if record_point or step.action is not Action.NONE:
                session.add(
                    EquityPoint(
                        account_id=account_id,
                        at=utcnow(),
                        balance=snapshot.balance,
                        equity=equity,
                        margin=snapshot.margin,
                    )
                )
            target = f"account:{account_id}"
            if step.action is Action.WARN:
                account.drawdown_state = Tier.SOFT.value
                audit(session, GUARD_ACTOR, "drawdown.soft", target, **facts)
                emit(session, DRAWDOWN_WARNING, **facts)
                logger.warning(
                    "account {}: drawdown {}% past the soft tier", account_id, facts["drawdown_percent"]
                )
            elif step.action is Action.CLEAR:
                account.drawdown_state = Tier.OK.value
                audit(session, GUARD_ACTOR, "drawdown.cleared", target, **facts)
            elif step.action is Action.REARM:
                account.drawdown_state = Tier.OK.value
                record = await session.get(EngineState, record_key(account_id))
                if record is not None:
                    await session.delete(record)
                audit(session, GUARD_ACTOR, "drawdown.rearmed", target, paused=account.paused, **facts)
                logger.info("account {}: drawdown guard re-armed (account stays paused)", account_id)
            elif step.action is Action.TRIGGER:
                account.drawdown_state = Tier.HARD.value
                if account.trading_state != TradingState.HALTED:
                    TRADING.move(account, TradingState.HALTED, "trading_state")
                account.paused_reason = PAUSED_BY_DRAWDOWN
                ids = list(
                    (
                        await session.scalars(
                            select(Position.id).where(
                                Position.account_id == account_id,
                                Position.status.in_(
                                    [PositionStatus.OPEN.value, PositionStatus.CLOSING.value]
                                ),
                            )
                        )
                    ).all()
                )
                value = {"phase": "closing", "at": utcnow().isoformat(), "facts": facts, "positions": ids}
                await self._put_record(session, account_id, value)
                audit(session, GUARD_ACTOR, "drawdown.triggered", target, positions=len(ids), **facts)
                logger.error(
                    "account {}: drawdown {}% hit the cap: closing {} positions, pausing the account",
                    account_id,
                    facts["drawdown_percent"],
                    len(ids),
                )
                trigger = _Trigger(account_id, "closing", facts, ids)
            elif step.tier is Tier.HARD:
                trigger = await self._pending_trigger(session, account_id)
        if step.action in (Action.WARN, Action.TRIGGER):
            self._notify()
        observation = Observation(account_id, equity, reference, drawdown, step.tier, step.action)
        if trigger is not None:
            observation.closed = await self._finish(trigger)
        return observation

    async def _put_record(self, session: AsyncSession, account_id: int, value: dict[str, Any]) -> None:
        row = await session.get(EngineState, record_key(account_id), with_for_update=True)
        if row is None:
            session.add(EngineState(key=record_key(account_id), value=value, updated_at=utcnow()))
        else:
            row.value = value

    async def _pending_trigger(self, session: AsyncSession, account_id: int) -> _Trigger | None:
        """While hard: a trigger whose alert is still due (crash), or whose closes partly failed."""
        row = await session.get(EngineState, record_key(account_id))
        if row is None:
            return None
        value = dict(row.value or {})
        ids = [int(i) for i in value.get("positions", [])]
        phase = str(value.get("phase", "closing"))
        if phase == "alerted":
            if not ids:
                return None
            left = (
                await session.scalars(
                    select(Position.id).where(
                        Position.id.in_(ids),
                        Position.status.in_([PositionStatus.OPEN.value, PositionStatus.CLOSING.value]),
                    )
                )
            ).all()
            if not left:
                return None
            ids = list(left)
        return _Trigger(account_id, phase, dict(value.get("facts", {})), ids)

    async def _finish(self, trigger: _Trigger) -> CloseSummary:
        """Close the account's positions (idempotent) and, if not yet done, alert once."""
        if trigger.phase == "closing":
            if self.before_close is not None:
                try:
                    await self.before_close(trigger.account_id)
                except Exception as exc:
                    logger.warning(
                        "account {}: refreshing positions before closing failed: {!r}",
                        trigger.account_id,
                        exc,
                    )
            async with self._db.session() as session:
                trigger.position_ids = list(
                    (
                        await session.scalars(
                            select(Position.id).where(
                                Position.account_id == trigger.account_id,
                                Position.status.in_(
                                    [PositionStatus.OPEN.value, PositionStatus.CLOSING.value]
                                ),
                            )
                        )
                    ).all()
                )
            summary = await self._closer.close_account(trigger.account_id, PAUSED_BY_DRAWDOWN, GUARD_ACTOR)
        else:
            summary = CloseSummary()
            for position_id in trigger.position_ids:  # closes that failed before: try again, no new alert
                summary.add(await self._closer.close_position(position_id, PAUSED_BY_DRAWDOWN, GUARD_ACTOR))
            return summary
        async with self._db.session() as session:
            row = await session.get(EngineState, record_key(trigger.account_id), with_for_update=True)
            if row is None or (row.value or {}).get("phase") != "closing":
                return summary  # another pass already alerted
            row.value = {
                **row.value,
                "phase": "alerted",
                "alerted_at": utcnow().isoformat(),
                "positions": trigger.position_ids,
                "closed": summary.closed,
                "failed": summary.failed,
            }
            payload = {
                **trigger.facts,
                "closed": summary.closed,
                "failed": summary.failed,
                "orders_cancelled": summary.orders_cancelled,
                "pnl": str(summary.pnl),
                "paused": True,
                "resume_required": True,
                "message": RESUME_MESSAGE,
            }
            emit(session, DRAWDOWN_TRIGGERED, **payload)
            audit(
                session,
                GUARD_ACTOR,
                "drawdown.alerted",
                f"account:{trigger.account_id}",
                closed=summary.closed,
                failed=summary.failed,
                orders_cancelled=summary.orders_cancelled,
                orders_failed=summary.orders_failed,
                pnl=str(summary.pnl),
                errors=summary.errors[:10],
            )
        self._notify()
        return summary

    async def resume_account(
        self,
        account_id: int,
        actor: str,
        *,
        user_id: int | None = None,
        reset_reference: bool = False,
    ) -> ResumeResult:
        """Resume execution on a paused account (the bot's ``/resume``); only its owner or an admin may.

        ``user_id``: the Telegram-side user asking (checked against owner/admin role); None means
        the caller has already authorised the actor. While the hard tier has not re-armed the
        account stays paused unless ``reset_reference``: then the reference (and high-water mark)
        restart from the current equity — a fresh start the owner asks for explicitly.
        """
        equity: Decimal | None = None
        if reset_reference:
            async with self._db.session() as session:
                account = await session.get(ExecutionAccount, account_id)
                if account is None:
                    return ResumeResult(ResumeOutcome.NOT_FOUND)
                session.expunge(account)
            try:
                equity = (await (await self._brokers.get(account)).account()).equity
            except NotOwnerError:  # another instance runs the terminal: the equity it last recorded
                async with self._db.session() as session:
                    equity = await session.scalar(
                        select(EquityPoint.equity)
                        .where(EquityPoint.account_id == account_id)
                        .order_by(EquityPoint.at.desc(), EquityPoint.id.desc())
                        .limit(1)
                    )
                if equity is None:
                    raise
        async with self._db.session() as session:
            account = await session.get(ExecutionAccount, account_id, with_for_update=True)
            if account is None:
                return ResumeResult(ResumeOutcome.NOT_FOUND)
            if user_id is not None and account.owner_id != user_id:
                user = await session.get(User, user_id)
                if user is None or user.role != "admin":
                    return ResumeResult(ResumeOutcome.FORBIDDEN, account.drawdown_state)
            if not account.paused:
                return ResumeResult(
                    ResumeOutcome.NOT_PAUSED, account.drawdown_state, account.reference_equity
                )
            target = f"account:{account_id}"
            if account.drawdown_state == Tier.HARD.value and not reset_reference:
                return ResumeResult(
                    ResumeOutcome.STILL_IN_DRAWDOWN, account.drawdown_state, account.reference_equity
                )
            if reset_reference and equity is not None:
                audit(
                    session,
                    actor,
                    "drawdown.reference_reset",
                    target,
                    old=str(account.reference_equity),
                    new=str(equity),
                )
                account.reference_equity = equity
                account.high_water_equity = equity
                account.drawdown_state = Tier.OK.value
            record = await session.get(EngineState, record_key(account_id))
            if record is not None:
                await session.delete(record)
            audit(
                session,
                actor,
                "account.resumed",
                target,
                was=account.paused_reason,
                state=account.trading_state,
            )
            TRADING.move(account, TradingState.ACTIVE, "trading_state")
            account.paused_reason = None
            return ResumeResult(ResumeOutcome.RESUMED, account.drawdown_state, account.reference_equity)

    def _notify(self) -> None:
        if self._relay is not None:
            self._relay.notify()
