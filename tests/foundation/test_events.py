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
