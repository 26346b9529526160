"""Outbound events: stored from the relay, POSTed signed, retried with backoff, resumed on restart."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from engine.api.outbound import OutboundDispatcher, OutboundRecorder, install_outbound
from engine.ingest.signing import verify
from engine.observability.metrics import Metrics
from engine.settings import SettingsError
from engine.store.db import utcnow
from engine.store.events import HEARTBEAT, SIGNAL_ACCEPTED, EventRelay, emit
from engine.store.models import OutboundDelivery
from tests.support.api_world import make_settings
from tests.support.queries import rows
from tests.support.waiting import eventually, until

SECRET = "outbound-secret-for-tests"


class Receiver:
    """A loopback endpoint answering from a script of statuses (then 200)."""

    def __init__(self, script=(), delay: float = 0.0) -> None:
        self.script = list(script)
        self.delay = delay
        self.calls: list[tuple[dict, bytes, int]] = []
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.server = TestServer(app, host="127.0.0.1")

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = self.script.pop(0) if self.script else 200
        self.calls.append((dict(request.headers), body, status))
        if self.delay:
            await asyncio.sleep(self.delay)
        headers = {"Retry-After": "0"} if status == 429 else {}
        return web.Response(status=status, text="nope" if status >= 300 else "ok", headers=headers)

    @property
    def url(self) -> str:
        return str(self.server.make_url("/hook"))

    async def __aenter__(self) -> Receiver:
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.server.close()


def _dispatcher(db, **kw):
    options = {"base_delay": 0.01, "max_delay": 0.05, "timeout": 2.0, "rng": random.Random(1)}
    options.update(kw)
    return OutboundDispatcher(db, SECRET, **options)


async def _emit_and_record(db, url, type_=SIGNAL_ACCEPTED, **payload):
    relay = EventRelay(db)
    relay.subscribe("outbound", OutboundRecorder(db, url))
    async with db.session() as s:
        emit(s, type_, **payload)
    assert await relay.drain() == 1


async def _until(predicate, dispatcher, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await dispatcher.run_once()
        await asyncio.sleep(0.02)


async def test_retries_5xx_then_delivers_once_signed(db):
    async with Receiver([503, 503, 200]) as rx:
        await _emit_and_record(db, rx.url, signal_id="s-1", sl="1.0815")
        [row] = await rows(db, OutboundDelivery)
        metrics = Metrics()
        dispatcher = _dispatcher(db, metrics=metrics)

        async def delivered():
            return (await rows(db, OutboundDelivery))[0].status == "delivered"

        await _until(delivered, dispatcher)
        await dispatcher.stop()
    assert [c[2] for c in rx.calls] == [503, 503, 200]
    bodies = {c[1] for c in rx.calls}
    assert bodies == {row.body.encode()}  # the exact stored bytes, every attempt
    doc = json.loads(row.body)
    assert set(doc) == {"id", "type", "created_at", "data"}
    assert doc["type"] == SIGNAL_ACCEPTED and doc["data"] == {"signal_id": "s-1", "sl": "1.0815"}
    for headers, body, _ in rx.calls:
        assert headers["Idempotency-Key"] == doc["id"] == row.id
        assert headers["Content-Type"] == "application/json"
        verify(SECRET, body, headers["X-Signature"])  # the producers' scheme, the outbound secret
    [done] = await rows(db, OutboundDelivery)
    assert done.attempts == 3 and done.delivered_at is not None
    assert b'tradebot_outbound_attempts_total{outcome="retry"} 2.0' in metrics.render()


async def test_other_4xx_is_dead_and_not_retried(sqlite_db):
    async with Receiver([400]) as rx:
        await _emit_and_record(sqlite_db, rx.url, n=1)
        dispatcher = _dispatcher(sqlite_db)
        assert await dispatcher.run_once() == 1
        await asyncio.sleep(0.1)  # longer than any backoff: a retry would be due by now (none is)
        assert await dispatcher.run_once() == 0
        await dispatcher.stop()
    assert len(rx.calls) == 1
    [row] = await rows(sqlite_db, OutboundDelivery)
    assert row.status == "dead" and row.attempts == 1 and "400" in row.last_error


async def test_429_and_timeouts_are_retried(sqlite_db):
    async with Receiver([429]) as rx:
        await _emit_and_record(sqlite_db, rx.url, n=1)
        dispatcher = _dispatcher(sqlite_db)

        async def delivered():
            return (await rows(sqlite_db, OutboundDelivery))[0].status == "delivered"

        await _until(delivered, dispatcher)
        await dispatcher.stop()
    assert [c[2] for c in rx.calls] == [429, 200]

    async with Receiver(delay=0.5) as slow:
        await _emit_and_record(sqlite_db, slow.url, HEARTBEAT, n=2)
        dispatcher = _dispatcher(sqlite_db, timeout=0.1)
        await dispatcher.run_once()
        await dispatcher.stop()
    pending = [r for r in await rows(sqlite_db, OutboundDelivery) if r.type == HEARTBEAT]
    assert pending[0].status == "pending" and pending[0].attempts == 1
    assert "Timeout" in pending[0].last_error


async def test_restart_resumes_pending_deliveries(db):
    async with Receiver([503]) as rx:
        await _emit_and_record(db, rx.url, n=1)
        first = _dispatcher(db, base_delay=0.2, max_delay=0.2)
        before = utcnow()
        await first.run_once()
        await first.stop()  # the process stops with the event still pending
        [row] = await rows(db, OutboundDelivery)
        assert row.status == "pending" and row.attempts == 1
        # the backoff is persisted, not held in memory (measured from before the attempt: however
        # slow the machine, the row says "not before attempt + 0.2 s")
        assert row.next_attempt_at >= before + timedelta(seconds=0.2)
        second = _dispatcher(db)  # a new process on the same database
        second.start()
        try:

            async def delivered():
                return (await rows(db, OutboundDelivery))[0].status == "delivered"

            await eventually(delivered)
        finally:
            await second.stop()
    assert [c[2] for c in rx.calls] == [503, 200]
    assert (await rows(db, OutboundDelivery))[0].attempts == 2


async def test_recorder_is_idempotent_and_filters_types(sqlite_db):
    recorder = OutboundRecorder(sqlite_db, "http://127.0.0.1:9/hook")
    from engine.store.events import Event

    event = Event(1, "11111111-1111-4111-8111-111111111111", SIGNAL_ACCEPTED, {"a": 1}, utcnow())
    await recorder(event)
    await recorder(event)  # handed over again after a crash
    await recorder(Event(2, "22222222-2222-4222-8222-222222222222", "decision.recorded", {}, utcnow()))
    [row] = await rows(sqlite_db, OutboundDelivery)
    assert row.id == event.event_id and row.url == "http://127.0.0.1:9/hook"


async def test_install_outbound_wires_relay_to_dispatcher(sqlite_db):
    assert install_outbound(EventRelay(sqlite_db), sqlite_db, make_settings(sqlite_db.url)) is None
    with pytest.raises(SettingsError, match="OUTBOUND_SECRET"):
        install_outbound(
            EventRelay(sqlite_db),
            sqlite_db,
            make_settings(sqlite_db.url, outbound_url="http://127.0.0.1:9/x"),
        )
    async with Receiver() as rx:
        settings = make_settings(sqlite_db.url, outbound_url=rx.url, outbound_secret=SECRET)
        relay = EventRelay(sqlite_db, poll_seconds=60)
        dispatcher = install_outbound(relay, sqlite_db, settings, base_delay=0.01, max_delay=0.05)
        dispatcher.start()
        relay.start()
        try:
            async with sqlite_db.session() as s:
                emit(s, HEARTBEAT, equity="100.5")
            relay.notify()
            await until(lambda: rx.calls)
        finally:
            await relay.stop()
            await dispatcher.stop()
    assert len(rx.calls) == 1
    assert json.loads(rx.calls[0][1])["data"] == {"equity": "100.5"}


def test_backoff_is_jittered_exponential_and_capped():
    d = OutboundDispatcher.__new__(OutboundDispatcher)
    d._base, d._cap, d._rng = 1.0, 120.0, random.Random(7)
    for attempts in range(1, 12):
        delays = [d.backoff(attempts) for _ in range(50)]
        low = min(120.0, 2 ** (attempts - 1))
        assert all(low <= x <= min(120.0, low + 1.0) for x in delays)
    assert len({round(d.backoff(3), 6) for _ in range(20)}) > 1  # jitter
    assert d.backoff(1, retry_after=30) == 30
    assert d.backoff(1, retry_after=9999) == 120.0
    assert timedelta(seconds=d.backoff(20)) <= timedelta(seconds=120)
