"""Planning an update: which positions and orders it concerns, one claim row each.

A trading update (``move_sl``, ``move_tp``, ``close``) concerns every position still open that an
order of the signal opened, on every account; ``move_sl``/``move_tp`` also every order of the
signal still resting at the broker (reported as refused: a resting order's levels cannot be
changed yet). ``cancel`` concerns every order of the signal resting at the broker (removed there);
its database effects happen in the transaction that stores the update (``cancel_signal``): the
signal stops being offered, undecided approvals expire and orders not yet sent are cancelled, so
no tap or automatic approval can slip in after the producer said cancel. A subscriber's control
concerns their one position. ``note`` concerns nothing (subscribers are told).

Rows are inserted with ``ON CONFLICT DO NOTHING`` on ``(update_id, target)``: planning twice
(an event handed over again after a crash) adds nothing.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from engine.states import ORDER, SIGNAL, DecisionStatus, OrderStatus, PositionStatus
from engine.store.audit import audit
from engine.store.db import utcnow
from engine.store.events import ORDER_REJECTED, emit
from engine.store.models import Decision, Order, Position, PositionChange, Signal, SignalUpdate

CHANGE_ID_PREFIX = "tu-"
CANCELLED_BY_PROVIDER = "cancelled_by_provider"
_NOT_SENT = (OrderStatus.PENDING.value, OrderStatus.RETRY_WAIT.value)
_OPEN = (PositionStatus.OPEN.value, PositionStatus.CLOSING.value)


def change_client_id(update_id: str, target: str) -> str:
    """The broker-side id of one update on one position: deterministic, 25 chars (MT5 comment)."""
    digest = hashlib.sha256(f"{update_id}:{target}".encode()).digest()
    return CHANGE_ID_PREFIX + base64.b32encode(digest).decode().rstrip("=").lower()[:22]


async def cancel_signal(session: AsyncSession, signal_id: str, actor: str) -> dict[str, int]:
    """The producer's cancel, in the caller's transaction: what happens in the database."""
    signal = await session.get(Signal, signal_id, with_for_update=True)
    assert signal is not None
    if SIGNAL.can(signal.status, "cancelled"):
        SIGNAL.move(signal, "cancelled")
    expired = await session.execute(
        update(Decision)
        .where(Decision.signal_id == signal_id, Decision.status == DecisionStatus.PENDING.value)
        .values(status=DecisionStatus.EXPIRED.value, decided_at=utcnow())
    )
    unsent = (
        await session.scalars(
            select(Order).where(Order.signal_id == signal_id, Order.status.in_(_NOT_SENT)).with_for_update()
        )
    ).all()
    for order in unsent:  # locked: the execution service's claim waits, then finds it cancelled
        ORDER.move(order, OrderStatus.CANCELLED)
        order.reason_code = CANCELLED_BY_PROVIDER
        order.reason = "cancelled by the provider"
        audit(session, actor, "order.cancelled", f"order:{order.id}", reason=CANCELLED_BY_PROVIDER)
        emit(
            session,
            ORDER_REJECTED,
            order_id=order.id,
            decision_id=order.decision_id,
            signal_id=order.signal_id,
            account_id=order.account_id,
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            order_type=order.order_type,
            volume=None,
            price=None,
            status=order.status,
            reason_code=order.reason_code,
            reason=order.reason,
        )
    return {"decisions_expired": int(expired.rowcount or 0), "orders_cancelled": len(unsent)}  # type: ignore[attr-defined]


async def targets_of(session: AsyncSession, row: SignalUpdate) -> list[dict[str, Any]]:
    """The claim rows an update needs (not yet inserted)."""
    rows: list[dict[str, Any]] = []
    if row.action == "note":
        return rows
    if row.action in ("move_sl", "move_tp", "close"):
        query = (
            select(Position.id, Position.account_id, Position.order_id)
            .join(Order, Order.id == Position.order_id)
            .where(Order.signal_id == row.signal_id, Position.status.in_(_OPEN))
        )
        if row.position_id is not None:
            query = query.where(Position.id == row.position_id)
        for pid, account_id, order_id in (await session.execute(query.order_by(Position.id))).all():
            rows.append(
                {
                    "target": f"position:{pid}",
                    "account_id": account_id,
                    "order_id": order_id,
                    "position_id": pid,
                }
            )
    if row.action in ("move_sl", "move_tp", "cancel") and row.position_id is None:
        placed = await session.execute(
            select(Order.id, Order.account_id)
            .where(Order.signal_id == row.signal_id, Order.status == OrderStatus.PLACED.value)
            .order_by(Order.created_at)
        )
        for order_id, account_id in placed.all():
            rows.append(
                {
                    "target": f"order:{order_id}",
                    "account_id": account_id,
                    "order_id": order_id,
                    "position_id": None,
                }
            )
    return rows


async def plan(session: AsyncSession, update_id: str) -> list[int]:
    """Insert the update's claim rows once; returns the ids of its rows still to do."""
    row = await session.get(SignalUpdate, update_id, with_for_update=True)
    if row is None:
        return []
    if row.status != "planned":
        targets = await targets_of(session, row)
        if targets:
            now = utcnow()
            values = [
                {
                    **t,
                    "update_id": row.id,
                    "client_id": change_client_id(row.id, t["target"]),
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "result": {},
                }
                for t in targets
            ]
            insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
            statement = insert(PositionChange).on_conflict_do_nothing(index_elements=["update_id", "target"])
            await session.execute(statement, values)
        row.status = "planned"
        row.planned_at = utcnow()
    ids = await session.scalars(
        select(PositionChange.id)
        .where(PositionChange.update_id == update_id, PositionChange.status == "pending")
        .order_by(PositionChange.id)
    )
    return list(ids.all())
