"""Reconciliation, the orders pass: our orders as the broker knows them (see ``engine.reconcile.service``).

Orders are recognised by the client order id the broker echoes back. Orders whose broker outcome
is known are settled through the execution service's own public resolve path
(``ExecutionService.resolve``, ``is_stale``, ``order_payload``): an order is settled by exactly the
code that settles it on the immediate path.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from loguru import logger
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from engine.brokers.base import Broker, BrokerOrder, BrokerPosition, SubmitStatus
from engine.execution.service import ExecutionService
from engine.reconcile.report import ReconcileReport
from engine.states import ORDER, OrderStatus
from engine.store.audit import audit
from engine.store.db import Database, utcnow
from engine.store.events import ORDER_EXPIRED, POSITION_OPENED, emit
from engine.store.models import ExecutionAccount, Order, Position

ACTOR = "reconcile"
_SETTLE_VIA_EXECUTION = frozenset(
    {OrderStatus.SUBMITTING, OrderStatus.UNKNOWN, OrderStatus.PENDING, OrderStatus.RETRY_WAIT}
)
_ORPHAN_IF_PENDING = frozenset(
    {OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REFUSED, OrderStatus.FAILED}
)

ReportOnce = Callable[[str, str, "ReconcileReport"], None]


def position_row(account_id: int, bp: BrokerPosition, *, order_id: str | None, external: bool) -> Position:
    return Position(
        account_id=account_id,
        order_id=order_id,
        ticket=bp.ticket,
        symbol=bp.symbol,
        side=bp.side.value,
        volume=bp.volume,
        open_price=bp.open_price,
        sl=bp.sl,
        tp=bp.tp,
        external=external,
        opened_at=bp.opened_at,
    )


class OrderReconciler:
    def __init__(self, db: Database, execution: ExecutionService, report_once: ReportOnce) -> None:
        self._db = db
        self._execution = execution
        self._report_once = report_once

    async def run(
        self,
        account: ExecutionAccount,
        broker: Broker,
        positions: list[BrokerPosition],
        pending: list[BrokerOrder],
        report: ReconcileReport,
    ) -> None:
        now = utcnow()
        pos_by_cid = {p.client_order_id: p for p in positions if p.client_order_id}
        pend_by_cid = {o.client_order_id: o for o in pending if o.client_order_id}
        cids = set(pos_by_cid) | set(pend_by_cid)
        async with self._db.session() as session:
            ours = (
                {
                    o.client_order_id: o
                    for o in (
                        await session.scalars(
                            select(Order).where(
                                Order.account_id == account.id, Order.client_order_id.in_(cids)
                            )
                        )
                    ).all()
                }
                if cids
                else {}
            )
            placed = list(
                (
                    await session.scalars(
                        select(Order).where(
                            Order.account_id == account.id, Order.status == OrderStatus.PLACED.value
                        )
                    )
                ).all()
            )
            tickets = set(
                (
                    await session.scalars(select(Position.ticket).where(Position.account_id == account.id))
                ).all()
            )
            session.expunge_all()

        for cid, bp in pos_by_cid.items():
            order = ours.get(cid)
            if order is None or bp.ticket in tickets:
                continue  # not ours (an external position, recorded below), or already recorded
            status = OrderStatus(order.status)
            if status in _SETTLE_VIA_EXECUTION or status is OrderStatus.PLACED:
                if not await self._settle(order.id, report):
                    continue  # in flight, or the broker could not be asked: next pass
                tickets = await self._tickets(account.id)
            if bp.ticket not in tickets and await self._attach(order.id, bp, report):
                tickets.add(bp.ticket)

        for cid, bo in pend_by_cid.items():
            order = ours.get(cid)
            if order is None:
                continue  # a pending order placed by hand: it becomes an external position if it fills
            status = OrderStatus(order.status)
            if status in _SETTLE_VIA_EXECUTION:
                await self._settle(order.id, report)
            elif status is OrderStatus.PLACED:
                expires = order.expires_at or bo.expires_at
                if expires is not None and expires <= now:
                    await self._cancel_expired(broker, order.id, bo.ticket, report)
            elif status in _ORPHAN_IF_PENDING:
                result = await broker.cancel_order(bo.ticket)
                async with self._db.session() as session:
                    audit(
                        session,
                        ACTOR,
                        "order.orphan_cancelled",
                        f"order:{order.id}",
                        ticket=bo.ticket,
                        store_status=order.status,
                        result=result.status.value,
                        reason=result.reason,
                    )
                if result.status is SubmitStatus.ACCEPTED:
                    report.orphans_cancelled += 1
            else:
                self._report_once(
                    f"pending:{order.id}",
                    f"order {order.id} is {order.status} in the store but pending at the broker",
                    report,
                )

        for order in placed:
            if order.client_order_id in cids:
                continue  # handled above
            found = await broker.find_by_client_id(order.client_order_id)
            if found is None:
                self._report_once(
                    f"placed:{order.id}",
                    f"order {order.id} is placed in the store, unknown at the broker",
                    report,
                )
            elif found.state == "filled":
                await self._settle(order.id, report)
            elif found.state in ("cancelled", "rejected"):
                async with self._db.session() as session:
                    row = await session.get(Order, order.id, with_for_update=True)
                    if row is None or row.status != OrderStatus.PLACED.value:
                        continue
                    past = row.expires_at is not None and row.expires_at <= now + timedelta(minutes=1)
                    target = OrderStatus.EXPIRED if past else OrderStatus.CANCELLED
                    ORDER.move(row, target)
                    row.reason = f"{found.state} at the broker"
                    audit(session, ACTOR, f"order.{target.value}", f"order:{order.id}", ticket=found.ticket)
                    if target is OrderStatus.EXPIRED:
                        emit(session, ORDER_EXPIRED, **self._execution.order_payload(row))
                report.expired += 1

    async def _tickets(self, account_id: int) -> set[str]:
        async with self._db.session() as session:
            return set(
                (
                    await session.scalars(select(Position.ticket).where(Position.account_id == account_id))
                ).all()
            )

    async def _settle(self, order_id: str, report: ReconcileReport) -> bool:
        """Settle an order the broker has by the execution service's lookup-by-client-id path."""
        execution = self._execution
        async with self._db.session() as session:
            order = await session.get(Order, order_id, with_for_update=True)
            if order is None:
                return False
            status = OrderStatus(order.status)
            if status is OrderStatus.SUBMITTING:
                if not execution.is_stale(order):
                    return False  # in flight: its worker records the outcome
            elif status in (OrderStatus.PENDING, OrderStatus.RETRY_WAIT):
                # It is at the broker after all: never send it again; look it up instead.
                ORDER.move(order, OrderStatus.SUBMITTING)
                ORDER.move(order, OrderStatus.UNKNOWN)
                audit(session, ACTOR, "order.found_at_broker", f"order:{order.id}", was=status.value)
            elif status not in (OrderStatus.UNKNOWN, OrderStatus.PLACED):
                return False
        try:
            settled = await execution.resolve(order_id)
        except Exception as exc:
            self._report_once(f"settle:{order_id}", f"order {order_id} could not be settled: {exc!r}", report)
            return False
        if settled is None:
            return False  # a worker of this process holds it; it resolves on its next attempt
        if OrderStatus(settled.status) in (OrderStatus.SUBMITTING, OrderStatus.UNKNOWN):
            return False  # the lookup failed; still unknown
        async with self._db.session() as session:
            audit(session, ACTOR, "order.settled", f"order:{order_id}", status=settled.status)
        report.resolved += 1
        return True

    async def _attach(self, order_id: str, bp: BrokerPosition, report: ReconcileReport) -> bool:
        """Record a broker position opened by one of our orders that the store has no position for."""
        try:
            async with self._db.session() as session:
                order = await session.get(Order, order_id, with_for_update=True)
                if order is None:
                    return False
                position = position_row(order.account_id, bp, order_id=order.id, external=False)
                session.add(position)
                await session.flush()
                if order.position_ticket is None:
                    order.position_ticket = bp.ticket
                if order.filled_volume is None:
                    order.filled_volume = bp.volume
                if order.fill_price is None:
                    order.fill_price = bp.open_price
                audit(
                    session,
                    ACTOR,
                    "position.attached",
                    f"position:{position.id}",
                    order=order.id,
                    order_status=order.status,
                    ticket=bp.ticket,
                )
                emit(
                    session,
                    POSITION_OPENED,
                    position_id=position.id,
                    **{
                        **self._execution.order_payload(order),
                        "volume": str(bp.volume),
                        "price": str(bp.open_price),
                    },
                )
        except IntegrityError:
            return False  # recorded meanwhile by the execution path
        report.attached += 1
        return True

    async def _cancel_expired(
        self, broker: Broker, order_id: str, ticket: str, report: ReconcileReport
    ) -> None:
        result = await broker.cancel_order(ticket)
        if result.status is not SubmitStatus.ACCEPTED:
            logger.info("order {}: cancelling expired ticket {} refused: {}", order_id, ticket, result.reason)
            return  # filled or gone meanwhile: the next pass sees which
        async with self._db.session() as session:
            order = await session.get(Order, order_id, with_for_update=True)
            assert order is not None
            if order.status == OrderStatus.PLACED.value:
                ORDER.move(order, OrderStatus.EXPIRED)
                order.reason = "expired: cancelled at the broker"
                emit(session, ORDER_EXPIRED, **self._execution.order_payload(order))
            audit(session, ACTOR, "order.expired", f"order:{order_id}", ticket=ticket)
        report.expired += 1

    # ----------------------------------------------------------------------------- positions
