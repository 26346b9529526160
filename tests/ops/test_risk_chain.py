"""The pre-trade risk chain: each gate refuses with its own name and code, in order; adding one is
one class and one line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from engine.risk.chain import Refusal, RiskChain, TradeContext
from engine.states import OrderStatus
from engine.store.db import Database
from engine.store.models import AuditLog, ExecutionAccount, Order, User
from tests.support.factories import make_approval
from tests.support.ops import OpsWorld, ops_world

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


async def refused_by(world: OpsWorld, **approval: object) -> tuple[str, str | None]:
    user, account = world.pairs[0]
    order = await world.services.execution.execute_decision(
        await make_approval(world.db, world.producer, user, account, **approval)  # type: ignore[arg-type]
    )
    assert order is not None and order.status == OrderStatus.REFUSED, order
    async with world.db.session() as s:
        line = (
            await s.scalars(
                select(AuditLog).where(
                    AuditLog.target == f"order:{order.id}", AuditLog.action == "order.refused"
                )
            )
        ).one()
    return str(order.reason_code), line.details.get("gate")


async def set_account(world: OpsWorld, **values: object) -> None:
    async with world.db.session() as s:
        await s.execute(
            update(ExecutionAccount).where(ExecutionAccount.id == world.pairs[0][1].id).values(**values)
        )


def test_the_standard_chain_is_in_order() -> None:
    from engine.execution.orders import OrderRules
    from engine.risk.chain import standard_gates
    from tests.support.billing import risk_chain

    assert [g.name for g in standard_gates(lambda account: OrderRules())] == [
        "global_pause",
        "account_state",
        "subscriber",
        "signal_fresh",
        "market_hours",
        "drawdown",
    ]
    assert risk_chain().names[-7:] == [
        "entitlement",
        "drawdown",
        "limit_daily_loss",
        "limit_instrument",
        "limit_min_rr",
        "limit_max_positions",
        "limit_open_risk",
    ]


async def test_each_gate_refuses_with_its_name(db: Database) -> None:
    async with ops_world(db) as world:
        assert await world.services.control.set_paused(True, "test")
        assert await refused_by(world) == ("paused", "global_pause")
        await world.services.control.set_paused(False, "test")

        await set_account(world, trading_state="reducing", paused_reason="admin")
        assert await refused_by(world) == ("account_reducing", "account_state")
        await set_account(world, trading_state="halted", paused_reason="drawdown")
        assert await refused_by(world) == ("account_halted", "account_state")
        await set_account(world, trading_state="active", paused_reason=None)

        async with world.db.session() as s:
            await s.execute(update(User).where(User.id == world.pairs[0][0].id).values(status="blocked"))
        assert await refused_by(world) == ("user_inactive", "subscriber")
        async with world.db.session() as s:
            await s.execute(update(User).where(User.id == world.pairs[0][0].id).values(status="active"))

        assert await refused_by(world, ttl=0) == ("expired", "signal_fresh")

        await set_account(world, drawdown_state="soft")
        assert await refused_by(world) == ("drawdown", "drawdown")
        await set_account(world, drawdown_state="ok")
        await world.fill()  # and with every gate open, it executes


async def test_with_billing_on_the_entitlement_gate_refuses_what_the_plan_lacks(db: Database) -> None:
    async with ops_world(db, billing="on") as world:
        await set_account(world, kind="mt5")  # the free plan has no MT5 execution
        assert await refused_by(world) == ("plan_required", "entitlement")


async def test_with_billing_off_every_user_has_every_entitlement(db: Database) -> None:
    async with ops_world(db) as world:  # BILLING=off, the default: nothing is gated
        await set_account(world, kind="mt5")
        order = await world.services.execution.execute_decision(
            await make_approval(world.db, world.producer, *world.pairs[0])  # type: ignore[arg-type]
        )
        assert order is not None and order.reason_code != "plan_required"


async def test_a_closed_market_is_refused_before_the_broker_is_asked(db: Database) -> None:
    other_day = DAYS[(datetime.now(UTC) + timedelta(days=2)).weekday()]
    async with ops_world(db, market_hours=f"*=24/7;EURUSD={other_day} 00:00-00:01 UTC") as world:
        assert await refused_by(world) == ("market_closed", "market_hours")


class MaxOpenOrders:
    """The shape of a per-subscriber limit the trade-management work will add: one class..."""

    name = "max_open_orders"

    def __init__(self, limit: int) -> None:
        self.limit = limit

    async def check(self, ctx: TradeContext) -> Refusal | None:
        count = len(
            (
                await ctx.session.scalars(
                    select(Order.id).where(
                        Order.account_id == ctx.account.id, Order.status == OrderStatus.FILLED.value
                    )
                )
            ).all()
        )
        if count < self.limit:
            return None
        return Refusal(self.name, "max_open_orders", f"{count} orders already", {"limit": str(self.limit)})


async def test_a_new_gate_is_one_class_and_one_line(db: Database) -> None:
    async with ops_world(db) as world:
        world.services.execution.chain.add(MaxOpenOrders(1), before="drawdown")  # ...and one line
        await world.fill()
        assert await refused_by(world) == ("max_open_orders", "max_open_orders")


def test_gate_names_are_unique_and_placement_is_checked() -> None:
    chain = RiskChain([MaxOpenOrders(1)])
    with pytest.raises(ValueError, match="already"):
        chain.add(MaxOpenOrders(2))
    with pytest.raises(ValueError, match="no gate named"):
        chain.add(type("G", (), {"name": "g", "check": MaxOpenOrders.check})(), before="nope")  # type: ignore[arg-type]
