"""Sessions, threads and processes: one worker per account, never two order_sends at once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from engine.brokers.base import BrokerError, SubmitStatus
from engine.brokers.mt5 import MT5Broker, create_mt5_broker, load_module
from engine.brokers.mt5_process import ProcessRunner
from mt5sim import control
from tests.support.mt5 import LOGIN, OTHER_LOGIN, OTHER_PASSWORD, PASSWORD, SERVER, order, pin
from tests.support.waiting import until

FAST: dict[str, Any] = {"backoff_initial": 0.01, "backoff_max": 0.05}


@pytest.fixture
def other_account(sim_state: Path) -> int:
    control.create_account(OTHER_LOGIN, OTHER_PASSWORD, server=SERVER, balance=5000)
    return OTHER_LOGIN


async def test_twenty_simultaneous_submits_never_enter_order_send_concurrently(broker: MT5Broker) -> None:
    pin("EURUSD", "1.10000", "1.10008")
    control.latency(0.005, func="order_send", login=LOGIN)  # widen the window a race would need
    results = await asyncio.gather(*(broker.submit(order(f"tb-burst-{i:02d}")) for i in range(20)))
    assert [r.status for r in results] == [SubmitStatus.ACCEPTED] * 20
    stats = control.stats(LOGIN)
    assert stats["order_send_calls"] == 20
    assert stats.get("concurrent_sends", 0) == 0 and stats["max_inflight_sends"] == 1
    assert len({p.client_order_id for p in await broker.positions()}) == 20


async def test_accounts_are_isolated(broker: MT5Broker, other_account: int, mt5_module: str) -> None:
    pin("EURUSD", "1.10000", "1.10008")
    other = create_mt5_broker(mt5_module, other_account, OTHER_PASSWORD, SERVER, **FAST)
    await other.connect()
    try:
        a, b = await asyncio.gather(
            broker.submit(order("tb-same-id")), other.submit(order("tb-same-id", volume="0.20"))
        )
        assert a.status is b.status is SubmitStatus.ACCEPTED
        [pa], [pb] = await broker.positions(), await other.positions()
        assert (pa.volume, pb.volume) == (a.filled_volume, b.filled_volume) and pa.ticket != pb.ticket
        found_a, found_b = (
            await broker.find_by_client_id("tb-same-id"),
            await other.find_by_client_id("tb-same-id"),
        )
        assert found_a is not None and found_b is not None
        assert (found_a.ticket, found_b.ticket) == (a.ticket, b.ticket)
        acct_a, acct_b = await broker.account(), await other.account()
        assert (acct_a.login, acct_b.login) == (str(LOGIN), str(OTHER_LOGIN))
        assert acct_b.balance == 5000 and acct_a.balance == 10000
    finally:
        await other.close()


async def test_a_slow_terminal_does_not_block_another_account(
    broker: MT5Broker, other_account: int, mt5_module: str
) -> None:
    pin("EURUSD", "1.10000", "1.10008")
    other = create_mt5_broker(mt5_module, other_account, OTHER_PASSWORD, SERVER, **FAST)
    await other.connect()
    control.latency(2.0, func="order_send", login=LOGIN)
    try:
        started = time.monotonic()
        slow = asyncio.create_task(broker.submit(order("tb-slow-1")))
        await until(lambda: control.stats(LOGIN).get("order_send_calls", 0) >= 1)  # A is in its 2 s send
        fast = await other.submit(order("tb-fast-1"))
        # B's order went through while A's was still held: B did not queue behind A
        assert fast.status is SubmitStatus.ACCEPTED
        assert not slow.done()
        assert (await slow).status is SubmitStatus.ACCEPTED
        assert time.monotonic() - started >= 2.0
    finally:
        await other.close()


async def test_connect_retries_transient_failures_but_not_bad_credentials(
    account: int, mt5_module: str
) -> None:
    control.fail_initialize(2, login=account)
    b = create_mt5_broker(mt5_module, account, PASSWORD, SERVER, **FAST)
    await b.connect()
    assert (await b.health()).connected
    assert control.stats(account)["initialize_calls"] == 3
    await b.close()

    wrong = create_mt5_broker(mt5_module, account, "wrong", SERVER, **FAST)
    with pytest.raises(BrokerError, match="authorization failed"):
        await wrong.connect()
    assert control.stats(account)["initialize_calls"] == 4  # no retries on an auth failure
    await wrong.close()

    control.fail_initialize(None, login=account)
    down = create_mt5_broker(mt5_module, account, PASSWORD, SERVER, connect_attempts=3, **FAST)
    with pytest.raises(BrokerError, match="unreachable"):
        await down.connect()
    assert control.stats(account)["initialize_calls"] == 7
    await down.close()


async def test_process_mode_runs_the_session_in_a_child_process(account: int) -> None:
    pin("EURUSD", "1.10000", "1.10008")
    b = create_mt5_broker("mt5sim", account, PASSWORD, SERVER, isolation="process", **FAST)
    assert b.isolation == "process"
    await b.connect()
    try:
        runner = b.runner
        assert isinstance(runner, ProcessRunner)
        pid = runner.pid
        assert pid is not None and pid != os.getpid()
        health = await b.health()
        assert health.connected and health.extra["login"] == str(account)
        results = await asyncio.gather(*(b.submit(order(f"tb-proc-{i}")) for i in range(5)))
        assert [r.status for r in results] == [SubmitStatus.ACCEPTED] * 5
        assert control.stats(account).get("concurrent_sends", 0) == 0
        found = await b.find_by_client_id("tb-proc-3")
        assert found is not None and found.ticket == results[3].ticket

        os.kill(pid, signal.SIGKILL)  # the terminal's process dies; the next call starts a new one
        await asyncio.sleep(0.1)
        assert len(await b.positions()) == 5
        assert runner.pid not in (None, pid)
    finally:
        await b.close()


async def test_process_mode_timeout_is_unknown_and_the_lookup_queues_behind_it(account: int) -> None:
    pin("EURUSD", "1.10000", "1.10008")
    b = create_mt5_broker("mt5sim", account, PASSWORD, SERVER, isolation="process", send_timeout=0.3, **FAST)
    await b.connect()
    try:
        control.latency(1.0, func="order_send", login=account, count=1)
        result = await b.submit(order("tb-late-1"))
        assert result.status is SubmitStatus.UNKNOWN and "no answer" in result.reason
        found = await b.find_by_client_id("tb-late-1")  # runs after the slow send completed
        assert found is not None and found.state == "filled"
    finally:
        await b.close()


async def test_thread_mode_timeout_is_unknown(broker: MT5Broker, mt5_module: str) -> None:
    pin("EURUSD", "1.10000", "1.10008")
    quick = create_mt5_broker(mt5_module, LOGIN, PASSWORD, SERVER, send_timeout=0.2, **FAST)
    await quick.connect()
    try:
        control.latency(0.6, func="order_send", login=LOGIN, count=1)
        result = await quick.submit(order("tb-late-2"))
        assert result.status is SubmitStatus.UNKNOWN
        found = await quick.find_by_client_id("tb-late-2")
        assert found is not None and found.state == "filled"
    finally:
        await quick.close()


def test_module_names_and_lazy_import() -> None:
    import mt5sim
    import mt5sim.control

    assert load_module("mt5sim") is mt5sim
    assert load_module("mt5sim:control") is mt5sim.control
    assert load_module("mt5sim.control:set_price") is mt5sim.control.set_price
    with pytest.raises(BrokerError, match="cannot load"):
        create_mt5_broker("no_such_mt5_module", 1, "", "")
    code = "import sys, engine.brokers.mt5; print(sorted(m for m in ('mt5sim', 'MetaTrader5') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd()
    )
    assert out.stdout.strip() == "[]"


def test_auto_isolation_follows_the_module(account: int) -> None:
    assert create_mt5_broker("mt5sim", account, PASSWORD, SERVER).isolation == "thread"
    # a module without MULTI_ACCOUNT (like the real MetaTrader5) gets a child process per account
    assert create_mt5_broker("mt5sim.terminal", account, PASSWORD, SERVER).isolation == "process"


async def test_terminal_path_selects_the_state_file_even_in_a_child_process(sim_state: Path) -> None:
    elsewhere = sim_state.with_name("other-terminal.sqlite3")
    control.create_account(7001, "pw-7001", server=SERVER, state=elsewhere)  # unknown in MT5SIM_STATE's file
    control.ignore_market_hours(state=elsewhere)
    control.set_price("EURUSD", "1.10000", "1.10008", state=elsewhere)
    for isolation in ("thread", "process"):
        b = create_mt5_broker(
            "mt5sim", 7001, "pw-7001", SERVER, path=str(elsewhere), isolation=isolation, **FAST
        )  # type: ignore[arg-type]
        await b.connect()
        try:
            assert (await b.account()).login == "7001"
            assert (await b.submit(order(f"tb-path-{isolation}"))).status is SubmitStatus.ACCEPTED
        finally:
            await b.close()
    assert len(control.dump(state=elsewhere)["positions"]) == 2
    assert control.dump()["positions"] == []
