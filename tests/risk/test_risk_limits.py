"""A subscriber's own risk limits in the engine: each one refuses with its name and facts, sizing
modes give the right volume, trades and open risk are counted as the subscriber sees them, and the
limits keep a signal from being offered (SQLite and PostgreSQL, orders on the paper broker)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update

from engine.risk.limits import LimitError, parse_number
from engine.states import OrderStatus
from engine.store.db import Database, utcnow
from engine.store.events import ORDER_REJECTED
from engine.store.models import AuditLog, Order, Position, RiskLimits, Signal
from tests.support.factories import make_approval
from tests.support.ops import OpsWorld, ops_world
from tests.support.queries import events
from tests.support.symbols import EURUSD
from tests.support.targets import approve_targets

D = Decimal


async def execute(world: OpsWorld, index: int = 0, **approval: Any) -> Order:
    user, account = world.pairs[index]
    order = await world.services.execution.execute_decision(
        await make_approval(world.db, world.producer, user, account, **approval)
    )
    assert order is not None
    return order


async def refusal(world: OpsWorld, order: Order) -> tuple[str, str, dict[str, str]]:
    """(code, gate, params) of a refused order: from the order, its audit line and its event."""
    assert order.status == OrderStatus.REFUSED, (order.status, order.reason)
    async with world.db.session() as s:
        line = (
            await s.scalars(
                select(AuditLog).where(
                    AuditLog.target == f"order:{order.id}", AuditLog.action == "order.refused"
                )
            )
        ).one()
    [event] = [e for e in await events(world.db, ORDER_REJECTED) if e.payload["order_id"] == order.id]
    return str(order.reason_code), str(line.details.get("gate")), dict(event.payload["details"])


async def limits(world: OpsWorld, index: int = 0, **values: Any) -> None:
    await world.services.risk_limits.change(world.pairs[index][0].telegram_id, "test", **values)


async def test_each_limit_refuses_with_its_name_and_facts(db: Database) -> None:
    async with ops_world(db) as world:
        tid = world.pairs[0][0].telegram_id
        rl = world.services.risk_limits

        await rl.toggle_instrument(tid, "EURUSD", "test")
        code, gate, params = await refusal(world, await execute(world))
        assert (code, gate, params) == ("limit_instrument", "limit_instrument", {"instrument": "EURUSD"})
        await rl.toggle_instrument(tid, "EURUSD", "test")

        # The R:R the signal declares (entry 1.1, stop 1.098, target 1.104: 2) ...
        await limits(world, min_rr=D("2.5"))
        code, gate, params = await refusal(world, await execute(world, entry="1.10000"))
        assert (code, gate, params) == ("limit_min_rr", "limit_min_rr", {"rr": "2", "min_rr": "2.5"})
        # ... or, for a market signal without an entry, the order's once it is sized: from the ask
        # 1.1001, 390 points of reward for 210 of risk.
        await limits(world, min_rr=D("1.9"))
        code, gate, params = await refusal(world, await execute(world))
        assert (code, gate, params) == ("limit_min_rr", "limit_min_rr", {"rr": "1.86", "min_rr": "1.9"})
        await limits(world, min_rr=D("1.8"))
        await execute(world)  # 1.86 >= 1.8: filled, one trade open now
        await limits(world, min_rr=None)

        await limits(world, max_positions=1)
        code, gate, params = await refusal(world, await execute(world))
        assert (code, gate, params) == (
            "limit_max_positions",
            "limit_max_positions",
            {"open": "1", "max": "1"},
        )
        await limits(world, max_positions=None)

        # One trade open: 0.47 lots losing $210 a lot at the stop, about 0.99 % of equity; another
        # the same size would make 1.97 %.
        await limits(world, max_open_risk_percent=D("1.5"))
        code, gate, params = await refusal(world, await execute(world))
        assert (code, gate) == ("limit_open_risk", "limit_open_risk")
        assert params == {"total": "1.97", "open": "0.99", "order": "0.99", "limit": "1.5"}
        await limits(world, max_open_risk_percent=None)

        async with world.db.session() as s:
            user_id = world.pairs[0][0].id
            await s.execute(
                update(RiskLimits)
                .where(RiskLimits.user_id == user_id)
                .values(daily_loss_percent=D(3), paused_until=utcnow().replace(microsecond=0) + _hours(5))
            )
        code, gate, params = await refusal(world, await execute(world))
        assert (code, gate, params["limit"]) == ("limit_daily_loss", "limit_daily_loss", "3")
        assert params["until"] > utcnow().isoformat()
        async with world.db.session() as s:
            await s.execute(update(RiskLimits).where(RiskLimits.user_id == user_id).values(paused_until=None))

        # Max lots is a cap; below the symbol's minimum it cannot be honoured at all.
        world.prices.specs["EURUSD"] = dataclasses.replace(EURUSD, volume_min=D("0.1"), volume_step=D("0.1"))
        await limits(world, max_lots=D("0.05"))
        order = await execute(world)
        assert order.status == OrderStatus.REFUSED and order.reason_code == "max_lots"
        [event] = [e for e in await events(world.db, ORDER_REJECTED) if e.payload["order_id"] == order.id]
        assert event.payload["details"]["limit"] == "0.05"
        assert event.payload["details"]["volume_min"] == "0.1"

        # The other subscriber has no limits of their own: everything goes through.
        assert (await execute(world, 1)).status == OrderStatus.FILLED


def _hours(n: int) -> timedelta:
    return timedelta(hours=n)


async def test_sizing_modes_give_the_volume_on_the_step(db: Database) -> None:
    async with ops_world(db) as world:
        # The signal's risk (the default): 1 % of 10,000 over a 210-tick stop at $1 a tick -> 0.47.
        order = await execute(world)
        assert order.volume == D("0.47") and isinstance(order.volume, Decimal)
        await limits(world, sizing="risk_percent", risk_percent=D("0.5"))
        assert (await execute(world)).volume == D("0.23")
        await limits(world, max_lots=D("0.1"))
        assert (await execute(world)).volume == D("0.1")  # capped
        await limits(world, sizing="fixed", fixed_lots=D("0.25"), max_lots=None)
        order = await execute(world)
        assert order.volume == D("0.25")
        assert order.risk_amount == D("52.5")  # the loss at the stop: 0.25 lots x 210 ticks x $1

        world.prices.specs["EURUSD"] = dataclasses.replace(EURUSD, volume_min=D("0.1"), volume_step=D("0.1"))
        assert (await execute(world)).volume == D("0.2")  # 0.25 floored to the 0.1 step
        await limits(world, fixed_lots=D("0.05"))
        order = await execute(world)
        assert order.status == OrderStatus.REFUSED and order.reason_code == "volume_below_min"
        assert order.reason is not None and "fixed size 0.05 lots" in order.reason


async def test_admin_defaults_apply_until_the_subscriber_chooses(db: Database) -> None:
    async with ops_world(db, risk_sizing="fixed", risk_fixed_lots="0.3", risk_max_positions=5) as world:
        view = await world.services.risk_limits.view(world.pairs[0][0].telegram_id)
        assert view is not None and view.limits.own == frozenset()
        assert (view.limits.sizing, view.limits.fixed_lots, view.limits.max_positions) == (
            "fixed",
            D("0.3"),
            5,
        )
        assert (await execute(world)).volume == D("0.3")
        await limits(world, sizing="signal")
        assert (await execute(world)).volume == D("0.47")
        assert (await execute(world, 1)).volume == D("0.3")  # the other subscriber: still the default
        await limits(world, sizing=None)  # back to the default
        assert (await execute(world)).volume == D("0.3")


async def test_a_signals_target_legs_are_one_trade_and_a_stop_at_entry_risks_nothing(db: Database) -> None:
    async with ops_world(db) as world:
        user, account = world.pairs[0]
        legs = await world.services.execution.execute_decision(
            await approve_targets(world.db, world.producer, user, account)
        )
        assert legs is not None and legs.status == OrderStatus.FILLED
        async with world.db.session() as s:
            assert len((await s.scalars(select(Position))).all()) == 3  # hedging: one per target
        await limits(world, max_positions=2)
        assert (await execute(world)).status == OrderStatus.FILLED  # the three legs are one trade
        code, _, params = await refusal(world, await execute(world))
        assert (code, params) == ("limit_max_positions", {"open": "2", "max": "2"})

        await limits(world, max_positions=None, max_open_risk_percent=D("1.5"))
        code, _, params = await refusal(world, await execute(world))
        assert code == "limit_open_risk" and D(params["open"]) > D("1.9")  # two trades of ~0.99 %
        async with world.db.session() as s:  # both trades' stops moved to their entries
            for position in (await s.scalars(select(Position))).all():
                position.sl = position.open_price
        assert (await execute(world)).status == OrderStatus.FILLED  # nothing at risk any more


async def test_a_resting_order_counts_and_two_orders_cannot_share_the_last_place(db: Database) -> None:
    async with ops_world(db) as world:
        await world.place_limit()
        await limits(world, max_positions=1)
        code, _, params = await refusal(world, await execute(world))
        assert (code, params["open"]) == ("limit_max_positions", "1")

        await limits(world, max_positions=2)
        user, account = world.pairs[0]
        decisions = [await make_approval(world.db, world.producer, user, account) for _ in range(2)]
        done = await asyncio.gather(*(world.services.execution.execute_decision(d) for d in decisions))
        assert sorted(str(o.status) for o in done if o is not None) == ["filled", "refused"]
        [refused] = [o for o in done if o is not None and o.status == OrderStatus.REFUSED]
        assert refused.reason_code == "limit_max_positions"


async def test_auto_execution_asks_the_same_limits(db: Database) -> None:
    async with ops_world(db, billing="off") as world:
        for tid in (1000, 1001):
            await world.services.auto_execute.configure(tid, enabled=True)
        await limits(world, 1, min_rr=D(3))
        async with world.db.session() as s:
            signal = Signal(
                producer_id=world.producer, idempotency_key="auto-rr", body_hash="h", instrument="EURUSD",
                side="buy", order_type="market", entry=D("1.10000"), sl=D("1.09800"), tp=D("1.10400"),
                risk_percent=D(1), ttl_seconds=900, received_at=utcnow(), expires_at=utcnow() + _hours(1),
            )  # fmt: skip
            s.add(signal)
        approved = await world.services.auto_execute.run_for_signal(signal.id)
        assert len(approved) == 1  # R:R 2 is below the second subscriber's minimum 3: not approved


async def test_limits_keep_a_signal_from_being_offered(db: Database) -> None:
    async with ops_world(db, users=3) as world:
        rl = world.services.risk_limits
        await limits(world, 0, min_rr=D("2.5"))
        await rl.toggle_instrument(world.pairs[1][0].telegram_id, "EURUSD", "test")
        async with world.db.session() as s:
            recipients = await world.services.subscribers.recipients(s)
            assert len(recipients) == 3
            rr2 = Signal(instrument="EURUSD", entry=D("1.10000"), sl=D("1.09800"), tp=D("1.10400"))
            offered = await rl.offered(s, rr2, recipients)
            assert [r.telegram_id for r in offered] == [1002]
            unknown_rr = Signal(instrument="EURUSD", entry=None, sl=D("1.09800"), tp=D("1.10400"))
            assert [r.telegram_id for r in await rl.offered(s, unknown_rr, recipients)] == [1000, 1002]
            await s.execute(
                update(RiskLimits)
                .where(RiskLimits.user_id == world.pairs[0][0].id)
                .values(min_rr=None, paused_until=utcnow() + _hours(1))
            )
            assert [r.telegram_id for r in await rl.offered(s, rr2, recipients)] == [1002]


async def test_limits_default_everyone_to_the_admins_minimum_rr(db: Database) -> None:
    async with ops_world(db, risk_min_rr="2.5") as world:
        async with world.db.session() as s:
            recipients = await world.services.subscribers.recipients(s)
            rr2 = Signal(instrument="EURUSD", entry=D("1.10000"), sl=D("1.09800"), tp=D("1.10400"))
            assert await world.services.risk_limits.offered(s, rr2, recipients) == []
        await limits(world, 1, min_rr=D(2))
        async with world.db.session() as s:
            offered = await world.services.risk_limits.offered(s, rr2, recipients)
            assert [r.telegram_id for r in offered] == [1001]


@pytest.mark.parametrize(
    ("field", "text", "code"),
    [
        ("max_lots", "lots", "not_a_number"),
        ("max_lots", "NaN", "not_a_number"),
        ("max_lots", "0", "out_of_range"),
        ("max_lots", "101", "out_of_range"),
        ("daily_loss_percent", "150", "out_of_range"),
        ("daily_loss_percent", "-1", "out_of_range"),
        ("max_positions", "2.5", "out_of_range"),
        ("max_positions", "0", "out_of_range"),
        ("risk_percent", "0.125", "too_precise"),
        ("risk_percent", "0", "out_of_range"),
        ("min_rr", "21", "out_of_range"),
        ("nonsense", "1", "unknown_field"),
    ],
)
def test_bad_values_are_refused_with_the_rule(field: str, text: str, code: str) -> None:
    with pytest.raises(LimitError) as caught:
        parse_number(field, text)
    assert caught.value.code == code


def test_values_are_read_as_people_type_them() -> None:
    assert parse_number("daily_loss_percent", " 2,5 % ") == D("2.5")
    assert parse_number("max_positions", "3") == 3
    assert parse_number("max_lots", "default") is None
    assert parse_number("min_rr", "1.25") == D("1.25")


async def test_a_bad_value_saves_nothing(db: Database) -> None:
    async with ops_world(db) as world:
        tid = world.pairs[0][0].telegram_id
        await limits(world, max_lots=D("0.5"))
        for text in ("abc", "1000"):
            with pytest.raises(LimitError):
                await world.services.risk_limits.set_number(tid, "max_lots", text, "test")
        with pytest.raises(LimitError):
            await world.services.risk_limits.set_sizing(tid, "martingale", "test")
        with pytest.raises(LimitError):
            await world.services.risk_limits.toggle_instrument(tid, "DOGEUSD", "test")
        view = await world.services.risk_limits.view(tid)
        assert view is not None and view.limits.max_lots == D("0.5") and view.limits.sizing == "signal"
        async with world.db.session() as s:
            changes = (await s.scalars(select(AuditLog).where(AuditLog.action == "risk.limits"))).all()
        assert len(changes) == 1
