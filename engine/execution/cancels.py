"""Cancelling an account's pending orders: the first half of close-all and of the drawdown guard.

Two kinds of order are pending for an account:
- approved but not sent yet (PENDING / RETRY_WAIT): moved to CANCELLED by a conditional UPDATE,
  so it either wins against the execution service's claim (PENDING/RETRY_WAIT -> SUBMITTING) and
  the order is never sent, or loses and the order is already at the broker (handled next time);
- resting at the broker (limit/stop): every pending order the broker lists for the account is
  removed (MT5 ``TRADE_ACTION_REMOVE``); ours are then moved PLACED -> CANCELLED. An order the
  broker no longer has (filled or expired meanwhile) is left to reconciliation, which settles it
  from the broker's history.
Each cancelled order of ours is audited and announced as ``order.rejected`` (status ``cancelled``),
so its subscriber's signal message says it will not execute.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loguru import logger
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from engine.brokers.base import BrokerOrder, SubmitStatus
from engine.brokers.registry import BrokerRegistry
from engine.states import ORDER, OrderStatus
from engine.store.audit import audit
from engine.store.db import Database, utcnow
from engine.store.events import ORDER_REJECTED, emit
from engine.store.models import ExecutionAccount, Order

CANCELLED_CODE = "cancelled"
_NOT_SENT = (OrderStatus.PENDING.value, OrderStatus.RETRY_WAIT.value)
# Orders of ours that are pending: not sent yet, or resting at the broker.
PENDING_ORDER_STATES = (*_NOT_SENT, OrderStatus.PLACED.value)


@dataclass
class CancelSummary:
    requested: int = 0
    cancelled: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def _rejected_payload(order: Order) -> dict[str, object]:
    return {
        "order_id": order.id,
        "decision_id": order.decision_id,
        "signal_id": order.signal_id,
        "account_id": order.account_id,
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side,
        "order_type": order.order_type,
        "volume": None if order.volume is None else str(order.volume),
        "price": None if order.price is None else str(order.price),
        "status": order.status,
        "reason_code": order.reason_code,
        "reason": order.reason,
    }


class PendingCanceller:
    def __init__(self, db: Database, brokers: BrokerRegistry) -> None:
        self._db = db
        self._brokers = brokers

    async def cancel_account(self, account_id: int, reason: str, actor: str) -> CancelSummary:
        summary = CancelSummary()
        why = f"cancelled ({reason}) by {actor}"
        async with self._db.session() as session:
            account = await session.get(ExecutionAccount, account_id)
            if account is None:
                return summary
            waiting = list(
                (
                    await session.scalars(
                        select(Order.id).where(Order.account_id == account_id, Order.status.in_(_NOT_SENT))
                    )
                ).all()
            )
            placed = {
                o.client_order_id: o.id
                for o in (
                    await session.scalars(
                        select(Order).where(
                            Order.account_id == account_id, Order.status == OrderStatus.PLACED.value
                        )
                    )
                ).all()
            }
            session.expunge(account)
        for order_id in waiting:
            summary.requested += 1
            if await self._cancel_unsent(order_id, why, actor):
                summary.cancelled += 1
            # lost the race: the order is being sent; as a placed order it is cancelled next time
        try:
            broker = await self._brokers.get(account)
            resting: list[BrokerOrder] = await broker.pending_orders()
        except Exception as exc:
            logger.warning("listing the pending orders of account {} failed: {!r}", account_id, exc)
            summary.requested += len(placed)
            summary.failed += len(placed)
            if placed:
                summary.errors.append(f"broker: {exc}")
            return summary
        for bo in resting:
            summary.requested += 1
            try:
                result = await broker.cancel_order(bo.ticket)
            except Exception as exc:
                result = None
                summary.errors.append(f"order {bo.ticket}: {exc}")
            if result is None or result.status is not SubmitStatus.ACCEPTED:
                summary.failed += 1
                if result is not None:
                    summary.errors.append(f"order {bo.ticket}: {result.reason or result.status}")
                continue
            summary.cancelled += 1
            ours = placed.get(bo.client_order_id or "")
            async with self._db.session() as session:
                if ours is not None:
                    order = await session.get(Order, ours, with_for_update=True)
                    if order is not None and order.status == OrderStatus.PLACED.value:
                        ORDER.move(order, OrderStatus.CANCELLED)
                        self._record(session, order, why, actor)
                        continue
                audit(
                    session,
                    actor,
                    "order.cancelled",
                    f"account:{account_id}",
                    ticket=bo.ticket,
                    symbol=bo.symbol,
                    reason=reason,
                    external=ours is None,
                )
        return summary

    async def _cancel_unsent(self, order_id: str, why: str, actor: str) -> bool:
        async with self._db.session() as session:
            won = await session.execute(
                update(Order)
                .where(Order.id == order_id, Order.status.in_(_NOT_SENT))
                .values(status=OrderStatus.CANCELLED.value, updated_at=utcnow())
            )
            if won.rowcount != 1:  # type: ignore[attr-defined]
                return False
            order = await session.get(Order, order_id, populate_existing=True)
            assert order is not None
            self._record(session, order, why, actor)
        return True

    @staticmethod
    def _record(session: AsyncSession, order: Order, why: str, actor: str) -> None:
        order.reason_code = CANCELLED_CODE
        order.reason = why[:500]
        audit(session, actor, "order.cancelled", f"order:{order.id}", ticket=order.broker_ticket, reason=why)
        emit(session, ORDER_REJECTED, **_rejected_payload(order))
