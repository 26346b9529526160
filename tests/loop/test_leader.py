import asyncio
import os
import socket
import subprocess
from datetime import timedelta

from sqlalchemy import text

from engine.loop.leader import LEASE_KEY, PostgresLease, SqliteLease, make_lease
from engine.store.db import Database, utcnow
from engine.store.events import HEARTBEAT
from engine.store.models import EngineState
from tests.support.factories import paper_subscribers
from tests.support.loop_world import build_engine
from tests.support.queries import events
from tests.support.waiting import eventually, until

TTL = 2.0


async def test_only_one_lease_holder_on_either_database(db):
    first, second = make_lease(db), make_lease(db)
    assert type(first) is (PostgresLease if db.dialect == "postgresql" else SqliteLease)
    try:
        assert await first.acquire()
        assert not await second.acquire()
        assert await first.renew() and await first.acquire()  # holding it again is fine
        assert not await second.acquire()
        await first.release()
        assert not await first.renew()
        assert await second.acquire()
        assert not await first.acquire()
    finally:
        await first.release()
        await second.release()


async def test_two_loops_one_leader_and_takeover_on_stop(db):
    await paper_subscribers(db)
    a, b = build_engine(db).loop, build_engine(db).loop
    a.start()
    try:
        await until(lambda: a.is_leader and a.stats.heartbeats)
        b.start()
        await asyncio.sleep(0.5)  # a window for b to (wrongly) take the lead
        assert a.is_leader and not b.is_leader
        beats = {e.payload["loop_id"] for e in await events(db, HEARTBEAT)}
        assert beats == {a.loop_id}
        await a.stop(2.0)
        await until(lambda: b.is_leader and b.stats.heartbeats, timeout=10)
    finally:
        await a.stop(1.0)
        await b.stop(1.0)
    assert {e.payload["loop_id"] for e in await events(db, HEARTBEAT)} == {a.loop_id, b.loop_id}


async def test_postgres_lease_is_lost_with_its_connection(pg_url):
    db = Database(pg_url)
    holder, other = PostgresLease(pg_url), PostgresLease(pg_url)
    try:
        assert await holder.acquire()
        pid = await holder.backend_pid()
        assert not await other.acquire()
        async with db.engine.connect() as conn:  # the leader's connection dies (crash, partition)
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            await conn.commit()
        assert not await holder.renew()
        assert await other.acquire()
    finally:
        await holder.release()
        await other.release()
        await db.dispose()


async def _write_lease(db, **value):
    async with db.session() as s:
        row = await s.get(EngineState, LEASE_KEY)
        if row is None:
            s.add(EngineState(key=LEASE_KEY, value=value, updated_at=utcnow()))
        else:
            row.value = value


async def test_sqlite_lease_expires_and_dead_holders_are_taken_over(sqlite_db):
    db = sqlite_db
    soon = (utcnow() + timedelta(minutes=5)).isoformat()
    # expiries of a couple of seconds: every "not yet" below must still hold on a loaded machine
    lease = SqliteLease(db, ttl_seconds=TTL)
    # A live process elsewhere on this host holds it: wait.
    await _write_lease(db, owner="other", host=socket.gethostname(), pid=os.getppid(), expires_at=soon)
    assert not await lease.acquire()
    # A SIGKILLed holder: taken over at once, without waiting for the expiry.
    dead = subprocess.Popen(["sleep", "30"])
    dead.kill()
    dead.wait()
    await _write_lease(db, owner="dead", host=socket.gethostname(), pid=dead.pid, expires_at=soon)
    assert await lease.acquire()
    await lease.release()
    # A holder on another host is only taken over after its expiry.
    await _write_lease(
        db, owner="far", host="elsewhere", pid=1, expires_at=(utcnow() + timedelta(seconds=TTL)).isoformat()
    )
    assert not await lease.acquire()
    await eventually(lease.acquire, timeout=TTL + 10)
    # Our own lease lapses if not renewed: another instance may then take it, and we learn it.
    other = SqliteLease(db, ttl_seconds=TTL)
    assert not await other.acquire()
    await eventually(other.acquire, timeout=TTL + 10, interval=0.1)
    assert not await lease.renew()
    await other.release()


async def test_sqlite_claims_are_atomic_under_contention(sqlite_db):
    leases = [SqliteLease(sqlite_db, ttl_seconds=30) for _ in range(8)]
    results = await asyncio.gather(*(lease.acquire() for lease in leases))
    assert sum(results) == 1
