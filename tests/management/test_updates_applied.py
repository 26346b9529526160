"""Each update action applied across 20 subscribers' positions, one account refusing, exactly once.

Runs on the paper broker and on the simulated MT5 terminal behind the real MT5 broker code, on
SQLite and PostgreSQL. The refusing account: on MT5 the terminal answers "market closed" for that
login only; on paper its position was closed by hand at the broker, so the broker refuses it."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import pytest
from sqlalchemy import func, select

from engine.states import OrderStatus
from engine.store.models import DomainEvent, Order, PositionChange, Signal
from mt5sim import control
from tests.support.management_world import World, build_world, login_of, start_sim, submit

USERS = 20
REFUSING = 7  # the index of the subscriber whose account refuses


@pytest.fixture(params=["paper", "mt5"])
def kind(request, tmp_path, monkeypatch):
    if request.param == "mt5":
        path = tmp_path / "mt5sim.sqlite3"
        monkeypatch.setenv("MT5SIM_STATE", str(path))
        start_sim(path, USERS)
        yield "mt5"
        control.close()
    else:
        yield "paper"


async def _world(db, kind, **kw) -> World:
    return await build_world(db, kind, users=USERS, **kw)


def _price(world: World, bid: str, ask: str) -> None:
    if world.prices is not None:
        world.prices.set("EURUSD", bid, ask)
    else:
        control.set_price("EURUSD", Decimal(bid), Decimal(ask))


async def _refuse_one(world: World) -> None:
    account = world.accounts[REFUSING]
    if world.kind == "mt5":
        control.force_retcode(10018, count=None, login=login_of(REFUSING))  # market closed
        return
    broker = await world.broker(account)
    [pos] = await broker.positions()
    await broker.close_position(pos.ticket, "by-hand-1")  # closed in the "terminal" by hand


def _half(volume: Decimal) -> Decimal:
    """What closing 50 % closes: half, down to the volume step (0.01)."""
    return (volume / 2).quantize(Decimal("0.01"), rounding=ROUND_DOWN)


async def _events(db, type_) -> list[dict]:
    async with db.sessions() as s:
        return [
            e.payload for e in (await s.scalars(select(DomainEvent).where(DomainEvent.type == type_))).all()
        ]


async def _changes(db) -> list[PositionChange]:
    async with db.sessions() as s:
        return list((await s.scalars(select(PositionChange).order_by(PositionChange.id))).all())


async def test_move_sl_to_entry(db, kind) -> None:
    world = await _world(db, kind)
    await _refuse_one(world)
    _price(world, "1.10200", "1.10210")  # in profit: the entry is a valid stop now
    update_id = await submit(world, {"action": "move_sl", "sl": "entry"})
    await world.changes.apply_update(update_id)
    rows = await _changes(db)
    assert len(rows) == USERS
    refused = [r for r in rows if r.status == "refused"]
    assert [r.account_id for r in refused] == [world.accounts[REFUSING].id]
    assert refused[0].reason_code and refused[0].reason
    assert sum(r.status == "applied" for r in rows) == USERS - 1
    for n, account in enumerate(world.accounts):
        if n == REFUSING:
            continue
        [pos] = await (await world.broker(account)).positions()
        assert pos.sl == pos.open_price  # at the broker
    stored = {p.account_id: p for p in await world.positions()}
    assert stored[world.accounts[0].id].sl == stored[world.accounts[0].id].open_price
    assert len(await _events(db, "position.modified")) == USERS - 1
    assert len(await _events(db, "position.change_refused")) == 1
    # exactly once: applying again and re-planning change nothing
    await world.changes.apply_update(update_id)
    assert len(await _events(db, "position.modified")) == USERS - 1
    view = await world.updates.progress(world.producer_id, "setup-1", update_id)
    assert view is not None and view["status"] == "done"
    assert view["counts"] == {"applied": USERS - 1, "refused": 1, "pending": 0}


async def test_move_tp(db, kind) -> None:
    world = await _world(db, kind)
    await _refuse_one(world)
    update_id = await submit(world, {"action": "move_tp", "price": "1.10600"})
    await world.changes.apply_update(update_id)
    rows = await _changes(db)
    assert sum(r.status == "applied" for r in rows) == USERS - 1
    [pos] = await (await world.broker(world.accounts[0])).positions()
    assert pos.tp == Decimal("1.10600")


async def test_close_half_then_all(db, kind) -> None:
    world = await _world(db, kind)
    await _refuse_one(world)
    before = {p.account_id: p.volume for p in await world.positions()}
    update_id = await submit(world, {"action": "close", "percent": 50})
    await world.changes.apply_update(update_id)
    await world.changes.apply_update(update_id)  # again: nothing more is closed
    for n, account in enumerate(world.accounts):
        if n == REFUSING:
            continue
        [pos] = await (await world.broker(account)).positions()
        assert pos.volume == before[account.id] - _half(before[account.id])
    partial = await _events(db, "position.partially_closed")
    assert len(partial) == USERS - 1
    assert all(Decimal(p["closed_volume"]) > 0 for p in partial)
    stored = {p.account_id: p for p in await world.positions()}
    first = world.accounts[0].id
    assert stored[first].volume == before[first] - _half(before[first])
    everything = await submit(world, {"action": "close"})
    await world.changes.apply_update(everything)
    for n, account in enumerate(world.accounts):
        if n != REFUSING:
            assert await (await world.broker(account)).positions() == []
    closed = await _events(db, "position.closed")
    assert len([c for c in closed if c["reason"] == "closed_by_producer"]) == USERS - 1


async def test_cancel_removes_resting_orders_and_stops_the_signal(db, kind) -> None:
    world = await _world(db, kind, order_type="limit", entry="1.09900")
    async with db.sessions() as s:
        placed = await s.scalar(select(func.count(Order.id)).where(Order.status == OrderStatus.PLACED.value))
    assert placed == USERS
    if kind == "mt5":
        control.force_retcode(10018, count=None, login=login_of(REFUSING))
    update_id = await submit(world, {"action": "cancel"})
    async with db.sessions() as s:
        assert (await s.get(Signal, world.signal_id)).status == "cancelled"
    await world.changes.apply_update(update_id)
    rows = await _changes(db)
    expect_refused = 1 if kind == "mt5" else 0
    assert sum(r.status == "refused" for r in rows) == expect_refused
    assert sum(r.status == "applied" for r in rows) == USERS - expect_refused
    assert await (await world.broker(world.accounts[0])).pending_orders() == []
    async with db.sessions() as s:
        cancelled = await s.scalar(
            select(func.count(Order.id)).where(Order.status == OrderStatus.CANCELLED.value)
        )
    assert cancelled == USERS - expect_refused


async def test_note_trades_nothing(db, kind) -> None:
    world = await _world(db, kind)
    update_id = await submit(world, {"action": "note", "text": "news at 14:30, be careful"})
    await world.changes.apply_update(update_id)
    assert await _changes(db) == []
    [event] = await _events(db, "signal.updated")
    assert event["action"] == "note" and event["params"] == {"text": "news at 14:30, be careful"}
