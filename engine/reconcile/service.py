"""Reconciliation: the broker is the truth about positions and orders; the store is brought in line.

The trading loop runs it for every account at start-up and every N ticks. One pass per account:

Orders (ours are recognised by the client order id the broker echoes back):
- a broker position or pending order carrying the id of an order the store has as SUBMITTING
  (stale), UNKNOWN, RETRY_WAIT or PENDING (a crash between the fill and its record) is settled
  through the execution service's resolve path (lookup by client id -> FILLED/PLACED plus the
  Position and its events); an order already FILLED whose position is missing gets the position
  attached;
- a PLACED (resting) order past its expiry is cancelled at the broker and EXPIRED in the store;
  one gone from the broker is looked up: filled -> settled, cancelled -> CANCELLED/EXPIRED;
  an order that became EXPIRED emits ``order.expired`` (the subscriber is told, as a reply to
  the signal message);
- a pending order at the broker whose store order is final (cancelled, expired, refused, failed)
  is an orphan and is cancelled at the broker.
Positions:
- open or closing in the store but gone at the broker (SL/TP hit, closed by hand, stop-out):
  closed in the store from the broker's deal history with its close price and P&L
  (``apply_close``, which emits ``position.closed`` for the subscriber);
- CLOSING in the store and still open at the broker on two passes in a row (a close whose
  answer was lost): the close is asked again (it is idempotent at the broker);
- open at the broker but unknown to the store, with no client id or one that is not ours
  (a manual trade): recorded as ``external`` — counted in equity and drawdown, never closed
  silently;
- volume, SL or TP changed at the broker (partial close, modified by hand): updated.
Every correction writes an audit line (actor ``reconcile``).

The orders pass lives in ``engine.reconcile.service.orders``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from loguru import logger
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from engine.brokers.base import Broker, BrokerPosition
from engine.brokers.registry import BrokerRegistry
from engine.execution.positions import PositionCloser, apply_close, closing_deal
from engine.execution.service import ExecutionService
from engine.reconcile.orders import ACTOR, OrderReconciler, position_row
from engine.reconcile.report import ReconcileReport
from engine.states import PositionStatus
from engine.store.audit import audit
from engine.store.db import Database, utcnow
from engine.store.events import EventRelay
from engine.store.models import ExecutionAccount, Order, Position

CLOSED_AT_BROKER = "broker"  # close_reason when the broker's deal gives none better than "client"
CLOSE_RETRY = "close_retry"
DEALS_LOOKBACK = timedelta(days=1)  # generous: broker server clocks are not ours
_OPEN = (PositionStatus.OPEN.value, PositionStatus.CLOSING.value)


class Reconciler:
    def __init__(
        self,
        db: Database,
        brokers: BrokerRegistry,
        execution: ExecutionService,
        closer: PositionCloser,
        relay: EventRelay | None = None,
    ) -> None:
        self._db = db
        self._brokers = brokers
        self._execution = execution
        self._closer = closer
        self._relay = relay
        self._closing_seen: dict[int, set[int]] = {}  # account -> CLOSING positions still open at the broker
        self._reported: set[str] = set()
        self._orders = OrderReconciler(db, execution, self._report_once)

    async def reconcile_all(self) -> list[ReconcileReport]:
        """Every active account once (start-up); an account that fails is reported, not fatal."""
        async with self._db.session() as session:
            accounts = list(
                (
                    await session.scalars(select(ExecutionAccount).where(ExecutionAccount.active.is_(True)))
                ).all()
            )
            session.expunge_all()
        reports = []
        for account in accounts:
            try:
                reports.append(await self.reconcile_account(account))
            except Exception as exc:
                logger.warning("reconciling account {} failed: {!r}", account.id, exc)
                reports.append(ReconcileReport(account.id, error=repr(exc)))
        return reports

    async def reconcile_account(self, account: ExecutionAccount) -> ReconcileReport:
        broker = await self._brokers.get(account)
        broker_positions = await broker.positions()
        broker_pending = await broker.pending_orders()
        report = ReconcileReport(account.id)
        await self._orders.run(account, broker, broker_positions, broker_pending, report)
        await self._positions(account, broker, broker_positions, report)
        if report.corrections:
            logger.info("account {}: reconciliation corrected {}", account.id, report)
            if self._relay is not None:
                self._relay.notify()
        return report

    # ----------------------------------------------------------------------------- orders

    async def _positions(
        self,
        account: ExecutionAccount,
        broker: Broker,
        positions: list[BrokerPosition],
        report: ReconcileReport,
    ) -> None:
        at_broker = {p.ticket: p for p in positions}
        async with self._db.session() as session:
            rows = list(
                (await session.scalars(select(Position).where(Position.account_id == account.id))).all()
            )
            unknown = [p for p in positions if p.ticket not in {r.ticket for r in rows}]
            cids = {p.client_order_id for p in unknown if p.client_order_id}
            ours = (
                set(
                    (
                        await session.scalars(
                            select(Order.client_order_id).where(Order.client_order_id.in_(cids))
                        )
                    ).all()
                )
                if cids
                else set()
            )
            session.expunge_all()
        live = [r for r in rows if r.status in _OPEN]

        missing = [r for r in live if r.ticket not in at_broker]
        if missing:
            since = min(r.opened_at for r in missing) - DEALS_LOOKBACK
            deals = await broker.deals(since, utcnow() + DEALS_LOOKBACK)
            for row in missing:
                closing = closing_deal(deals, row.ticket)
                if not closing:
                    self._report_once(
                        f"missing:{row.id}",
                        f"position {row.id} (ticket {row.ticket}) is gone at the broker but has no closing deal yet",
                        report,
                    )
                    continue
                async with self._db.session() as session:
                    position = await session.get(Position, row.id, with_for_update=True)
                    if position is None or position.status not in _OPEN:
                        continue
                    apply_close(session, position, closing, CLOSED_AT_BROKER, ACTOR)
                report.closed += 1

        seen = self._closing_seen.get(account.id, set())
        still_closing = {
            r.id for r in live if r.status == PositionStatus.CLOSING.value and r.ticket in at_broker
        }
        for position_id in still_closing & seen:
            summary = await self._closer.close_position(position_id, CLOSE_RETRY, ACTOR)
            report.close_retried += summary.closed
        self._closing_seen[account.id] = still_closing - seen

        for bp in unknown:
            if bp.client_order_id in ours:
                continue  # one of ours, in flight or settled by the order pass
            try:
                async with self._db.session() as session:
                    position = position_row(account.id, bp, order_id=None, external=True)
                    session.add(position)
                    await session.flush()
                    audit(
                        session,
                        ACTOR,
                        "position.external",
                        f"position:{position.id}",
                        ticket=bp.ticket,
                        symbol=bp.symbol,
                        side=bp.side.value,
                        volume=str(bp.volume),
                        client_order_id=bp.client_order_id,
                    )
            except IntegrityError:
                continue
            logger.warning(
                "account {}: position {} ({} {} {}) was opened outside the bot; recorded as external",
                account.id,
                bp.ticket,
                bp.side.value,
                bp.volume,
                bp.symbol,
            )
            report.external += 1

        for row in live:
            current = at_broker.get(row.ticket)
            if current is None:
                continue
            changes: dict[str, Any] = {}
            for name in ("volume", "sl", "tp"):
                if getattr(row, name) != getattr(current, name):
                    changes[name] = getattr(current, name)
            if not changes:
                continue
            async with self._db.session() as session:
                position = await session.get(Position, row.id, with_for_update=True)
                if position is None or position.status not in _OPEN:
                    continue
                before = {k: str(getattr(position, k)) for k in changes}
                for name, value in changes.items():
                    setattr(position, name, value)
                audit(
                    session,
                    ACTOR,
                    "position.updated",
                    f"position:{row.id}",
                    before=before,
                    after={k: str(v) for k, v in changes.items()},
                )
            report.updated += 1

    def _report_once(self, key: str, message: str, report: ReconcileReport) -> None:
        report.unresolved.append(message)
        if key not in self._reported:
            self._reported.add(key)
            logger.warning("reconciliation: {}", message)
