"""A subscriber's own controls on their positions: Close, Close 50 %, Stop → entry.

A control names either one position (``/positions``) or a decision (the buttons under a filled
signal: every position that subscriber's approval opened, one per target leg on a hedging
account). It becomes one ``SignalUpdate`` per position (``user_id`` and ``position_id`` set),
each with its ``signal.updated`` event, all in one transaction; ``engine.management.changes``
then applies each exactly once like a producer's update (claim row, claim committed before the
broker call, lost answers resolved at the terminal).

What keeps a tap from ever making a second broker order:
- the transaction first locks the positions (a no-op ``UPDATE``: row locks on PostgreSQL, the
  database's write lock on SQLite), so two taps at once are decided one after the other;
- the same button used again (``key``: the bot makes it from the confirmation message, so a
  double tap on *Yes, close* is the same key) is a replay: the original request, nothing new
  (unique ``(user_id, idempotency_key)`` is the backstop);
- while any change on one of the positions is still pending, claimed or unknown, or the position
  is being closed, a new control is refused as ``busy``;
- a position already closed, another subscriber's position and a stop already at the entry are
  answered without storing anything.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from engine.ingest.service import rfc3339
from engine.states import ChangeStatus, PositionStatus
from engine.store.db import utcnow
from engine.store.events import SIGNAL_UPDATED, emit
from engine.store.ids import uuid4
from engine.store.models import (
    Decision,
    ExecutionAccount,
    Order,
    Position,
    PositionChange,
    SignalUpdate,
    User,
)

# The subscriber's buttons -> the update they make (CONTRACTS 1a actions).
CONTROLS: dict[str, tuple[str, dict[str, Any]]] = {
    "close": ("close", {"percent": 100}),
    "close_half": ("close", {"percent": 50}),
    "stop_to_entry": ("move_sl", {"sl": "entry"}),
}
_IN_FLIGHT = (ChangeStatus.PENDING.value, ChangeStatus.CLAIMED.value, ChangeStatus.UNKNOWN.value)
_OPEN = (PositionStatus.OPEN.value, PositionStatus.CLOSING.value)


class Verdict(StrEnum):
    ACCEPTED = "accepted"  # stored: the positions are being changed, the outcome is told as a reply
    REPLAYED = "replayed"  # this button was used already: the original request (``state`` says where)
    NOT_FOUND = "not_found"  # no such position or signal, or the tapper is not a subscriber
    NOT_YOURS = "not_yours"  # another subscriber's position
    CLOSED = "closed"  # nothing of it is open any more
    BUSY = "busy"  # a change on it is still being carried out, or it is being closed
    AT_ENTRY = "at_entry"  # Stop → entry: the stop is already at the entry
    MANUAL = "manual"  # opened in the terminal, not from a signal: nothing to apply an update to


@dataclass(frozen=True, slots=True)
class Target:
    """What a button acts on: one position (``position_id``) or one decision's positions."""

    position_id: int | None = None
    decision_id: str | None = None

    def __post_init__(self) -> None:
        if (self.position_id is None) == (self.decision_id is None):
            raise ValueError("a control names one position or one decision")


@dataclass(frozen=True, slots=True)
class OwnPosition:
    """One of a subscriber's open positions, as the store has it."""

    id: int
    account_id: int
    ticket: str
    symbol: str
    side: str
    volume: Decimal
    open_price: Decimal
    sl: Decimal | None
    tp: Decimal | None
    status: str  # open | closing
    opened_at: datetime
    signal_id: str | None  # None: opened in the terminal (no controls)
    decision_id: str | None


@dataclass(frozen=True, slots=True)
class ControlOutcome:
    verdict: Verdict
    positions: tuple[OwnPosition, ...] = ()  # what the control acts on (open ones)
    update_ids: tuple[str, ...] = ()
    # REPLAYED: where the original request stands: in_progress | applied | refused (+ reason)
    state: str | None = None
    reason_code: str | None = None
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _own(position: Position, order: Order | None) -> OwnPosition:
    return OwnPosition(
        id=position.id,
        account_id=position.account_id,
        ticket=position.ticket,
        symbol=position.symbol,
        side=position.side,
        volume=position.volume,
        open_price=position.open_price,
        sl=position.sl,
        tp=position.tp,
        status=position.status,
        opened_at=position.opened_at,
        signal_id=order.signal_id if order is not None else None,
        decision_id=order.decision_id if order is not None else None,
    )


async def user_by_telegram(session: AsyncSession, telegram_id: int) -> User | None:
    return await session.scalar(select(User).where(User.telegram_id == telegram_id))


async def own_positions(session: AsyncSession, telegram_id: int, limit: int) -> list[OwnPosition]:
    """The subscriber's open positions on every account they own, oldest first."""
    user = await user_by_telegram(session, telegram_id)
    if user is None:
        return []
    rows = await session.execute(
        select(Position, Order)
        .join(ExecutionAccount, ExecutionAccount.id == Position.account_id)
        .outerjoin(Order, Order.id == Position.order_id)
        .where(ExecutionAccount.owner_id == user.id, Position.status.in_(_OPEN))
        .order_by(Position.opened_at, Position.id)
        .limit(limit)
    )
    return [_own(p, o) for p, o in rows.all()]


async def _targets(
    session: AsyncSession, target: Target
) -> tuple[list[tuple[Position, Order | None]], int | None]:
    """The positions a control names (closed ones included) and the owner they belong to."""
    if target.position_id is not None:
        found = (
            await session.execute(
                select(Position, Order, ExecutionAccount.owner_id)
                .join(ExecutionAccount, ExecutionAccount.id == Position.account_id)
                .outerjoin(Order, Order.id == Position.order_id)
                .where(Position.id == target.position_id)
            )
        ).first()
        if found is None:
            return [], None
        return [(found[0], found[1])], found[2]
    decision = await session.get(Decision, target.decision_id)
    if decision is None:
        return [], None
    rows = await session.execute(
        select(Position, Order)
        .join(Order, Order.id == Position.order_id)
        .where(Order.decision_id == decision.id)
        .order_by(Position.id)
    )
    return [(p, o) for p, o in rows.all()], decision.user_id


async def describe(session: AsyncSession, telegram_id: int, target: Target) -> ControlOutcome:
    """What a control would act on, and whether it may (no lock, nothing written): the bot asks
    this before it offers a confirmation."""
    user = await user_by_telegram(session, telegram_id)
    found, owner = await _targets(session, target)
    return _check(user, found, owner)


def _check(
    user: User | None, found: list[tuple[Position, Order | None]], owner: int | None
) -> ControlOutcome:
    if user is None or not found:
        return ControlOutcome(Verdict.NOT_FOUND)
    if owner != user.id:
        return ControlOutcome(Verdict.NOT_YOURS)
    open_ = [(p, o) for p, o in found if p.status in _OPEN]
    if not open_:
        return ControlOutcome(Verdict.CLOSED)
    views = tuple(_own(p, o) for p, o in open_)
    if all(o is None for _p, o in open_):
        return ControlOutcome(Verdict.MANUAL, views)
    if any(p.status == PositionStatus.CLOSING.value for p, _o in open_):
        return ControlOutcome(Verdict.BUSY, views)
    return ControlOutcome(Verdict.ACCEPTED, views)


def _key(key: str, position_id: int) -> str:
    return f"{key[:100]}:{position_id}"


def _body_hash(position_id: int, action: str, params: dict[str, Any]) -> str:
    return hashlib.sha256(f"{position_id}:{action}:{sorted(params.items())}".encode()).hexdigest()


async def _replay(session: AsyncSession, user_id: int, keys: list[str]) -> ControlOutcome | None:
    found = (
        await session.scalars(
            select(SignalUpdate).where(
                SignalUpdate.user_id == user_id, SignalUpdate.idempotency_key.in_(keys)
            )
        )
    ).all()
    if not found:
        return None
    changes = (
        await session.scalars(
            select(PositionChange).where(PositionChange.update_id.in_([u.id for u in found]))
        )
    ).all()
    if any(u.status != "planned" for u in found) or any(c.status in _IN_FLIGHT for c in changes):
        state, code, reason = "in_progress", None, None
    else:
        refused = [c for c in changes if c.status == ChangeStatus.REFUSED.value]
        applied = [c for c in changes if c.status == ChangeStatus.APPLIED.value]
        if refused and not applied:
            state, code, reason = "refused", refused[0].reason_code, refused[0].reason
        else:
            state, code, reason = "applied", None, None
    return ControlOutcome(
        Verdict.REPLAYED,
        update_ids=tuple(u.id for u in found),
        state=state,
        reason_code=code,
        reason=reason,
    )


async def _busy(session: AsyncSession, position_ids: list[int]) -> bool:
    """A change on one of these positions is not settled yet (or not even planned)."""
    change = await session.scalar(
        select(PositionChange.id)
        .where(PositionChange.position_id.in_(position_ids), PositionChange.status.in_(_IN_FLIGHT))
        .limit(1)
    )
    if change is not None:
        return True
    unplanned = await session.scalar(
        select(SignalUpdate.id)
        .where(SignalUpdate.position_id.in_(position_ids), SignalUpdate.status != "planned")
        .limit(1)
    )
    return unplanned is not None


def _at_entry(position: Position) -> bool:
    return position.sl is not None and position.sl == position.open_price


async def request(
    session: AsyncSession, telegram_id: int, target: Target, control: str, key: str
) -> ControlOutcome:
    """Store a subscriber's control, in the caller's transaction (see the module's docstring)."""
    if control not in CONTROLS:
        raise ValueError(f"unknown control {control!r}")
    action, params = CONTROLS[control]
    user = await user_by_telegram(session, telegram_id)
    found, owner = await _targets(session, target)
    if user is None or not found or owner != user.id:
        return _check(user, found, owner)
    ids = [p.id for p, _o in found]
    # The lock: from here on, another control on these positions waits for this transaction.
    await session.execute(
        update(Position)
        .where(Position.id.in_(ids))
        .values(ticket=Position.ticket)
        .execution_options(synchronize_session=False)
    )
    for position, _order in found:
        await session.refresh(position)
    replay = await _replay(session, user.id, [_key(key, i) for i in ids])
    if replay is not None:
        return replay
    checked = _check(user, found, owner)
    if checked.verdict is not Verdict.ACCEPTED:
        return checked
    acting = [(p, o) for p, o in found if p.status == PositionStatus.OPEN.value and o is not None]
    if await _busy(session, [p.id for p, _o in acting]):
        return ControlOutcome(Verdict.BUSY, checked.positions)
    if action == "move_sl":
        acting = [(p, o) for p, o in acting if not _at_entry(p)]
        if not acting:
            return ControlOutcome(Verdict.AT_ENTRY, checked.positions)
    update_ids: list[str] = []
    now = utcnow()
    for position, order in acting:
        assert order is not None
        row = SignalUpdate(
            id=uuid4(),
            signal_id=order.signal_id,
            user_id=user.id,
            position_id=position.id,
            idempotency_key=_key(key, position.id),
            body_hash=_body_hash(position.id, action, params),
            action=action,
            params=dict(params),
            status="accepted",
            received_at=now,
        )
        session.add(row)
        await session.flush()
        emit(
            session,
            SIGNAL_UPDATED,
            update_id=row.id,
            signal_id=row.signal_id,
            source="subscriber",
            user_id=user.id,
            position_id=position.id,
            action=action,
            params=dict(params),
            control=control,
            received_at=rfc3339(now),
        )
        update_ids.append(row.id)
    return ControlOutcome(
        Verdict.ACCEPTED,
        tuple(_own(p, o) for p, o in acting),
        tuple(update_ids),
        details={"control": control},
    )
