"""The simulated terminal's state outlives processes and is shared safely between them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mt5sim
from mt5sim import control
from tests.support.mt5 import LOGIN, OTHER_LOGIN, OTHER_PASSWORD, PASSWORD, SERVER

BUY = {"action": 1, "symbol": "EURUSD", "volume": 0.1, "type": 0, "type_filling": 1, "magic": 7}


def run_python(code: str, state: Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MT5SIM_STATE": str(state)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=Path.cwd(),
        env=env,
        timeout=60,
        **kw,
    )


@pytest.fixture
def mt5(account: int) -> Iterator[Any]:
    assert mt5sim.initialize(login=account, password=PASSWORD, server=SERVER)
    control.set_price("EURUSD", "1.10000", "1.10008")
    yield mt5sim
    mt5sim.shutdown()


def test_state_is_seen_by_a_fresh_process(mt5: Any, sim_state: Path) -> None:
    sent = mt5.order_send({**BUY, "comment": "tb-persist"})
    code = f"""
        import json, mt5sim
        assert mt5sim.initialize(login={LOGIN}, password={PASSWORD!r}, server={SERVER!r})
        [p] = mt5sim.positions_get()
        print(json.dumps([p.ticket, p.comment, p.price_open, mt5sim.account_info().margin]))
    """
    out = run_python(code, sim_state)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [sent.order, "tb-persist", 1.10008, 110.0]


def test_a_process_killed_right_after_order_send_leaves_the_order_executed(
    account: int, sim_state: Path
) -> None:
    control.set_price("EURUSD", "1.10000", "1.10008")
    code = f"""
        import os, signal, sys, mt5sim
        assert mt5sim.initialize(login={LOGIN}, password={PASSWORD!r}, server={SERVER!r})
        r = mt5sim.order_send({BUY!r} | {{"comment": "tb-crash"}})
        sys.stdout.write(str(r.order)); sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    """
    out = run_python(code, sim_state)
    assert out.returncode == -9
    state = control.dump()
    [pos] = state["positions"]
    assert (pos["ticket"], pos["comment"], pos["login"]) == (int(out.stdout), "tb-crash", LOGIN)


def test_faults_injected_by_another_process_apply_here(mt5: Any, sim_state: Path) -> None:
    out = run_python(f"from mt5sim import control; control.timeout_after_execute(login={LOGIN})", sim_state)
    assert out.returncode == 0, out.stderr
    assert mt5.order_send({**BUY, "comment": "tb-ipc"}) is None
    assert mt5.last_error() == (-10005, "IPC timeout")
    [pos] = mt5.positions_get()
    assert pos.comment == "tb-ipc"  # it executed all the same
    assert mt5.order_send(BUY).retcode == 10009  # the fault was used up

    run_python("from mt5sim import control; control.disconnect()", sim_state)
    assert mt5.positions_get() is None and mt5.last_error() == (-10004, "No IPC connection")
    assert not mt5.initialize(login=LOGIN, password=PASSWORD, server=SERVER)
    run_python("from mt5sim import control; control.reconnect()", sim_state)
    assert mt5.initialize(login=LOGIN, password=PASSWORD, server=SERVER)
    assert len(mt5.positions_get()) == 2


def test_concurrent_order_send_is_detected_and_serialized(account: int) -> None:
    control.set_price("EURUSD", "1.10000", "1.10008")
    control.latency(0.2, func="order_send", login=account)
    results: list[Any] = []

    def trader() -> None:
        assert mt5sim.initialize(login=account, password=PASSWORD, server=SERVER)
        results.append(mt5sim.order_send(BUY))

    threads = [threading.Thread(target=trader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.retcode for r in results] == [10009] * 3
    stats = control.stats(account)
    assert stats["concurrent_sends"] >= 1 and stats["max_inflight_sends"] >= 2


def test_threads_hold_their_own_sessions(account: int) -> None:
    control.create_account(OTHER_LOGIN, OTHER_PASSWORD, server=SERVER, balance=2500)
    seen: dict[int, float] = {}

    def session(login: int, password: str) -> None:
        assert mt5sim.initialize(login=login, password=password, server=SERVER)
        seen[login] = mt5sim.account_info().balance

    threads = [
        threading.Thread(target=session, args=(account, PASSWORD)),
        threading.Thread(target=session, args=(OTHER_LOGIN, OTHER_PASSWORD)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {account: 10000.0, OTHER_LOGIN: 2500.0}
    terminal = mt5sim.Terminal()  # an explicit session object, independent of the thread's
    assert terminal.initialize(login=OTHER_LOGIN, password=OTHER_PASSWORD, server=SERVER)
    info = terminal.account_info()
    assert info is not None and info.login == OTHER_LOGIN


def test_several_processes_write_one_state_file(account: int, sim_state: Path) -> None:
    control.create_account(OTHER_LOGIN, OTHER_PASSWORD, server=SERVER)
    control.set_price("EURUSD", "1.10000", "1.10008")
    code = """
        import sys, mt5sim
        login, password = int(sys.argv[1]), sys.argv[2]
        assert mt5sim.initialize(login=login, password=password, server="MT5Sim-Demo")
        for i in range(15):
            r = mt5sim.order_send({"action": 1, "symbol": "EURUSD", "volume": 0.01, "type": 0,
                                   "type_filling": 1, "comment": f"p{login}-{i}"})
            assert r.retcode == 10009, r
    """
    env = {**os.environ, "MT5SIM_STATE": str(sim_state)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code), str(login), pw], env=env, cwd=Path.cwd()
        )
        for login, pw in ((LOGIN, PASSWORD), (OTHER_LOGIN, OTHER_PASSWORD), (LOGIN, PASSWORD))
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    state = control.dump()
    tickets = [p["ticket"] for p in state["positions"]]
    assert len(tickets) == len(set(tickets)) == 45
    assert sum(1 for p in state["positions"] if p["login"] == LOGIN) == 30
    deal_tickets = [d["ticket"] for d in state["deals"]]
    assert len(deal_tickets) == len(set(deal_tickets)) == 45 + 2  # plus the two initial deposits
