"""The gateway or the network dies: nothing is lost, nothing is done twice, the broker reconnects."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.brokers import remote
from engine.brokers.base import SubmitStatus
from engine.brokers.mt5 import create_mt5_broker
from engine.brokers.registry import BrokerRegistry
from engine.execution.orders import OrderRules
from engine.execution.service import ExecutionConfig, ExecutionService
from engine.gateway.probe import gateway_probe
from engine.gateway.server import STATE_KEY
from engine.risk.market_hours import AlwaysOpen, MarketHours
from engine.states import OrderStatus
from engine.store.events import EventRelay
from engine.store.models import ExecutionAccount, Position
from mt5sim import control
from tests.support.factories import make_approval, paper_subscribers
from tests.support.gateway import LOGIN, PASSWORD, SERVER, TOKEN, GatewayProcess, GatewayThread, Proxy, Tls
from tests.support.mt5 import order

FAST = {"backoff_initial": 0.01, "backoff_max": 0.05}


def _ours(sim: Path, cid: str) -> list[dict[str, object]]:
    return [p for p in control.dump(state=sim)["positions"] if p["comment"] == cid]


async def _until(check, seconds: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.fixture
def gateway_process(sim: Path, gateway_tls: Tls, tmp_path: Path) -> Iterator[GatewayProcess]:
    """``tradebot gateway serve --isolation process`` as a real child process (one per account)."""
    gw = GatewayProcess(gateway_tls, {"MT5SIM_STATE": str(sim)}, isolation="process", log=tmp_path / "gw.log")
    gw.start()
    remote.configure({"default": remote.Endpoint("default", gw.url, TOKEN, str(gateway_tls.cert))})
    yield gw
    remote.configure({})
    gw.stop()


async def test_gateway_killed_during_order_send_after_the_fill_gives_one_position(
    sqlite_db, sim: Path, gateway_process: GatewayProcess
) -> None:
    db = sqlite_db
    producer, [(user, acct)] = await paper_subscribers(db)
    async with db.session() as s:
        row = await s.get(ExecutionAccount, acct.id)
        assert row is not None
        row.kind, row.login, row.server = "mt5", str(LOGIN), SERVER

    async def factory(account: ExecutionAccount):  # type: ignore[no-untyped-def]
        return create_mt5_broker("engine.brokers.remote", int(account.login or 0), PASSWORD, SERVER, **FAST)

    registry = BrokerRegistry(factory)
    rules = lambda account: OrderRules(market_hours=MarketHours(default=AlwaysOpen()))  # noqa: E731
    config = ExecutionConfig(max_attempts=30, retry_initial_seconds=0.2, retry_max_seconds=0.5)
    service = ExecutionService(db, registry, rules, EventRelay(db), config)
    decision = await make_approval(db, producer, user, acct)
    control.stall_after_execute(30, state=sim)  # the terminal fills, then the answer hangs
    try:
        task = asyncio.create_task(service.execute_decision(decision))
        await _until(lambda: bool(control.dump(state=sim)["positions"]))  # the fill is committed
        gateway_process.kill()  # SIGKILL: the gateway and its terminal worker, mid order_send
        await asyncio.sleep(0.3)  # the broker now sees the gateway gone
        assert not task.done()
        gateway_process.start()  # back on the same port: the broker logs in again and looks the id up
        final = await asyncio.wait_for(task, 60)
    finally:
        await registry.close()
    assert final.status == OrderStatus.FILLED
    assert control.stats(LOGIN, state=sim)["order_send_calls"] == 1
    [at_terminal] = control.dump(state=sim)["positions"]
    async with db.session() as s:
        [position] = (await s.scalars(select(Position))).all()
    assert position.ticket == str(at_terminal["ticket"]) and position.volume == Decimal(at_terminal["volume"])


async def test_network_cut_then_restored_reconnects(sim: Path, gateway: GatewayThread) -> None:
    proxy = Proxy(gateway.port).start()
    remote.configure({"default": gateway.endpoint(url=f"https://{proxy.url_host}")})
    broker = create_mt5_broker("engine.brokers.remote", LOGIN, PASSWORD, SERVER, **FAST)
    await broker.connect()
    try:
        assert (await broker.submit(order("tb-net-1"))).status is SubmitStatus.ACCEPTED
        proxy.cut()
        cut = await broker.submit(order("tb-net-2"))
        assert cut.status is SubmitStatus.UNKNOWN and "-1000" in cut.reason
        assert not (await broker.health()).connected
        proxy.restore()
        for _ in range(200):  # the client retries after its backoff: a new connection, a new session
            if (await broker.health()).connected:
                break
            await asyncio.sleep(0.05)
        assert (await broker.health()).connected
        assert await broker.find_by_client_id("tb-net-2") is None  # the cut send never arrived
        assert (await broker.submit(order("tb-net-3"))).status is SubmitStatus.ACCEPTED
    finally:
        await broker.close()
        proxy.cut()
    assert sorted(str(p["comment"]) for p in control.dump(state=sim)["positions"]) == ["tb-net-1", "tb-net-3"]


async def test_health_probe_reports_terminals_and_feeds_readiness(sim: Path, gateway: GatewayThread) -> None:
    probe = gateway_probe(gateway.endpoint())
    assert await probe() is True  # no terminal held yet
    broker = create_mt5_broker("engine.brokers.remote", LOGIN, PASSWORD, SERVER, **FAST)
    await broker.connect()
    try:
        assert await probe() is True
        control.set_terminal_trade_allowed(False, state=sim)
        from engine.gateway.probe import fetch_health

        doc = await fetch_health(gateway.endpoint())
        [terminal] = doc["terminals"]
        assert terminal["login"] == LOGIN and terminal["connected"] and not terminal["trade_allowed"]
        assert terminal["detail"] == "connected, but trading is disabled" and terminal["ping_ms"] is not None
        control.disconnect(state=sim)
        assert "login 6101" in str(await probe())
        control.reconnect(state=sim)
    finally:
        await broker.close()
    wrong = gateway_probe(remote.Endpoint("default", gateway.url, "q" * 40, gateway.endpoint().ca))
    assert "refused the probe (401)" in str(await wrong())
    gone = gateway_probe(remote.Endpoint("default", "https://127.0.0.1:9", TOKEN, gateway.endpoint().ca))
    assert "unreachable" in str(await gone())


async def test_accounts_on_two_gateways(sim: Path, gateway: GatewayThread, gateway_tls: Tls) -> None:
    control.create_account(6102, "pw-6102", server=SERVER, balance=5000, state=sim)
    second = GatewayThread(gateway_tls, isolation="process").start()
    remote.configure({"default": gateway.endpoint(), "win2": second.endpoint("win2")})
    a = create_mt5_broker(remote.module_for("engine.brokers.remote", None), LOGIN, PASSWORD, SERVER, **FAST)
    b = create_mt5_broker(remote.module_for("mt5sim", "win2"), 6102, "pw-6102", SERVER, **FAST)
    try:
        await a.connect()
        await b.connect()
        assert ((await a.account()).login, (await b.account()).login) == (str(LOGIN), "6102")
        assert (await b.submit(order("tb-win2-1"))).status is SubmitStatus.ACCEPTED
        pools = [gw.app[STATE_KEY].pool for gw in (gateway, second) if gw.app is not None]
        assert (pools[0].logins, pools[1].logins) == ([LOGIN], [6102])
        assert pools[1].isolation == "process"
    finally:
        await a.close()
        await b.close()
        second.stop()
    assert [p["comment"] for p in control.dump(state=sim)["positions"]] == ["tb-win2-1"]
