"""Trade management against the simulated terminal (hedging): a stop change the stops level
refuses is tried again on the next tick; a close or a stop move made by hand in the terminal is
recorded and left alone."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from engine.loop.management import TradeManager
from engine.store.models import AuditLog, DomainEvent, ExecutionAccount, Position, PositionFill
from mt5sim import constants as mc
from mt5sim import control
from tests.support import targets as tf
from tests.support.factories import paper_subscribers

LOGIN = 7301


async def _setup(db, tmp_path, monkeypatch, targets=tf.THREE):
    path = tmp_path / "mt5sim.sqlite3"
    monkeypatch.setenv("MT5SIM_STATE", str(path))
    tf.sim_account(path, LOGIN, mc.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING)
    control.set_symbol("EURUSD", freeze_level=0, stops_level=0, state=path)
    producer, [(user, acct)] = await paper_subscribers(db)
    await tf.as_mt5(db, acct.id, LOGIN)
    decision = await tf.approve_targets(db, producer, user, acct, targets)
    registry = tf.sim_registry()
    await tf.execution(db, registry).execute_decision(decision)
    async with db.session() as s:
        account = await s.get(ExecutionAccount, acct.id)
        s.expunge(account)
    broker = await registry.get(account)
    manager = TradeManager(db)

    async def tick() -> None:
        await manager.manage(account, broker)

    return path, registry, tick


async def _positions(db) -> list[Position]:
    async with db.session() as s:
        return list((await s.scalars(select(Position).order_by(Position.id))).all())


async def _events(db, kind: str) -> list[dict]:
    async with db.session() as s:
        rows = (
            await s.scalars(select(DomainEvent).where(DomainEvent.type == kind).order_by(DomainEvent.id))
        ).all()
    return [r.payload for r in rows]


async def test_a_stop_the_stops_level_refuses_is_set_on_the_next_tick(db, tmp_path, monkeypatch) -> None:
    # Targets 2 and 3 far away, so that only the stop is ever too close for the stops level.
    far = [("1.10300", 50), ("1.11000", 30), ("1.11500", 20)]
    path, registry, tick = await _setup(db, tmp_path, monkeypatch, far)
    try:
        # Break-even would put the stop about 300 points under the price: refused at 350.
        control.set_symbol("EURUSD", stops_level=350, state=path)
        control.set_price("EURUSD", "1.10305", "1.10315", state=path)
        await tick()
        open_ = [p for p in await _positions(db) if p.status == "open"]
        assert len(open_) == 2 and all(p.sl == Decimal("1.09800") for p in open_)
        [closed] = await _events(db, "position.closed")
        assert closed["kind"] == "target" and closed["stop_moved"] is False
        assert await _events(db, "position.modified") == []

        control.set_price("EURUSD", "1.10380", "1.10390", state=path)  # now 370 points away
        await tick()
        open_ = [p for p in await _positions(db) if p.status == "open"]
        assert all(p.sl == p.open_price for p in open_)
        modified = await _events(db, "position.modified")
        assert [m["by"] for m in modified] == ["breakeven", "breakeven"]
        assert not any(m["with_fill"] for m in modified)  # told on its own, the fill was told before
    finally:
        await registry.close()
        control.close()


async def test_the_target_fill_and_the_break_even_it_causes_are_one_fact(db, tmp_path, monkeypatch) -> None:
    path, registry, tick = await _setup(db, tmp_path, monkeypatch)
    try:
        control.set_price("EURUSD", "1.10305", "1.10315", state=path)
        await tick()
        [closed] = await _events(db, "position.closed")
        assert closed["kind"] == "target" and closed["targets"] == [1] and closed["stop_moved"] is True
        assert Decimal(closed["fill_volume"]) == Decimal("0.23") and closed["currency"] == "USD"
        modified = await _events(db, "position.modified")
        assert len(modified) == 2 and all(m["by"] == "breakeven" and m["with_fill"] for m in modified)
    finally:
        await registry.close()
        control.close()


async def test_a_close_by_hand_is_recorded_and_not_undone(db, tmp_path, monkeypatch) -> None:
    path, registry, tick = await _setup(db, tmp_path, monkeypatch)
    try:
        first, second, third = await _positions(db)
        control.close_by_hand(LOGIN, int(second.ticket), state=path)
        await tick()
        await tick()
        positions = await _positions(db)
        assert [p.status for p in positions] == ["open", "closed", "open"]
        assert positions[1].close_reason == "manual"
        async with db.session() as s:
            fills = (await s.scalars(select(PositionFill))).all()
            audits = (
                await s.scalars(select(AuditLog).where(AuditLog.action == "position.closed_by_hand"))
            ).all()
        assert [(f.kind, f.reason, f.position_id) for f in fills] == [("manual", "client", second.id)]
        assert len(audits) == 1
        [closed] = await _events(db, "position.closed")
        assert closed["kind"] == "manual" and closed["stop_moved"] is False
        # Nothing reopened or re-sent at the terminal: the two other legs are all there is.
        dump = control.dump(state=path)
        assert sorted(int(p["ticket"]) for p in dump["positions"]) == sorted(
            [int(first.ticket), int(third.ticket)]
        )
    finally:
        await registry.close()
        control.close()


async def test_a_stop_moved_by_hand_is_left_alone_by_break_even(db, tmp_path, monkeypatch) -> None:
    path, registry, tick = await _setup(db, tmp_path, monkeypatch)
    try:
        _first, second, third = await _positions(db)
        control.move_stop_by_hand(LOGIN, int(second.ticket), "1.09900", state=path)
        control.set_price("EURUSD", "1.10305", "1.10315", state=path)
        await tick()
        await tick()
        positions = {p.id: p for p in await _positions(db)}
        assert positions[second.id].sl == Decimal("1.09900") and positions[second.id].stop_managed is False
        assert positions[third.id].sl == positions[third.id].open_price
        at_terminal = {int(p["ticket"]): Decimal(str(p["sl"])) for p in control.dump(state=path)["positions"]}
        assert at_terminal[int(second.ticket)] == Decimal("1.09900")
        modified = await _events(db, "position.modified")
        assert sorted(m["by"] for m in modified) == ["breakeven", "hand"]
        assert [m["sl"] for m in modified if m["by"] == "hand"] == ["1.09900"]
    finally:
        await registry.close()
        control.close()
