import asyncio

import pytest
from sqlalchemy import select

from engine.store.events import EventRelay, emit
from engine.store.models import DomainEvent


async def test_relay_delivers_committed_events_in_order(db):
    got = []

    async def sub(ev):
        got.append((ev.type, ev.payload["n"]))

    relay = EventRelay(db)
    relay.subscribe("test", sub)
    async with db.session() as s:
        for n in range(3):
            emit(s, "x.happened", n=n)
    with pytest.raises(RuntimeError):
        async with db.session() as s:
            emit(s, "rolled.back", n=99)
            raise RuntimeError("abort")
    assert await relay.drain() == 3
    assert got == [("x.happened", 0), ("x.happened", 1), ("x.happened", 2)]
    assert await relay.drain() == 0


async def test_failed_subscriber_keeps_the_event_and_order(db):
    calls = []
    fail = {"on": True}

    async def sub(ev):
        calls.append(ev.payload["n"])
        if fail["on"] and ev.payload["n"] == 1:
            raise ValueError("down")

    relay = EventRelay(db)
    relay.subscribe("flaky", sub)
    async with db.session() as s:
        for n in range(3):
            emit(s, "e", n=n)
    assert await relay.drain() == 1
    async with db.session() as s:
        pending = (await s.scalars(select(DomainEvent).where(DomainEvent.processed_at.is_(None)))).all()
    assert [p.payload["n"] for p in pending] == [1, 2]
    assert pending[0].attempts == 1 and "down" in pending[0].last_error
    fail["on"] = False
    assert await relay.drain() == 2
    assert calls == [0, 1, 1, 2]


async def test_a_batch_subscriber_gets_the_events_together_and_they_are_marked_at_once(db):
    batches = []

    async def batch(events):
        batches.append([e.payload["n"] for e in events])

    relay = EventRelay(db, batch=50)
    relay.subscribe_batch("batch", batch)
    async with db.session() as s:
        for n in range(120):
            emit(s, "e", n=n)
    marks = []

    async def counting_run(statements):
        marks.append(len(statements))
        await original(statements)

    original = db.writer.run
    db.writer.run = counting_run
    assert await relay.drain() == 120
    assert batches == [list(range(0, 50)), list(range(50, 100)), list(range(100, 120))]
    assert marks == [1, 1, 1]  # one UPDATE per batch
    assert await relay.pending() == 0


async def test_a_failing_batch_is_narrowed_to_the_failing_event(db):
    seen = []

    async def batch(events):
        seen.append([e.payload["n"] for e in events])
        if any(e.payload["n"] == 2 for e in events):
            raise ValueError("bad event")

    relay = EventRelay(db)
    relay.subscribe_batch("picky", batch)
    async with db.session() as s:
        for n in range(4):
            emit(s, "e", n=n)
    assert await relay.drain() == 2  # 0 and 1 go through, 2 keeps its place, 3 waits behind it
    assert seen == [[0, 1, 2, 3], [0], [1], [2]]
    async with db.session() as s:
        pending = (
            await s.scalars(
                select(DomainEvent).where(DomainEvent.processed_at.is_(None)).order_by(DomainEvent.id)
            )
        ).all()
    assert [p.payload["n"] for p in pending] == [2, 3]
    assert pending[0].attempts == 1 and "bad event" in pending[0].last_error


async def test_stop_with_a_deadline_leaves_the_rest_pending_for_the_next_start(db):
    delivered = []

    async def slow(events):
        delivered.extend(e.payload["n"] for e in events)
        await asyncio.sleep(0.05)  # a subscriber that takes its time

    relay = EventRelay(db, batch=10)
    relay.subscribe_batch("slow", slow)
    async with db.session() as s:
        for n in range(100):
            emit(s, "e", n=n)
    left = await relay.stop(deadline_seconds=0.12)
    assert 0 < len(delivered) < 100 and left == 100 - len(delivered)
    again = EventRelay(db, batch=10)  # the next start
    again.subscribe_batch("slow", slow)
    assert await again.drain() == left
    assert delivered == list(range(100))
