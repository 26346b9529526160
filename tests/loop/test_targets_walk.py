"""A 3-target signal walked through TP1 (partial close, stop to entry), TP2, then the stop:
on the paper broker (hedging) and on the simulated terminal in both margin modes."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from engine.loop.management import TradeManager
from engine.store.models import DomainEvent, ExecutionAccount, Position, PositionFill
from mt5sim import constants as mc
from mt5sim import control
from tests.support import targets as tf
from tests.support.factories import paper_subscribers
from tests.support.prices import FixedPrices


async def _state(db):
    async with db.session() as s:
        positions = (await s.scalars(select(Position).order_by(Position.id))).all()
        fills = (await s.scalars(select(PositionFill).order_by(PositionFill.id))).all()
        events = (await s.scalars(select(DomainEvent).order_by(DomainEvent.id))).all()
    return positions, fills, [(e.type, e.payload) for e in events]


async def _walk(db, registry, account_id, move) -> None:
    manager = TradeManager(db)
    async with db.session() as s:
        account = await s.get(ExecutionAccount, account_id)
        s.expunge(account)
    broker = await registry.get(account)

    async def tick(times: int = 1) -> None:
        for _ in range(times):
            await manager.manage(account, broker)

    move("1.10305", "1.10315")  # through TP1
    await tick(2)
    positions, fills, events = await _state(db)
    assert [f.targets for f in fills] == [[1]] and fills[0].kind == "target"
    # A broker-side TP fills at its level; an engine-side target (netting) at the market that reached it.
    assert fills[0].volume == Decimal("0.23") and fills[0].price in (Decimal("1.10300"), Decimal("1.10305"))
    open_ = [p for p in positions if p.status == "open"]
    assert all(p.sl == p.open_price for p in open_)  # stop moved to entry
    assert sum(p.volume for p in open_) == Decimal("0.24")
    assert any(t == "position.modified" and p["by"] == "breakeven" for t, p in events)

    move("1.10505", "1.10515")  # through TP2
    await tick(2)
    _, fills, _ = await _state(db)
    assert [f.targets for f in fills] == [[1], [2]]

    move("1.10000", "1.10010")  # back through the stop at entry
    await tick(2)
    positions, fills, events = await _state(db)
    assert [f.kind for f in fills] == ["target", "target", "stop"]
    assert all(p.status == "closed" for p in positions)
    total = sum(p.profit for p in positions)
    assert total == sum(f.profit for f in fills) and total > 0
    assert sum(f.volume for f in fills) == Decimal("0.47")


async def test_paper_hedging_walk(db) -> None:
    prices = FixedPrices()
    producer, [(user, acct)] = await paper_subscribers(db)
    decision = await tf.approve_targets(db, producer, user, acct)
    registry = tf.paper_registry(db, prices)
    await tf.execution(db, registry).execute_decision(decision)
    await _walk(db, registry, acct.id, lambda bid, ask: prices.set("EURUSD", bid, ask))


@pytest.mark.parametrize(
    "mode",
    [mc.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING, mc.ACCOUNT_MARGIN_MODE_RETAIL_NETTING],
    ids=["hedging", "netting"],
)
async def test_simulated_terminal_walk(db, tmp_path, monkeypatch, mode) -> None:
    path = tmp_path / "mt5sim.sqlite3"
    monkeypatch.setenv("MT5SIM_STATE", str(path))
    tf.sim_account(path, 7201, mode)
    control.set_symbol("EURUSD", freeze_level=0, state=path)
    producer, [(user, acct)] = await paper_subscribers(db)
    await tf.as_mt5(db, acct.id, 7201)
    decision = await tf.approve_targets(db, producer, user, acct)
    registry = tf.sim_registry()
    try:
        await tf.execution(db, registry).execute_decision(decision)
        await _walk(db, registry, acct.id, lambda bid, ask: control.set_price("EURUSD", bid, ask, state=path))
    finally:
        await registry.close()
        control.close()
