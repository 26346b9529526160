"""The trading loop's safety net for orders, behind the immediate path (a tap executes at once).

Each tick, in this order:
1. approved decisions that have no order row (the process died between committing the decision
   and creating its order) get their order, PENDING;
2. on a single-process store (SQLite), orders a previous process left SUBMITTING (claimed before
   this process started) become UNKNOWN once ``orphan_grace_seconds`` old, so they are looked up
   at the broker now rather than after ``ExecutionConfig.stale_submitting_seconds``; the grace
   lets a request that was still on its way to the broker land first. On PostgreSQL, where other
   instances may be submitting, the stale threshold alone decides;
3. ``ExecutionService.process_due`` in batches of ``batch_size`` (at most ``max_batches``, and
   never the same orders twice in one tick): PENDING, due RETRY_WAIT, UNKNOWN and stale
   SUBMITTING orders, one attempt each.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from loguru import logger
from sqlalchemy import exists, select

from engine.brokers.ownership import AccountScope
from engine.execution.service import ExecutionService
from engine.states import ORDER, DecisionStatus, OrderStatus
from engine.store.audit import audit
from engine.store.db import Database, utcnow
from engine.store.models import Decision, Order

# Orders this process submits are claimed after this moment; SUBMITTING ones from before are
# another (dead) process's.
PROCESS_STARTED_AT = utcnow()


class OrderSweep:
    def __init__(
        self,
        db: Database,
        execution: ExecutionService,
        *,
        batch_size: int = 10,
        max_batches: int = 5,
        adopt_after_seconds: float = 2.0,
        orphan_grace_seconds: float = 10.0,
    ) -> None:
        self._db = db
        self._execution = execution
        self.batch_size = batch_size
        self.max_batches = max(max_batches, 1)
        self.adopt_after = timedelta(seconds=adopt_after_seconds)
        self.orphan_grace = timedelta(seconds=orphan_grace_seconds)
        self._orphans_possible = db.dialect == "sqlite"

    async def sweep(
        self, stopping: Callable[[], bool] = lambda: False, scope: AccountScope | None = None
    ) -> int:
        """One pass; returns how many orders were driven. With ``scope`` (several instances), only
        the orders of those accounts are driven; the leader's scope adopts approvals and orphans."""
        if scope is None or scope.paper:
            await self.adopt_approvals()
            if self._orphans_possible:
                await self.adopt_orphans()
        return await self.drive(stopping, scope)

    async def adopt_approvals(self) -> None:
        """Approved decisions with no order row (a crash between the decision and its order): create it."""
        before = utcnow() - self.adopt_after
        async with self._db.session() as session:
            ids = list(
                (
                    await session.scalars(
                        select(Decision.id)
                        .where(
                            Decision.status == DecisionStatus.APPROVED.value,
                            Decision.account_id.is_not(None),
                            Decision.decided_at < before,
                            ~exists().where(Order.decision_id == Decision.id),
                        )
                        .order_by(Decision.decided_at)
                        .limit(self.batch_size)
                    )
                ).all()
            )
        for decision_id in ids:
            order = await self._execution.order_for_decision(decision_id)
            logger.warning(
                "decision {} was approved without an order (crash?): order {} created",
                decision_id,
                order and order.id,
            )

    async def adopt_orphans(self) -> None:
        """Single-process store: SUBMITTING orders of a dead process are looked up, not waited for."""
        now = utcnow()
        async with self._db.session() as session:
            rows = list(
                (
                    await session.scalars(
                        select(Order)
                        .where(
                            Order.status == OrderStatus.SUBMITTING.value,
                            Order.submitted_at < PROCESS_STARTED_AT,
                        )
                        .with_for_update()
                    )
                ).all()
            )
            if not rows:
                self._orphans_possible = False  # every later submission is this process's own
                return
            for order in rows:
                if order.submitted_at is not None and now - order.submitted_at < self.orphan_grace:
                    continue  # a request still on its way to the broker gets time to land
                ORDER.move(order, OrderStatus.UNKNOWN)
                order.reason = "left in flight by a previous process"
                audit(
                    session,
                    "trading-loop",
                    "order.orphaned",
                    f"order:{order.id}",
                    submitted_at=str(order.submitted_at),
                )

    async def drive(
        self, stopping: Callable[[], bool] = lambda: False, scope: AccountScope | None = None
    ) -> int:
        driven = 0
        seen: set[str] = set()
        for _ in range(self.max_batches):
            due = await self._execution.due_orders(self.batch_size, scope)
            if not due or set(due) <= seen:
                break  # nothing new: what is left was already tried this tick
            seen.update(due)
            done = await self._execution.process_due(self.batch_size, scope)
            driven += done
            if done < self.batch_size or stopping():
                break
        return driven
