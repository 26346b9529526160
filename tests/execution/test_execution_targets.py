"""A multi-target signal becomes one order per target on hedging accounts, one on netting accounts."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from engine.execution.service import client_order_id_for
from engine.execution.targets import Share, TargetLevel, plan_from_json, split_volume
from engine.states import OrderStatus
from engine.store.models import Order, Position
from mt5sim import constants as mc
from mt5sim import control
from tests.support import targets as tf
from tests.support.factories import paper_subscribers
from tests.support.prices import FixedPrices
from tests.support.symbols import EURUSD


def levels(*percents: int) -> tuple[TargetLevel, ...]:
    return tuple(TargetLevel(n, Decimal("1.1") + Decimal(n) / 100, p) for n, p in enumerate(percents, 1))


def test_volume_is_split_by_percent_and_the_rounding_rest_goes_last() -> None:
    shares = split_volume(Decimal("0.47"), levels(50, 30, 20), EURUSD)
    assert [(s.number, s.volume, s.joined) for s in shares] == [
        (1, Decimal("0.23"), ()), (2, Decimal("0.14"), ()), (3, Decimal("0.10"), ()),
    ]  # fmt: skip


def test_a_share_below_the_minimum_joins_the_previous_target() -> None:
    shares = split_volume(Decimal("0.02"), levels(50, 30, 20), EURUSD)
    assert shares == (
        Share(1, Decimal("1.11"), Decimal("0.01"), (2,)),
        Share(3, Decimal("1.13"), Decimal("0.01")),
    )


def test_a_first_share_below_the_minimum_joins_the_next() -> None:
    shares = split_volume(Decimal("0.03"), levels(10, 45, 45), EURUSD)
    assert [(s.number, s.volume, s.numbers) for s in shares] == [
        (2, Decimal("0.01"), (1, 2)), (3, Decimal("0.02"), (3,)),
    ]  # fmt: skip


@given(
    st.integers(min_value=1, max_value=5000),
    st.lists(st.integers(min_value=1, max_value=97), min_size=1, max_size=4).filter(lambda p: sum(p) < 100),
)
def test_shares_always_add_up_and_are_tradable(steps: int, head: list[int]) -> None:
    percents = [*head[:3], 100 - sum(head[:3])]
    volume = Decimal(steps) * EURUSD.volume_step
    shares = split_volume(volume, levels(*percents), EURUSD)
    assert sum(s.volume for s in shares) == volume
    assert all(s.volume >= EURUSD.volume_min and s.volume % EURUSD.volume_step == 0 for s in shares)
    assert sorted(n for s in shares for n in s.numbers) == list(range(1, len(percents) + 1))


async def _orders(db) -> list[Order]:
    async with db.session() as s:
        return list((await s.scalars(select(Order).order_by(Order.leg))).all())


async def test_paper_hedging_account_gets_one_order_per_target(db) -> None:
    producer, [(user, acct)] = await paper_subscribers(db)
    decision = await tf.approve_targets(db, producer, user, acct)
    registry = tf.paper_registry(db, FixedPrices())
    first = await tf.execution(db, registry).execute_decision(decision)
    assert first.status == OrderStatus.FILLED and first.leg == 1
    orders = await _orders(db)
    assert [(o.leg, o.volume, o.tp, o.sl, o.status) for o in orders] == [
        (1, Decimal("0.23"), Decimal("1.10300"), Decimal("1.09800"), "filled"),
        (2, Decimal("0.14"), Decimal("1.10500"), Decimal("1.09800"), "filled"),
        (3, Decimal("0.10"), Decimal("1.10800"), Decimal("1.09800"), "filled"),
    ]
    assert [o.client_order_id for o in orders] == [client_order_id_for(decision, n) for n in (1, 2, 3)]
    assert len({o.client_order_id for o in orders}) == 3
    assert [plan_from_json(o.targets)[0].number for o in orders] == [1, 2, 3]
    async with db.session() as s:
        positions = (await s.scalars(select(Position).order_by(Position.id))).all()
    assert [(p.volume, p.tp) for p in positions] == [(o.volume, o.tp) for o in orders]
    again = await tf.execution(db, registry).execute_decision(decision)  # a second tap
    assert again.id == first.id and len(await _orders(db)) == 3


@pytest.mark.parametrize(
    "mode", [mc.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING, mc.ACCOUNT_MARGIN_MODE_RETAIL_NETTING]
)
async def test_simulated_terminal_hedging_legs_or_one_netting_position(
    db, tmp_path, monkeypatch, mode
) -> None:
    path = tmp_path / "mt5sim.sqlite3"
    monkeypatch.setenv("MT5SIM_STATE", str(path))
    tf.sim_account(path, 7101, mode)
    producer, [(user, acct)] = await paper_subscribers(db)
    await tf.as_mt5(db, acct.id, 7101)
    decision = await tf.approve_targets(db, producer, user, acct)
    registry = tf.sim_registry()
    try:
        await tf.execution(db, registry).execute_decision(decision)
    finally:
        await registry.close()
        control.close()
    orders = await _orders(db)
    if mode == mc.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING:
        assert [(o.volume, o.tp, o.status) for o in orders] == [
            (Decimal("0.23"), Decimal("1.10300"), "filled"),
            (Decimal("0.14"), Decimal("1.10500"), "filled"),
            (Decimal("0.10"), Decimal("1.10800"), "filled"),
        ]
        assert len({o.position_ticket for o in orders}) == 3
    else:
        [order] = orders
        assert (order.volume, order.tp, order.status) == (Decimal("0.47"), Decimal("1.10800"), "filled")
        assert [(s.number, s.volume) for s in plan_from_json(order.targets)] == [
            (1, Decimal("0.23")), (2, Decimal("0.14")), (3, Decimal("0.10")),
        ]  # fmt: skip
