"""The loop, the guard and reconciliation against the simulated MT5 terminal (MT5 broker + mt5sim)."""

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

import mt5sim
from engine.brokers.mt5 import create_mt5_broker
from engine.states import ORDER, OrderStatus
from engine.store.db import utcnow
from engine.store.events import BROKER_DISCONNECTED, BROKER_RECONNECTED, DRAWDOWN_TRIGGERED, POSITION_CLOSED
from engine.store.models import ExecutionAccount, Order, Position, Producer, User
from mt5sim import control
from tests.support.factories import make_approval
from tests.support.loop_world import build_engine, open_at_broker
from tests.support.queries import events
from tests.support.waiting import eventually

LOGIN, PASSWORD, SERVER = 7001, "pw-7001", "MT5Sim-Demo"


@pytest.fixture
def sim(tmp_path, monkeypatch):
    path = tmp_path / "mt5sim.sqlite3"
    monkeypatch.setenv("MT5SIM_STATE", str(path))
    control.ignore_market_hours(state=path)
    control.create_account(LOGIN, PASSWORD, server=SERVER, balance=10000, state=path)
    control.set_price("EURUSD", Decimal("1.10000"), Decimal("1.10010"))
    yield path
    control.close()


async def mt5_world(db):
    async with db.session() as s:
        producer = Producer(name="p1", secret_enc="x", token_digest="d" * 64)
        user = User(telegram_id=1000, referral_code="r0", consent_version="2026-11")
        s.add_all([producer, user])
        await s.flush()
        acct = ExecutionAccount(owner_id=user.id, kind="mt5", login=str(LOGIN), server=SERVER)
        s.add(acct)
    return producer.id, user, acct


def mt5_engine(db, **kw):
    async def factory(account):
        return create_mt5_broker(
            "mt5sim",
            int(account.login),
            PASSWORD,
            SERVER,
            backoff_initial=0.01,
            backoff_max=0.05,
            call_timeout=5,
        )

    return build_engine(db, factory=factory, **kw)


def manual_trade(volume=1.0):
    """A trade placed by hand in the terminal: no magic, no client id."""
    terminal = mt5sim.Terminal()
    assert terminal.initialize() and terminal.login(LOGIN, password=PASSWORD, server=SERVER)
    tick = terminal.symbol_info_tick("EURUSD")
    result = terminal.order_send(
        {
            "action": mt5sim.TRADE_ACTION_DEAL,
            "symbol": "EURUSD",
            "volume": volume,
            "type": mt5sim.ORDER_TYPE_BUY,
            "price": tick.ask,
            "deviation": 10,
            "type_filling": mt5sim.ORDER_FILLING_IOC,
            "comment": "by hand",
        }
    )
    terminal.shutdown()
    assert result.retcode == mt5sim.TRADE_RETCODE_DONE, result
    return str(result.order)


async def test_sl_hit_in_the_terminal_and_a_manual_trade(db, sim):
    producer, user, acct = await mt5_world(db)
    engine = mt5_engine(db)
    try:
        order = await engine.execution.execute_decision(await make_approval(db, producer, user, acct))
        assert order.status == OrderStatus.FILLED, (order.reason_code, order.reason)
        manual_trade()
        control.set_price("EURUSD", Decimal("1.09790"), Decimal("1.09800"))  # through the stop
        report = await engine.reconciler.reconcile_account(acct)
        assert report.closed == 1 and report.external == 1
        async with db.session() as s:
            ours = (await s.scalars(select(Position).where(Position.order_id == order.id))).one()
            external = (await s.scalars(select(Position).where(Position.external.is_(True)))).one()
        # The terminal fills the stop at the market (1.09790, 10 points of slippage past 1.09800).
        assert ours.status == "closed" and ours.close_reason == "sl" and ours.close_price == Decimal("1.0979")
        assert ours.profit == -(order.filled_volume * 220)  # 220 points x $1 per point per lot
        assert external.status == "open" and external.volume == Decimal("1")
        [closed] = await events(db, POSITION_CLOSED)
        assert closed.payload["reason"] == "sl"
        assert len(await (await engine.broker(acct.id)).positions()) == 1
    finally:
        await engine.registry.close()


async def test_crash_between_fill_and_record_on_the_terminal(db, sim):
    producer, user, acct = await mt5_world(db)
    engine = mt5_engine(db)
    try:
        order = await engine.execution.order_for_decision(await make_approval(db, producer, user, acct))
        broker = await engine.broker(acct.id)
        await open_at_broker(broker, volume="0.47", sl="1.09800", tp="1.10400", cid=order.client_order_id)
        async with db.session() as s:
            row = await s.get(Order, order.id)
            ORDER.move(row, OrderStatus.SUBMITTING)
            row.submitted_at = utcnow() - timedelta(minutes=5)
        await engine.loop.tick()  # first tick: reconcile every account
        async with db.session() as s:
            row = await s.get(Order, order.id)
            pos = (await s.scalars(select(Position))).one()
        assert row.status == "filled" and pos.order_id == order.id and not pos.external
        assert control.stats(LOGIN)["order_send_calls"] == 1
    finally:
        await engine.registry.close()


async def test_drawdown_closes_everything_on_the_terminal_and_alerts_once(db, sim):
    _, _, acct = await mt5_world(db)
    engine = mt5_engine(db)
    try:
        broker = await engine.broker(acct.id)
        for _ in range(4):
            await open_at_broker(broker, volume="1.25", cid=None)
        await engine.loop.tick()  # reference 10000 - spread, the four trades recorded as external
        control.set_price("EURUSD", Decimal("1.09590"), Decimal("1.09600"))  # -420 points x 5 lots
        for _ in range(3):
            await engine.loop.tick()
        assert await broker.positions() == []
        [alert] = await events(db, DRAWDOWN_TRIGGERED)
        assert alert.payload["closed"] == 4 and Decimal(alert.payload["drawdown_percent"]) > 20
        async with db.session() as s:
            account = await s.get(ExecutionAccount, acct.id)
            assert account.paused and account.drawdown_state == "hard"
            assert {p.status for p in (await s.scalars(select(Position))).all()} == {"closed"}
    finally:
        await engine.registry.close()


async def test_terminal_disconnect_alerts_once_and_reconnect_is_announced(db, sim):
    _, _, acct = await mt5_world(db)
    engine = mt5_engine(db)
    try:
        await engine.loop.tick()
        control.disconnect(login=LOGIN)

        async def alerted():
            await engine.loop.tick()
            return await events(db, BROKER_DISCONNECTED)

        await eventually(alerted, timeout=10, interval=0.05)
        for _ in range(5):  # more ticks while down: still one alert
            await engine.loop.tick()
            await asyncio.sleep(0.06)
        [down] = await events(db, BROKER_DISCONNECTED)
        assert down.payload["account_id"] == acct.id
        control.reconnect(login=LOGIN)

        async def announced():
            await engine.loop.tick()
            return await events(db, BROKER_RECONNECTED)

        await eventually(announced, timeout=10, interval=0.05)
        assert (
            len(await events(db, BROKER_RECONNECTED)) == 1 and len(await events(db, BROKER_DISCONNECTED)) == 1
        )
    finally:
        await engine.registry.close()
