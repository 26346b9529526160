import asyncio
import itertools
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import select

from engine.brokers.paper import PaperBroker
from engine.loop.heartbeat import HEARTBEAT_KEY, heartbeat_fresh, heartbeat_probe, read_heartbeat
from engine.observability.readiness import Readiness
from engine.states import OrderStatus
from engine.store.db import utcnow
from engine.store.events import BROKER_DISCONNECTED, BROKER_RECONNECTED, HEARTBEAT
from engine.store.models import DomainEvent, EngineState, EquityPoint, Order
from tests.support.factories import make_approval, paper_subscribers
from tests.support.loop_world import QUICK, build_engine, open_recorded
from tests.support.queries import count, events
from tests.support.waiting import eventually

HEARTBEAT_FIELDS = {
    "at",
    "loop_id",
    "instance",
    "seq",
    "signals_processed",
    "trades_executed",
    "orders_driven",
    "errors",
    "errors_total",
    "loop_duration_ms",
    "ticks",
    "positions_open",
    "equity",
    "equity_accounts",
    "accounts_failing",
    "lifetime_signals",
    "lifetime_trades",
    "final",
}


async def test_heartbeat_content_and_period(db):
    producer, [(user, acct)] = await paper_subscribers(db)
    engine = build_engine(db)
    await engine.execution.execute_decision(await make_approval(db, producer, user, acct))
    engine.loop.start()
    try:
        await eventually(lambda: _beats(db, 4))
    finally:
        await engine.loop.stop(2.0)
    beats = [e.payload for e in await events(db, HEARTBEAT)]
    first = beats[0]
    assert set(first) == HEARTBEAT_FIELDS
    assert first["loop_id"] == engine.loop.loop_id and first["seq"] == 1 and first["final"] is False
    assert first["lifetime_signals"] == 1 and first["lifetime_trades"] == 1 and first["positions_open"] == 1
    assert first["signals_processed"] == 1 and first["trades_executed"] == 1
    assert beats[1]["signals_processed"] == 0 and beats[1]["trades_executed"] == 0  # differences, not totals
    assert Decimal(first["equity"][str(acct.id)]) == Decimal("9995.30")  # 0.47 lots, 10 points of spread
    assert first["equity_accounts"] == 1 and first["loop_duration_ms"] > 0 and first["ticks"] >= 1
    times = [datetime.fromisoformat(b["at"]) for b in beats[:4]]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    # Never more often than the period; later only by as much as a loaded machine delays a tick.
    assert all(QUICK.heartbeat_seconds * 0.9 <= g < QUICK.heartbeat_seconds + 2.0 for g in gaps), gaps
    assert [b["seq"] for b in beats] == list(range(1, len(beats) + 1))
    assert beats[-1]["final"] is True
    stored = await read_heartbeat(db)
    assert stored == beats[-1]


async def _beats(db, n):
    return len(await events(db, HEARTBEAT)) >= n


async def test_missed_heartbeat_makes_the_readiness_check_fail(db):
    await paper_subscribers(db)
    engine = build_engine(db)
    readiness = Readiness()
    period = 1.0  # long enough that a loaded machine does not make a fresh beat look stale
    readiness.register("trading_loop", heartbeat_probe(db, period))
    [result] = await readiness.run()
    assert not result.ok and "no heartbeat" in result.detail
    await engine.loop.tick()
    await engine.loop.heartbeat()
    [result] = await readiness.run()
    assert result.ok
    # The loop stops beating: after 3 periods the instance is not ready.
    async with db.session() as s:
        row = await s.get(EngineState, HEARTBEAT_KEY)
        row.value = {
            **row.value,
            "at": (utcnow() - timedelta(seconds=3 * period + 0.1)).isoformat(),
        }
    [result] = await readiness.run()
    assert not result.ok and "last heartbeat" in result.detail
    assert await heartbeat_fresh(db, 60) is True


async def test_one_failing_account_does_not_stop_the_others(db):
    producer, [(_, bad), (u2, good)] = await paper_subscribers(db, users=2)
    calls = {"bad": 0}
    broken = {"on": True}
    brokers = {}

    async def factory(account):
        if account.id == bad.id and broken["on"]:
            calls["bad"] += 1
            raise ConnectionError("terminal unreachable")
        if account.id not in brokers:
            brokers[account.id] = PaperBroker(db, account.id, prices=engine.prices)
        return brokers[account.id]

    engine = build_engine(db, factory=factory, loop_config=replace(QUICK, backoff_initial_seconds=0.1))
    await open_recorded(engine, good.id, volume="5")
    decision = await make_approval(db, producer, u2, good)
    await engine.execution.order_for_decision(decision)  # approved, waiting for the loop
    engine.prices.set("EURUSD", "1.09770", "1.09780")  # the good account goes soft
    ticks = 0
    loop_time = asyncio.get_running_loop().time
    start = loop_time()
    # At least 0.6 s of ticking, longer on a slow machine until the backoff has retried once.
    while loop_time() - start < 0.6 or (calls["bad"] < 2 and loop_time() - start < 10):
        await engine.loop.tick()
        ticks += 1
        await asyncio.sleep(0.02)
    async with db.session() as s:
        assert (await s.get(type(good), good.id)).drawdown_state == "soft"
        assert (await s.scalars(select(Order.status).where(Order.decision_id == decision))).one() == "refused"
    assert await count(db, EquityPoint, EquityPoint.account_id == good.id) >= ticks - 1
    # backed off, not hammered every tick: at least the first backoff (0.1 s, less 20 % jitter)
    # between two tries, counted in time, not ticks (on a loaded machine a tick outlasts the backoff)
    elapsed = loop_time() - start
    assert 2 <= calls["bad"] <= 1 + elapsed / 0.08
    [down] = await events(db, BROKER_DISCONNECTED)  # once
    assert down.payload["account_id"] == bad.id and "terminal unreachable" in down.payload["detail"]
    assert engine.loop.stats.failing == {bad.id} and engine.loop.stats.errors_total >= 2
    assert await events(db, BROKER_RECONNECTED) == []

    broken["on"] = False
    await eventually(lambda: _ticked_until_reconnected(engine, db))
    [up] = await events(db, BROKER_RECONNECTED)
    assert up.payload["account_id"] == bad.id and up.payload["failures"] >= 2
    assert len(await events(db, BROKER_DISCONNECTED)) == 1 and engine.loop.stats.failing == set()


async def _ticked_until_reconnected(engine, db):
    await engine.loop.tick()
    return bool(await events(db, BROKER_RECONNECTED))


async def test_approved_orders_are_picked_up_in_batches(db):
    producer, [(user, acct)] = await paper_subscribers(db, balance="100000")
    engine = build_engine(db, loop_config=replace(QUICK, order_batch_size=10, max_batches_per_tick=2))
    for n in range(25):
        await engine.execution.order_for_decision(
            await make_approval(db, producer, user, acct, key=f"b{n}", risk="0.1")
        )
    await engine.loop.tick()
    assert await count(db, Order, Order.status == OrderStatus.FILLED.value) == 20
    await engine.loop.tick()
    assert await count(db, Order, Order.status == OrderStatus.FILLED.value) == 25
    assert engine.loop.stats.orders_driven_total == 25


async def test_loop_retries_back_off_instead_of_burning_attempts(db):
    producer, [(user, acct)] = await paper_subscribers(db)
    engine = build_engine(db)
    broker = await engine.broker(acct.id)
    engine.execution.config = replace(
        engine.execution.config, retry_initial_seconds=10, retry_max_seconds=120
    )
    order = await engine.execution.order_for_decision(await make_approval(db, producer, user, acct))
    original_tick = broker.tick

    async def down(symbol):
        raise ConnectionError("terminal not connected")

    broker.tick = down
    for _ in range(5):
        await engine.loop.tick()
    async with db.session() as s:
        row = await s.get(Order, order.id)
    assert row.status == OrderStatus.RETRY_WAIT and row.attempts == 1
    assert row.next_attempt_at > utcnow() + timedelta(seconds=5)
    broker.tick = original_tick


async def test_equity_points_are_throttled(db):
    _, [(_, acct)] = await paper_subscribers(db)
    engine = build_engine(db, loop_config=replace(QUICK, equity_record_seconds=3600))
    await open_recorded(engine, acct.id, volume="1")
    for _ in range(5):
        await engine.loop.tick()
    assert await count(db, EquityPoint) == 1
    engine.prices.set("EURUSD", "1.08900", "1.08910")  # soft tier: a tier change is always recorded
    await engine.loop.tick()
    assert await count(db, EquityPoint) == 2


async def test_graceful_stop_drains_beats_once_more_flushes_and_releases(db):
    producer, [(user, acct)] = await paper_subscribers(db)
    engine = build_engine(db)
    delivered = []

    async def subscriber(event):
        delivered.append(event.type)

    engine.relay.subscribe("test", subscriber)
    broker = await engine.broker(acct.id)
    original = broker.submit

    in_flight = asyncio.Event()

    async def slow_submit(request):
        in_flight.set()
        await asyncio.sleep(0.3)  # a slow broker: the stop must wait for it
        return await original(request)

    broker.submit = slow_submit
    engine.loop.start()
    await eventually(lambda: _beats(db, 1))
    task = engine.execution.submit_in_background(await make_approval(db, producer, user, acct))
    await asyncio.wait_for(in_flight.wait(), 10)  # the broker call is in flight
    await engine.loop.stop(3.0)
    assert task.done() and task.result().status == OrderStatus.FILLED  # let it finish, not cut off
    stored = await read_heartbeat(db)
    assert stored["final"] is True and stored["lifetime_trades"] == 1
    async with db.session() as s:
        pending = (await s.scalars(select(DomainEvent).where(DomainEvent.processed_at.is_(None)))).all()
    assert pending == [] and delivered[-1] == HEARTBEAT  # flushed to subscribers, final beat last
    assert engine.registry.cached() == {}
    assert not engine.loop.is_leader and await heartbeat_fresh(db, 60) != True  # noqa: E712
    assert engine.execution.submit_in_background("another") is None  # no new work
    other = build_engine(db).loop.lease
    assert await other.acquire()  # lease released
    await other.release()


async def test_prometheus_collector_reports_the_loop(db):
    _, [(_, acct)] = await paper_subscribers(db)
    engine = build_engine(db)
    registry = CollectorRegistry()
    engine.loop.register_metrics(registry)
    await open_recorded(engine, acct.id, volume="1")
    await engine.loop.tick()
    await engine.loop.heartbeat()
    text = generate_latest(registry).decode()
    assert "tradebot_loop_ticks_total 1.0" in text
    assert "tradebot_positions_open 1.0" in text
    assert f'tradebot_account_equity{{account="{acct.id}"}}' in text
    assert 'tradebot_accounts_drawdown_tier{tier="ok"} 1.0' in text
    assert "tradebot_loop_heartbeat_timestamp_seconds" in text


async def test_approval_left_without_an_order_is_adopted(db):
    producer, [(user, acct)] = await paper_subscribers(db)
    engine = build_engine(db, loop_config=replace(QUICK, adopt_approvals_after_seconds=0))
    decision = await make_approval(db, producer, user, acct)  # approved; the process died before its order
    await engine.loop.tick()
    async with db.session() as s:
        order = (await s.scalars(select(Order).where(Order.decision_id == decision))).one()
    assert order.status == OrderStatus.FILLED
    await engine.loop.tick()
    assert await count(db, Order) == 1


async def test_orders_a_dead_process_left_in_flight_are_looked_up_on_sqlite(sqlite_db):
    from engine.execution.service import ExecutionConfig
    from engine.execution.sweep import PROCESS_STARTED_AT
    from engine.states import ORDER
    from tests.support.loop_world import open_at_broker

    db = sqlite_db
    producer, [(user, acct)] = await paper_subscribers(db)
    # Without the adoption these would wait for the 10-minute stale threshold.
    engine = build_engine(
        db,
        loop_config=replace(QUICK, orphan_grace_seconds=0),
        execution_config=ExecutionConfig(stale_submitting_seconds=600),
    )
    orphan = await engine.execution.order_for_decision(await make_approval(db, producer, user, acct, key="o"))
    mine = await engine.execution.order_for_decision(await make_approval(db, producer, user, acct, key="m"))
    await open_at_broker(
        await engine.broker(acct.id), volume="0.47", sl="1.098", tp="1.104", cid=orphan.client_order_id
    )
    async with db.session() as s:
        for order_id, at in ((orphan.id, PROCESS_STARTED_AT - timedelta(seconds=30)), (mine.id, utcnow())):
            row = await s.get(Order, order_id)
            ORDER.move(row, OrderStatus.SUBMITTING)
            row.submitted_at = at
    await engine.loop.tick()
    async with db.session() as s:
        assert (await s.get(Order, orphan.id)).status == OrderStatus.FILLED
        assert (await s.get(Order, mine.id)).status == OrderStatus.SUBMITTING  # this process's own: in flight
    assert (await engine.broker(acct.id)).submits == 1  # the orphan was found, not sent again


async def test_an_inactive_account_with_open_positions_is_still_watched(db):
    _, [(_, acct)] = await paper_subscribers(db)
    engine = build_engine(db)
    await open_recorded(engine, acct.id, volume="5")
    async with db.session() as s:
        (await s.get(type(acct), acct.id)).active = False  # the owner linked another account meanwhile
    engine.prices.set("EURUSD", "1.09590", "1.09600")  # -420 points x 5 lots: 21 %
    await engine.loop.tick()
    async with db.session() as s:
        account = await s.get(type(acct), acct.id)
    assert account.drawdown_state == "hard" and account.paused
    assert await (await engine.broker(acct.id)).positions() == []
