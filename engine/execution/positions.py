"""Closing positions: one path for the drawdown guard, ``/closeall`` and single closes.

A position is marked CLOSING (committed) before the broker is asked, and CLOSED with the close
price and P&L taken from the broker's deal history. If the broker's answer is lost, the
position stays CLOSING and reconciliation finishes it from the deal history; a close request
carries a client id derived from the position, so asking again never closes twice.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from loguru import logger
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from engine.brokers.base import Deal, SubmitResult, SubmitStatus
from engine.brokers.registry import BrokerRegistry
from engine.execution.cancels import PENDING_ORDER_STATES, CancelSummary, PendingCanceller
from engine.states import POSITION, PositionStatus
from engine.store.audit import audit
from engine.store.db import Database, utcnow
from engine.store.events import POSITION_CLOSED, EventRelay, emit
from engine.store.models import ExecutionAccount, Order, Position

_ANSWERED = (SubmitStatus.ACCEPTED, SubmitStatus.REFUSED)
# Brings an account's positions up to date with its broker (reconciliation), by account id.
Refresh = Callable[[int], Awaitable[None]]


def close_client_id(account_id: int, ticket: str) -> str:
    digest = hashlib.sha256(f"close:{account_id}:{ticket}".encode()).digest()
    return "tc-" + base64.b32encode(digest).decode().rstrip("=").lower()[:22]


@dataclass
class CloseSummary:
    requested: int = 0
    closed: int = 0
    failed: int = 0
    pnl: Decimal = Decimal(0)
    errors: list[str] = field(default_factory=list)
    # pending orders (close_account cancels them first): asked, cancelled, could not be cancelled
    orders_requested: int = 0
    orders_cancelled: int = 0
    orders_failed: int = 0

    def add(self, other: CloseSummary) -> None:
        self.requested += other.requested
        self.closed += other.closed
        self.failed += other.failed
        self.pnl += other.pnl
        self.errors.extend(other.errors)
        self.orders_requested += other.orders_requested
        self.orders_cancelled += other.orders_cancelled
        self.orders_failed += other.orders_failed

    def add_cancels(self, cancels: CancelSummary) -> None:
        self.orders_requested += cancels.requested
        self.orders_cancelled += cancels.cancelled
        self.orders_failed += cancels.failed
        self.errors.extend(cancels.errors)


def closing_deal(deals: list[Deal], ticket: str) -> list[Deal]:
    return [d for d in deals if d.position_ticket == ticket and d.entry == "out"]


def apply_close(
    session: AsyncSession,
    position: Position,
    deals: list[Deal],
    reason: str,
    actor: str,
    **extra: Any,
) -> Decimal:
    """Mark a position CLOSED from its closing deal(s); emits ``position.closed``. Returns the P&L."""
    volume = sum((d.volume for d in deals), Decimal(0))
    price = deals[-1].price
    if volume > 0:
        price = sum((d.price * d.volume for d in deals), Decimal(0)) / volume
    profit = sum((d.profit for d in deals), Decimal(0))
    commission = sum((d.commission for d in deals), Decimal(0))
    swap = sum((d.swap for d in deals), Decimal(0))
    POSITION.move(position, PositionStatus.CLOSED)
    position.close_price = price
    position.profit = profit
    position.commission = position.commission + commission
    position.swap = swap
    position.closed_at = max(d.time for d in deals)
    broker_reason = next((d.reason for d in reversed(deals) if d.reason), "")
    position.close_reason = broker_reason if broker_reason in ("sl", "tp") else reason
    net = profit + commission + swap
    audit(
        session,
        actor,
        "position.closed",
        f"position:{position.id}",
        reason=position.close_reason,
        pnl=str(net),
    )
    emit(
        session,
        POSITION_CLOSED,
        position_id=position.id,
        account_id=position.account_id,
        order_id=position.order_id,
        ticket=position.ticket,
        symbol=position.symbol,
        side=position.side,
        volume=str(position.volume),
        open_price=str(position.open_price),
        close_price=str(position.close_price),
        profit=str(net),
        reason=position.close_reason,
        external=position.external,
        **extra,
    )
    return net


class PositionCloser:
    def __init__(self, db: Database, brokers: BrokerRegistry, relay: EventRelay | None = None) -> None:
        self._db = db
        self._brokers = brokers
        self._relay = relay
        self._cancels = PendingCanceller(db, brokers)

    async def close_position(self, position_id: int, reason: str, actor: str) -> CloseSummary:
        summary = CloseSummary(requested=1)
        async with self._db.session() as session:
            position = await session.get(Position, position_id)
            if position is None or position.status == PositionStatus.CLOSED:
                summary.requested = 0
                return summary
            account = await session.get(ExecutionAccount, position.account_id)
            claimed = await session.execute(
                update(Position)
                .where(Position.id == position_id, Position.status == PositionStatus.OPEN.value)
                .values(status=PositionStatus.CLOSING.value)
            )
            if claimed.rowcount == 0 and position.status != PositionStatus.CLOSING:  # type: ignore[attr-defined]
                summary.requested = 0
                return summary
            ticket, opened_at = position.ticket, position.opened_at
        assert account is not None
        try:
            broker = await self._brokers.get(account)
            result = await broker.close_position(ticket, close_client_id(account.id, ticket))
            deals: list[Deal] = []
            if result.status is SubmitStatus.ACCEPTED:
                deals = closing_deal(await broker.deals(opened_at - timedelta(minutes=1), utcnow()), ticket)
            elif result.status is SubmitStatus.REFUSED:
                # Already gone at the broker (SL/TP hit, closed by hand)? Its deal history says.
                deals = closing_deal(await broker.deals(opened_at - timedelta(minutes=1), utcnow()), ticket)
        except Exception as exc:
            logger.warning("closing position {} (ticket {}) failed: {!r}", position_id, ticket, exc)
            summary.failed = 1
            summary.errors.append(f"{ticket}: {exc}")
            return summary  # stays CLOSING: reconciliation finishes it from the deal history
        async with self._db.session() as session:
            position = await session.get(Position, position_id, with_for_update=True)
            assert position is not None
            if position.status == PositionStatus.CLOSED:
                return summary
            if deals:
                summary.pnl = apply_close(session, position, deals, reason, actor)
                summary.closed = 1
            elif result.status is SubmitStatus.REFUSED:
                POSITION.move(position, PositionStatus.OPEN)
                summary.failed = 1
                summary.errors.append(f"{ticket}: {result.reason}")
                audit(
                    session, actor, "position.close_refused", f"position:{position.id}", reason=result.reason
                )
            else:
                summary.failed = 1
                summary.errors.append(
                    f"{ticket}: close outcome not yet known ({result.reason or result.status})"
                )
        if self._relay is not None:
            self._relay.notify()
        return summary

    async def close_account(
        self, account_id: int, reason: str, actor: str, *, refresh: Refresh | None = None
    ) -> CloseSummary:
        """Cancel an account's pending orders, then close its positions (the drawdown guard, close-all).

        Pending orders go first (``engine.execution.cancels``), so none fills while the positions
        are being closed. The closes are batched: one transaction marks them all CLOSING, the close requests go to the broker,
        one deal-history read settles them, one transaction records every close. Each position
        ends exactly as ``close_position`` would leave it (closed from its deal, back to OPEN when
        the broker refuses and it is still open, or CLOSING for reconciliation when unknown).
        """
        cancels = await self._cancels.cancel_account(account_id, reason, actor)
        if refresh is not None:  # positions the store does not know yet (a fill just now, a manual trade)
            try:
                await refresh(account_id)
            except Exception as exc:
                logger.warning(
                    "account {}: refreshing positions before closing failed: {!r}", account_id, exc
                )
        summary = await self._close_positions(account_id, reason, actor)
        summary.add_cancels(cancels)
        if cancels.cancelled and self._relay is not None:
            self._relay.notify()
        return summary

    async def _close_positions(self, account_id: int, reason: str, actor: str) -> CloseSummary:
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(Position.id, Position.ticket, Position.opened_at).where(
                        Position.account_id == account_id,
                        Position.status.in_([PositionStatus.OPEN.value, PositionStatus.CLOSING.value]),
                    )
                )
            ).all()
            if not rows:
                return CloseSummary()
            account = await session.get(ExecutionAccount, account_id)
            await session.execute(
                update(Position)
                .where(Position.id.in_([r.id for r in rows]), Position.status == PositionStatus.OPEN.value)
                .values(status=PositionStatus.CLOSING.value)
            )
        assert account is not None
        summary = CloseSummary(requested=len(rows))
        try:
            broker = await self._brokers.get(account)
        except Exception as exc:
            logger.warning("closing the positions of account {} failed: {!r}", account_id, exc)
            summary.failed = len(rows)
            summary.errors.append(f"broker: {exc}")
            return summary  # they stay CLOSING: reconciliation finishes them

        async def send(ticket: str) -> SubmitResult | Exception:
            try:
                return await broker.close_position(ticket, close_client_id(account_id, ticket))
            except Exception as exc:
                logger.warning("closing position ticket {} failed: {!r}", ticket, exc)
                return exc

        results = await asyncio.gather(*(send(r.ticket) for r in rows))
        deals: list[Deal] | None = []
        if any(isinstance(r, SubmitResult) and r.status in _ANSWERED for r in results):
            try:
                since = min(r.opened_at for r in rows) - timedelta(minutes=1)
                deals = await broker.deals(since, utcnow())
            except Exception as exc:
                logger.warning("reading the deals of account {} failed: {!r}", account_id, exc)
                deals = None
        async with self._db.session() as session:
            positions = {
                p.id: p
                for p in (
                    await session.scalars(
                        select(Position).where(Position.id.in_([r.id for r in rows])).with_for_update()
                    )
                ).all()
            }
            for row, result in zip(rows, results, strict=True):
                position = positions.get(row.id)
                if position is None or position.status == PositionStatus.CLOSED:
                    continue
                if isinstance(result, Exception) or deals is None:
                    summary.failed += 1
                    summary.errors.append(
                        f"{row.ticket}: {result if isinstance(result, Exception) else 'no deals'}"
                    )
                    continue
                closing = closing_deal(deals, row.ticket) if result.status in _ANSWERED else []
                if closing:
                    summary.pnl += apply_close(session, position, closing, reason, actor)
                    summary.closed += 1
                elif result.status is SubmitStatus.REFUSED:
                    POSITION.move(position, PositionStatus.OPEN)
                    summary.failed += 1
                    summary.errors.append(f"{row.ticket}: {result.reason}")
                    audit(
                        session,
                        actor,
                        "position.close_refused",
                        f"position:{position.id}",
                        reason=result.reason,
                    )
                else:
                    summary.failed += 1
                    summary.errors.append(
                        f"{row.ticket}: close outcome not yet known ({result.reason or result.status})"
                    )
        if self._relay is not None:
            self._relay.notify()
        return summary

    async def close_everything(
        self, reason: str, actor: str, *, refresh: Refresh | None = None
    ) -> CloseSummary:
        """Every account with an open position or a pending order of ours: cancel, then close."""
        async with self._db.session() as session:
            with_positions = (
                await session.scalars(
                    select(Position.account_id)
                    .where(Position.status.in_([PositionStatus.OPEN.value, PositionStatus.CLOSING.value]))
                    .distinct()
                )
            ).all()
            with_orders = (
                await session.scalars(
                    select(Order.account_id).where(Order.status.in_(PENDING_ORDER_STATES)).distinct()
                )
            ).all()
        account_ids = sorted(set(with_positions) | set(with_orders))
        summary = CloseSummary()
        for result in await asyncio.gather(
            *(self.close_account(a, reason, actor, refresh=refresh) for a in account_ids)
        ):
            summary.add(result)
        return summary
