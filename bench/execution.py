"""Approval -> order_send -> recorded fill: engine latency against the simulated terminal.

Runs N approvals one after another (each a fresh signal and decision) through the real
ExecutionService and MT5 broker code, on SQLite, with the simulated terminal at zero latency.
Prints JSON: p50/p90/p99/max of the whole path (order row written and claimed, symbol spec,
tick, account, order built, order_send, fill and position recorded), of the terminal's own calls
(the simulated terminal keeps its state in SQLite and re-evaluates every open position on each
call, so its cost grows with the positions the run opens), and of the engine's overhead: the whole
path minus the time spent inside terminal calls.

    python bench/execution.py [--n 1000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 3)


async def run(n: int, database_url: str | None) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-exec-"))
    os.environ["MT5SIM_STATE"] = str(tmp / "mt5sim.sqlite3")
    from engine.brokers.mt5 import create_mt5_broker
    from engine.brokers.registry import BrokerRegistry
    from engine.execution.orders import OrderRules
    from engine.execution.service import ExecutionService
    from engine.observability.logs import setup_logging
    from engine.risk.market_hours import AlwaysOpen, MarketHours
    from engine.store.db import Database
    from engine.store.events import EventRelay
    from engine.store.migrate import upgrade
    from engine.store.models import Decision, ExecutionAccount, Producer, Signal, User
    from mt5sim import control

    setup_logging("WARNING")
    url = database_url or f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    await asyncio.to_thread(upgrade, url)
    control.ignore_market_hours()
    control.create_account(9001, "pw", server="Bench", balance=10_000_000)
    control.set_price("EURUSD", Decimal("1.10000"), Decimal("1.10010"))
    db = Database(url)

    send_times: list[float] = []
    broker_times: list[float] = []  # every terminal call of one approval, order_send included

    async def factory(account: ExecutionAccount):  # type: ignore[no-untyped-def]
        broker = create_mt5_broker("mt5sim", 9001, "pw", "Bench")
        for name in ("symbol_spec", "tick", "account", "submit"):
            original = getattr(broker, name)

            def timed(original=original, name=name):  # type: ignore[no-untyped-def]
                async def call(*args, **kwargs):  # type: ignore[no-untyped-def]
                    start = time.perf_counter()
                    try:
                        return await original(*args, **kwargs)
                    finally:
                        elapsed = (time.perf_counter() - start) * 1000
                        broker_times[-1] += elapsed
                        if name == "submit":
                            send_times.append(elapsed)

                return call

            setattr(broker, name, timed())
        return broker

    registry = BrokerRegistry(factory)
    rules = lambda _a: OrderRules(market_hours=MarketHours(default=AlwaysOpen()))  # noqa: E731
    service = ExecutionService(db, registry, rules, EventRelay(db))
    async with db.session() as s:
        producer = Producer(name="bench", secret_enc="x", token_digest="b" * 64)
        user = User(telegram_id=1, referral_code="bench")
        s.add_all([producer, user])
        await s.flush()
        account = ExecutionAccount(owner_id=user.id, kind="mt5", login="9001", server="Bench")
        s.add(account)
        await s.flush()
    decision_ids = []
    async with db.session() as s:
        now = datetime.now(UTC)
        for i in range(n):
            sig = Signal(
                producer_id=producer.id,
                idempotency_key=f"k{i}",
                body_hash="h",
                instrument="EURUSD",
                side="buy",
                order_type="market",
                sl=Decimal("1.09800"),
                tp=Decimal("1.10400"),
                risk_percent=Decimal("0.01"),
                ttl_seconds=3600,
                received_at=now,
                expires_at=now + timedelta(hours=1),
            )
            s.add(sig)
            await s.flush()
            dec = Decision(signal_id=sig.id, user_id=user.id, account_id=account.id, status="approved")
            s.add(dec)
            await s.flush()
            decision_ids.append(dec.id)
    broker_times.append(0.0)
    await service.execute_decision(decision_ids[0])  # warm-up: connect, spec cache
    send_times.clear()
    broker_times.clear()
    totals: list[float] = []
    statuses: dict[str, int] = {}
    for decision_id in decision_ids[1:]:
        broker_times.append(0.0)
        start = time.perf_counter()
        order = await service.execute_decision(decision_id)
        totals.append((time.perf_counter() - start) * 1000)
        assert order is not None
        statuses[order.status] = statuses.get(order.status, 0) + 1
    await registry.close()
    await db.dispose()
    overhead = [t - b for t, b in zip(totals, broker_times, strict=True)]
    return {
        "benchmark": "execution",
        "database": db.dialect,
        "approvals": len(totals),
        "statuses": statuses,
        "approval_to_fill_ms": {
            "p50": _pct(totals, 50),
            "p90": _pct(totals, 90),
            "p99": _pct(totals, 99),
            "max": round(max(totals), 3),
            "mean": round(statistics.fmean(totals), 3),
        },
        "order_send_ms": {"p50": _pct(send_times, 50), "p99": _pct(send_times, 99)},
        "all_terminal_calls_ms": {"p50": _pct(broker_times, 50), "p99": _pct(broker_times, 99)},
        "engine_overhead_ms": {
            "p50": _pct(overhead, 50),
            "p90": _pct(overhead, 90),
            "p99": _pct(overhead, 99),
        },
        "target": "engine overhead p99 < 10 ms",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.n + 1, args.database_url)), indent=2))


if __name__ == "__main__":
    main()
