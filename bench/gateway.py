"""Latency the MT5 gateway adds per call over loopback, and calls per second through it.

Starts ``tradebot gateway serve`` (TLS, a self-signed certificate pinned by the client) as a
child process serving the simulated terminal, once per isolation (a worker thread per account,
and a child process per account as with the real ``MetaTrader5`` package). For
``terminal_info`` and ``symbol_info_tick`` it times N calls made straight on ``mt5sim`` in
this process and N calls through ``engine.brokers.remote``; ``added_ms`` is the difference of
the quantiles (target p99 < 2 ms). ``calls_per_second`` is sequential calls from one account's
thread, and from 4 accounts' threads at once.

    python bench/gateway.py [--n 2000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.brokers import remote
from mt5sim import control
from tests.support.gateway import TOKEN, GatewayProcess, Tls

LOGINS = (9101, 9102, 9103, 9104)


def _quantiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=100)
    return {
        "p50": round(q[49], 3),
        "p90": round(q[89], 3),
        "p99": round(q[98], 3),
        "max": round(ordered[-1], 3),
    }


def _timed(call: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        if call() is None:
            raise RuntimeError("a call failed during the benchmark")
        out.append((time.perf_counter() - started) * 1000)
    return out


def _direct(n: int) -> dict[str, list[float]]:
    import mt5sim

    assert mt5sim.initialize(login=LOGINS[0], password="pw", server="MT5Sim-Demo")
    mt5sim.symbol_select("EURUSD", True)
    result = {
        "terminal_info": _timed(mt5sim.terminal_info, n),
        "symbol_info_tick": _timed(lambda: mt5sim.symbol_info_tick("EURUSD"), n),
    }
    mt5sim.shutdown()
    return result


def _baseline(gw: GatewayProcess, tls: Tls, n: int) -> list[float]:
    """The bare HTTPS round trip to the same server (``/livez``): this machine's transport floor."""
    conn = http.client.HTTPSConnection(
        "127.0.0.1", gw.port, context=ssl.create_default_context(cafile=str(tls.cert))
    )
    conn.connect()

    def once() -> bytes:
        conn.request("GET", "/livez")
        return conn.getresponse().read()

    samples = _timed(once, n)
    conn.close()
    return samples


def _through(gw: GatewayProcess, tls: Tls, n: int) -> dict[str, Any]:
    remote.configure({"default": remote.Endpoint("default", gw.url, TOKEN, str(tls.cert))})
    client = remote.client("default")
    assert client.initialize(login=LOGINS[0], password="pw", server="MT5Sim-Demo"), client.last_error()
    client.symbol_select("EURUSD", True)
    _timed(client.terminal_info, 200)  # warm the connection and the worker
    samples = {
        "terminal_info": _timed(client.terminal_info, n),
        "symbol_info_tick": _timed(lambda: client.symbol_info_tick("EURUSD"), n),
    }
    started = time.perf_counter()
    _timed(client.terminal_info, n)
    one = n / (time.perf_counter() - started)
    client.shutdown()

    def account(login: int, count: int) -> None:
        c = remote.client("default")  # per thread: its own connection and session
        assert c.initialize(login=login, password="pw", server="MT5Sim-Demo"), c.last_error()
        _timed(c.terminal_info, count)
        c.shutdown()

    threads = [threading.Thread(target=account, args=(login, n)) for login in LOGINS]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    four = len(LOGINS) * n / (time.perf_counter() - started)
    return {"samples": samples, "calls_per_second": {"one_account": round(one), "four_accounts": round(four)}}


def run(n: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    state = work / "mt5sim.sqlite3"
    os.environ["MT5SIM_STATE"] = str(state)
    control.ignore_market_hours(state=state)
    for login in LOGINS:
        control.create_account(login, "pw", state=state)
    tls = Tls.make(work)
    direct = _direct(n)
    out: dict[str, Any] = {
        "n": n, "transport": "HTTPS keep-alive, HMAC-signed, loopback", "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2), "direct_ms": {},
    }  # fmt: skip
    for name, samples in direct.items():
        out["direct_ms"][name] = _quantiles(samples)
    for isolation in ("thread", "process"):
        env = {"MT5SIM_STATE": str(state), "GATEWAY_RATE_PER_SECOND": "1000000", "GATEWAY_BURST": "1000000"}
        gw = GatewayProcess(tls, env, isolation=isolation).start()
        try:
            floor = _quantiles(_baseline(gw, tls, n))
            result = _through(gw, tls, n)
        finally:
            gw.stop()
        section: dict[str, Any] = {
            "calls_per_second": result["calls_per_second"],
            "bare_https_livez_ms": floor,
        }
        for name, samples in result["samples"].items():
            via = _quantiles(samples)
            section[name] = {
                "gateway_ms": via,
                "added_ms": {k: round(via[k] - out["direct_ms"][name][k], 3) for k in ("p50", "p90", "p99")},
            }
        out[f"isolation_{isolation}"] = section
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    print(json.dumps(run(args.n), indent=2))
