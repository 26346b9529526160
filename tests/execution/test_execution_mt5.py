"""Execution through the real MT5 broker code against the simulated terminal (only MT5_MODULE differs).

Every scenario runs twice: straight on ``mt5sim``, and through the MT5 gateway (``mt5_module``)."""

import asyncio
from decimal import Decimal

import pytest
from sqlalchemy import select

from engine.brokers.registry import BrokerRegistry
from engine.execution.orders import OrderRules
from engine.execution.service import ExecutionConfig, ExecutionService
from engine.risk.market_hours import AlwaysOpen, MarketHours
from engine.states import OrderStatus
from engine.store.events import EventRelay
from engine.store.models import ExecutionAccount, Position
from mt5sim import control
from tests.support.execution import FAST
from tests.support.factories import make_approval, paper_subscribers

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
    producer, [(user, acct)] = await paper_subscribers(db)
    async with db.session() as s:
        row = await s.get(ExecutionAccount, acct.id)
        row.kind, row.login, row.server = "mt5", str(LOGIN), SERVER
    return producer, user, acct


def mt5_service(db, module, config=FAST):
    from engine.brokers.mt5 import create_mt5_broker

    async def factory(account):
        return create_mt5_broker(
            module, int(account.login), PASSWORD, account.server, backoff_initial=0.01, backoff_max=0.05
        )

    registry = BrokerRegistry(factory)
    rules = lambda account: OrderRules(market_hours=MarketHours(default=AlwaysOpen()))  # noqa: E731
    return ExecutionService(db, registry, rules, EventRelay(db), config), registry


async def _positions(db):
    async with db.session() as s:
        return (await s.scalars(select(Position))).all()


async def test_fill_is_recorded_exactly(db, sim, mt5_module):
    producer, user, acct = await mt5_world(db)
    svc, registry = mt5_service(db, mt5_module)
    try:
        order = await svc.execute_decision(await make_approval(db, producer, user, acct))
    finally:
        await registry.close()
    assert order.status == OrderStatus.FILLED
    assert order.fill_price == Decimal("1.10010") and order.volume == Decimal("0.47")
    [pos] = await _positions(db)
    assert pos.ticket == order.position_ticket and pos.volume == Decimal("0.47")
    assert pos.open_price == Decimal("1.10010") and pos.sl == Decimal("1.09800")


async def test_timeout_after_execute_gives_exactly_one_position(db, sim, mt5_module):
    producer, user, acct = await mt5_world(db)
    svc, registry = mt5_service(db, mt5_module)
    control.timeout_after_execute(1, state=sim)
    try:
        order = await svc.execute_decision(await make_approval(db, producer, user, acct))
        broker = registry.cached()[acct.id]
        at_broker = await broker.positions()
    finally:
        await registry.close()
    assert order.status == OrderStatus.FILLED
    assert len(at_broker) == 1 and at_broker[0].client_order_id == order.client_order_id
    assert [p.ticket for p in await _positions(db)] == [at_broker[0].ticket]
    assert control.stats(LOGIN, state=sim)["order_send_calls"] == 1


async def test_requote_then_fill_and_refusals_from_the_terminal(db, sim, mt5_module):
    producer, user, acct = await mt5_world(db)
    svc, registry = mt5_service(db, mt5_module)
    try:
        control.requote(1, state=sim)
        ok = await svc.execute_decision(await make_approval(db, producer, user, acct, key="rq"))
        control.force_retcode(10019, 1, state=sim)  # NO_MONEY
        refused = await svc.execute_decision(await make_approval(db, producer, user, acct, key="nm"))
    finally:
        await registry.close()
    assert ok.status == OrderStatus.FILLED and ok.attempts == 2
    assert refused.status == OrderStatus.REFUSED and refused.reason_code == "broker"
    assert control.stats(LOGIN, state=sim)["order_send_calls"] == 3


async def test_disconnected_terminal_then_reconnect(db, sim, mt5_module):
    producer, user, acct = await mt5_world(db)
    svc, registry = mt5_service(
        db, mt5_module, ExecutionConfig(max_attempts=8, retry_initial_seconds=0.2, retry_max_seconds=0.4)
    )
    decision = await make_approval(db, producer, user, acct)
    try:
        control.disconnect(state=sim)
        task = asyncio.create_task(svc.execute_decision(decision))
        await asyncio.sleep(0.5)
        assert not task.done()  # waiting between attempts, nothing sent
        assert control.stats(LOGIN, state=sim).get("order_send_calls", 0) == 0
        control.reconnect(state=sim)
        final = await task
    finally:
        await registry.close()
    # sent once, after the reconnect (how many attempts the wait took depends on the machine's speed:
    # the link's own reconnect may succeed inside the first attempt)
    assert final.status == OrderStatus.FILLED and final.attempts >= 1
    assert control.stats(LOGIN, state=sim)["order_send_calls"] == 1
    assert len(await _positions(db)) == 1


async def test_terminal_down_for_good_fails_the_order_without_sending(db, sim, mt5_module):
    producer, user, acct = await mt5_world(db)
    svc, registry = mt5_service(db, mt5_module)
    try:
        control.disconnect(state=sim)
        order = await svc.execute_decision(await make_approval(db, producer, user, acct))
    finally:
        await registry.close()
    assert order.status == OrderStatus.FAILED and order.reason_code == "retries_exhausted"
    assert control.stats(LOGIN, state=sim).get("order_send_calls", 0) == 0
    assert await _positions(db) == []


async def test_ten_concurrent_executions_one_terminal_order(db, sim, mt5_module):
    producer, user, acct = await mt5_world(db)
    svc, registry = mt5_service(db, mt5_module)
    decision = await make_approval(db, producer, user, acct)
    try:
        results = await asyncio.gather(*(svc.execute_decision(decision) for _ in range(10)))
    finally:
        await registry.close()
    assert {r.id for r in results} == {results[0].id}
    stats = control.stats(LOGIN, state=sim)
    assert stats["order_send_calls"] == 1 and stats.get("concurrent_sends", 0) == 0
    assert len(await _positions(db)) == 1
