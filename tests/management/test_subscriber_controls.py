"""A subscriber's own Close / Close 50 % / Stop → entry, through the engine, exactly once.

The store decides (SQLite and PostgreSQL): double taps, taps racing each other, taps on a closed
position and taps by another subscriber never store a second update, so never reach the broker
twice. Paper accounts at fixed prices."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from sqlalchemy import func, select

from engine.management.controls import Target, Verdict
from engine.store.models import Decision, DomainEvent, PositionChange, SignalUpdate
from tests.support.management_world import World, build_world

USERS = 3


async def _world(db) -> World:
    return await build_world(db, "paper", users=USERS)


async def _decision(world: World, n: int) -> str:
    async with world.db.sessions() as s:
        return str(await s.scalar(select(Decision.id).where(Decision.account_id == world.accounts[n].id)))


async def _count(db, model) -> int:
    async with db.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def _closing_deals(world: World, n: int) -> int:
    broker = await world.broker(world.accounts[n])
    [position] = [p for p in await world.positions() if p.account_id == world.accounts[n].id]
    return sum(d.entry == "out" for d in await broker.position_deals(position.ticket))


async def _apply_all(world: World, update_ids) -> None:
    for update_id in update_ids:
        await world.changes.apply_update(update_id)


def _tid(world: World, n: int) -> int:
    return world.users[n].telegram_id


async def test_close_under_the_signal_closes_once_and_a_second_tap_is_the_same_request(db) -> None:
    world = await _world(db)
    target = Target(decision_id=await _decision(world, 0))
    first = await world.updates.subscriber_update(_tid(world, 0), target, "close", "confirm:1:77")
    assert first.verdict is Verdict.ACCEPTED and len(first.update_ids) == 1
    again = await world.updates.subscriber_update(_tid(world, 0), target, "close", "confirm:1:77")
    assert again.verdict is Verdict.REPLAYED and again.state == "in_progress"
    assert again.update_ids == first.update_ids
    await _apply_all(world, first.update_ids)
    done = await world.updates.subscriber_update(_tid(world, 0), target, "close", "confirm:1:77")
    assert done.verdict is Verdict.REPLAYED and done.state == "applied"
    assert await _closing_deals(world, 0) == 1
    assert await _count(db, SignalUpdate) == 1 and await _count(db, PositionChange) == 1
    async with db.sessions() as s:
        [closed] = (await s.scalars(select(DomainEvent).where(DomainEvent.type == "position.closed"))).all()
    assert closed.payload["source"] == "subscriber"
    assert closed.payload["reason"] == "closed_by_subscriber"
    assert closed.payload["decision_id"] == target.decision_id
    # another confirmation on the closed position: answered, nothing stored
    later = await world.updates.subscriber_update(_tid(world, 0), target, "close", "confirm:1:78")
    assert later.verdict is Verdict.CLOSED
    assert await _count(db, SignalUpdate) == 1


async def test_two_taps_at_once_store_one_request(db) -> None:
    world = await _world(db)
    target = Target(decision_id=await _decision(world, 0))
    same_key = await asyncio.gather(
        *(world.updates.subscriber_update(_tid(world, 0), target, "close", "confirm:1:5") for _ in range(2))
    )
    assert sorted(o.verdict for o in same_key) == sorted([Verdict.ACCEPTED, Verdict.REPLAYED])
    assert await _count(db, SignalUpdate) == 1
    # two Stop → entry taps (each tap its own key) racing: one goes, the other is told it is under way
    other = Target(decision_id=await _decision(world, 1))
    world.prices.set("EURUSD", "1.10200", "1.10210")  # in profit: the entry is a valid stop
    taps = await asyncio.gather(
        *(
            world.updates.subscriber_update(_tid(world, 1), other, "stop_to_entry", f"tap:{n}")
            for n in range(2)
        )
    )
    assert sorted(o.verdict for o in taps) == sorted([Verdict.ACCEPTED, Verdict.BUSY])
    accepted = next(o for o in taps if o.verdict is Verdict.ACCEPTED)
    await _apply_all(world, accepted.update_ids)
    [position] = [p for p in await world.positions() if p.account_id == world.accounts[1].id]
    assert position.sl == position.open_price
    third = await world.updates.subscriber_update(_tid(world, 1), other, "stop_to_entry", "tap:3")
    assert third.verdict is Verdict.AT_ENTRY
    assert await _count(db, SignalUpdate) == 2


async def test_close_half_by_position_then_half_of_the_rest(db) -> None:
    world = await _world(db)
    [position] = [p for p in await world.positions() if p.account_id == world.accounts[2].id]
    target = Target(position_id=position.id)
    first = await world.updates.subscriber_update(_tid(world, 2), target, "close_half", "confirm:3:1")
    busy = await world.updates.subscriber_update(_tid(world, 2), target, "close", "confirm:3:2")
    assert first.verdict is Verdict.ACCEPTED and busy.verdict is Verdict.BUSY
    await _apply_all(world, first.update_ids)
    [after] = [p for p in await world.positions() if p.id == position.id]
    half = (position.volume / 2).quantize(Decimal("0.01"), rounding="ROUND_DOWN")
    assert after.volume == position.volume - half and after.status == "open"
    # a new confirmation closes half of what is left; the old one is still the old request
    second = await world.updates.subscriber_update(_tid(world, 2), target, "close_half", "confirm:3:3")
    assert second.verdict is Verdict.ACCEPTED
    replay = await world.updates.subscriber_update(_tid(world, 2), target, "close_half", "confirm:3:1")
    assert replay.verdict is Verdict.REPLAYED and replay.state == "applied"
    await _apply_all(world, second.update_ids)
    assert await _closing_deals(world, 2) == 2


async def test_another_subscribers_tap_and_unknown_targets_store_nothing(db) -> None:
    world = await _world(db)
    theirs = Target(decision_id=await _decision(world, 0))
    [position] = [p for p in await world.positions() if p.account_id == world.accounts[0].id]
    for target in (theirs, Target(position_id=position.id)):
        outcome = await world.updates.subscriber_update(_tid(world, 1), target, "close", "confirm:9:9")
        assert outcome.verdict is Verdict.NOT_YOURS
    assert (await world.updates.subscriber_target(_tid(world, 1), theirs)).verdict is Verdict.NOT_YOURS
    missing = await world.updates.subscriber_update(
        _tid(world, 0), Target(position_id=987654), "close", "confirm:9:10"
    )
    assert missing.verdict is Verdict.NOT_FOUND
    stranger = await world.updates.subscriber_update(999_000_111, theirs, "close", "confirm:9:11")
    assert stranger.verdict is Verdict.NOT_FOUND
    assert await _count(db, SignalUpdate) == 0


async def test_refused_request_is_told_and_may_be_tried_again(db) -> None:
    world = await _world(db)
    target = Target(decision_id=await _decision(world, 0))
    # below the entry the stop cannot go to the entry: the broker refuses, the row says why
    world.prices.set("EURUSD", "1.09950", "1.09960")
    tapped = await world.updates.subscriber_update(_tid(world, 0), target, "stop_to_entry", "tap:a")
    await _apply_all(world, tapped.update_ids)
    async with db.sessions() as s:
        [change] = (await s.scalars(select(PositionChange))).all()
    assert change.status == "refused" and change.reason_code == "wrong_side"
    async with db.sessions() as s:
        [refused] = (
            await s.scalars(select(DomainEvent).where(DomainEvent.type == "position.change_refused"))
        ).all()
    assert refused.payload["source"] == "subscriber" and refused.payload["decision_id"] == target.decision_id
    world.prices.set("EURUSD", "1.10200", "1.10210")
    retry = await world.updates.subscriber_update(_tid(world, 0), target, "stop_to_entry", "tap:b")
    assert retry.verdict is Verdict.ACCEPTED


async def test_own_positions_lists_only_the_subscribers(db) -> None:
    world = await _world(db)
    mine = await world.updates.subscriber_positions(_tid(world, 1))
    assert [p.account_id for p in mine] == [world.accounts[1].id]
    assert mine[0].signal_id == world.signal_id and mine[0].decision_id == await _decision(world, 1)
    assert await world.updates.subscriber_positions(999_000_111) == []
