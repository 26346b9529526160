"""Producer updates fanned out: one ``move_sl`` and one ``close 50 %`` to N subscribers' positions.

N subscribers (default 1,000), each with their own account on the simulated terminal (``mt5sim``
behind the real MT5 broker code, one worker thread per account as in production), each holding
one position from the same signal (setup, not timed: each position is opened at the terminal
through the broker code and recorded as the execution service records a fill). Then, through the
real UpdateService and ChangeService, as the event relay would drive them:

1. ``{"action": "move_sl", "sl": "entry"}`` (the price first moved into profit, so every stop is
   valid): stored, planned (one claim row per position) and applied;
2. ``{"action": "close", "percent": 50}``: the same.

Per position (one claim row): the wall time of ``ChangeService.apply`` (row loaded, claim
committed, broker call, outcome and events recorded), the time spent inside terminal calls for
that account, and the time the row waited for its turn at the service's SQLite write gate (a
queue: it shows in the total, not as a position's own cost). Engine overhead per position = wall
- terminal - queued. Rows run ``concurrency`` at a time (the service's default, 32), so a row's
overhead still includes waiting for the event loop and the GIL while other rows, and the
simulated terminals (which run in this process, unlike real terminals whose calls wait in C with
the GIL released), do their work; ``--concurrency 1`` measures one position at a time.

The total is compared with the terminal-bound ideal: the summed terminal time spread over
``concurrency`` (what the fan-out would take if the engine added nothing). Target: engine
overhead per position p99 < 20 ms. SQLite by default; the machine's load is in the output.
Prints JSON.

    python bench/updates.py [--n 1000] [--concurrency 32] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PASSWORD, SERVER = "bench-pw", "Bench-Demo"
FIRST_LOGIN = 30_000
TARGET_P99_MS = 20.0
VOLUME, SL, TP = Decimal("0.50"), Decimal("1.09800"), Decimal("1.10400")
TIMED = (
    "modify_position",
    "close_partial",
    "close_position",
    "position_deals",
    "positions",
    "pending_orders",
    "symbol_spec",
    "find_by_client_id",
)


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 3)


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": _pct(values, 50),
        "p90": _pct(values, 90),
        "p99": _pct(values, 99),
        "max": round(max(values), 3),
        "mean": round(statistics.fmean(values), 3),
    }


async def run(n: int, database_url: str | None, concurrency: int | None = None) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-updates-"))
    os.environ["MT5SIM_STATE"] = str(tmp / "mt5sim.sqlite3")
    from sqlalchemy import func, select

    from engine.brokers.base import Broker, FillingMode, OrderRequest, OrderType, Side, SubmitStatus
    from engine.brokers.mt5 import create_mt5_broker
    from engine.brokers.registry import BrokerRegistry
    from engine.execution.orders import choose_filling
    from engine.execution.service import client_order_id_for
    from engine.management.changes import ChangeConfig, ChangeService
    from engine.management.updates import UpdateService
    from engine.observability.logs import setup_logging
    from engine.states import DecisionStatus, OrderStatus
    from engine.store.db import Database
    from engine.store.events import EventRelay
    from engine.store.migrate import upgrade
    from engine.store.models import (
        Decision,
        ExecutionAccount,
        Order,
        Position,
        PositionChange,
        Producer,
        Signal,
        User,
    )
    from mt5sim import control

    setup_logging("WARNING")
    url = database_url or f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    await asyncio.to_thread(upgrade, url)
    control.ignore_market_hours()
    for i in range(n):
        control.create_account(FIRST_LOGIN + i, PASSWORD, server=SERVER, balance=10_000)
    control.set_price("EURUSD", Decimal("1.10000"), Decimal("1.10010"))
    db = Database(url)

    terminal_ms: dict[int, float] = defaultdict(float)  # account id -> time inside terminal calls

    async def factory(account: ExecutionAccount) -> Broker:
        broker = create_mt5_broker(
            "mt5sim", int(account.login or 0), PASSWORD, SERVER, backoff_initial=0.01, backoff_max=0.05
        )
        for name in TIMED:
            original = getattr(broker, name)

            def timed(original: Any = original) -> Any:
                async def call(*args: Any, **kwargs: Any) -> Any:
                    start = time.perf_counter()
                    try:
                        return await original(*args, **kwargs)
                    finally:
                        terminal_ms[account.id] += (time.perf_counter() - start) * 1000

                return call

            setattr(broker, name, timed())
        return broker

    registry = BrokerRegistry(factory)
    relay = EventRelay(db)  # not started: the benchmark drives the services itself
    updates = UpdateService(db, relay)
    changes = ChangeService(
        db, registry, relay, ChangeConfig(concurrency=concurrency or ChangeConfig.concurrency)
    )

    # ---- setup: N subscribers, one account each, one approved decision each, orders filled
    setup_start = time.perf_counter()
    now = datetime.now(UTC)
    async with db.session() as s:
        producer = Producer(name="bench-updates", secret_enc="x", token_digest="u" * 64)
        s.add(producer)
        await s.flush()
        signal = Signal(
            producer_id=producer.id,
            external_id="bench-1",
            idempotency_key="bench-1",
            body_hash="h",
            instrument="EURUSD",
            side="buy",
            order_type="market",
            sl=SL,
            tp=TP,
            risk_percent=Decimal("1"),
            ttl_seconds=3600,
            status="dispatched",
            received_at=now,
            expires_at=now + timedelta(hours=1),
        )
        s.add(signal)
        users = [User(telegram_id=8_000_000 + i, referral_code=f"b{i}") for i in range(n)]
        s.add_all(users)
        await s.flush()
        accounts = [
            ExecutionAccount(owner_id=u.id, kind="mt5", login=str(FIRST_LOGIN + i), server=SERVER)
            for i, u in enumerate(users)
        ]
        s.add_all(accounts)
        await s.flush()
        decisions = [
            Decision(
                signal_id=signal.id,
                user_id=u.id,
                account_id=a.id,
                status=DecisionStatus.APPROVED.value,
                decided_at=now,
            )
            for u, a in zip(users, accounts, strict=True)
        ]
        s.add_all(decisions)
        await s.flush()
        decision_ids = [d.id for d in decisions]
        producer_id, signal_id = producer.id, signal.id
    gate = asyncio.Semaphore(32)

    async def open_one(account: ExecutionAccount, decision_id: str) -> tuple[str, str, Any]:
        """Connect the account's broker and open its position at the terminal (as an approval
        would, through the broker code; the rows are then written in bulk)."""
        cid = client_order_id_for(decision_id)
        async with gate:
            broker = await registry.get(account)
            spec = await broker.symbol_spec("EURUSD")
            assert spec is not None
            request = OrderRequest(
                client_order_id=cid,
                symbol="EURUSD",
                side=Side.BUY,
                order_type=OrderType.MARKET,
                volume=VOLUME,
                price=Decimal("1.10010"),
                sl=SL,
                tp=TP,
                filling=choose_filling(spec.filling_modes) or FillingMode.IOC,
            )
            result = await broker.submit(request)
        if result.status is not SubmitStatus.ACCEPTED or result.position_ticket is None:
            raise SystemExit(f"setup: the terminal refused account {account.login}: {result.reason}")
        return decision_id, cid, result

    opened_at = datetime.now(UTC)
    fills = await asyncio.gather(*(open_one(a, d) for a, d in zip(accounts, decision_ids, strict=True)))
    async with db.session() as s:
        for account, (decision_id, cid, result) in zip(accounts, fills, strict=True):
            order = Order(
                client_order_id=cid,
                decision_id=decision_id,
                signal_id=signal_id,
                account_id=account.id,
                symbol="EURUSD",
                side="buy",
                order_type="market",
                volume=VOLUME,
                price=result.price,
                sl=SL,
                tp=TP,
                status=OrderStatus.FILLED.value,
                broker_ticket=result.ticket,
                position_ticket=result.position_ticket,
                filled_volume=result.filled_volume,
                fill_price=result.price,
                submitted_at=opened_at,
            )
            s.add(order)
            await s.flush()
            s.add(
                Position(
                    account_id=account.id,
                    order_id=order.id,
                    ticket=result.position_ticket,
                    symbol="EURUSD",
                    side="buy",
                    volume=result.filled_volume or VOLUME,
                    open_price=result.price,
                    sl=SL,
                    tp=TP,
                    opened_at=opened_at,
                )
            )
    async with db.sessions() as s:
        opened = int(await s.scalar(select(func.count(Position.id))) or 0)
    if opened != n:
        raise SystemExit(f"setup opened {opened} positions, expected {n}")
    setup_s = time.perf_counter() - setup_start

    # ---- the updates
    row_ms: dict[int, float] = {}
    queued_ms: dict[int, float] = defaultdict(float)  # waiting for the SQLite write gate
    current_row: contextvars.ContextVar[int | None] = contextvars.ContextVar("row", default=None)
    original_apply = changes.apply

    async def timed_apply(change_id: int) -> str:
        current_row.set(change_id)  # each row runs in its own task (gather): its own context
        start = time.perf_counter()
        try:
            return await original_apply(change_id)
        finally:
            row_ms[change_id] = (time.perf_counter() - start) * 1000

    changes.apply = timed_apply  # type: ignore[method-assign]

    class TimedGate:
        """The service's SQLite write gate, timing how long each row waits for its turn."""

        def __init__(self, lock: asyncio.Lock) -> None:
            self._lock = lock

        async def __aenter__(self) -> None:
            start = time.perf_counter()
            await self._lock.acquire()
            row = current_row.get()
            if row is not None:
                queued_ms[row] += (time.perf_counter() - start) * 1000

        async def __aexit__(self, *exc: object) -> None:
            self._lock.release()

    if changes.write_gate is not None:
        changes.write_gate = TimedGate(changes.write_gate)  # type: ignore[assignment]

    async def fan_out(body: dict[str, Any], key: str) -> dict[str, Any]:
        row_ms.clear()
        terminal_ms.clear()
        queued_ms.clear()
        start = time.perf_counter()
        outcome = await updates.submit(producer_id, signal_id, json.dumps(body).encode(), idempotency_key=key)
        stored = time.perf_counter()
        ids = await changes.plan(outcome.update_id)
        planned = time.perf_counter()
        await changes.apply_many(ids)
        done = time.perf_counter()
        async with db.sessions() as s:
            rows = (
                await s.execute(
                    select(PositionChange.id, PositionChange.account_id, PositionChange.status).where(
                        PositionChange.update_id == outcome.update_id
                    )
                )
            ).all()
        statuses: dict[str, int] = defaultdict(int)
        overhead: list[float] = []
        per_row_terminal: list[float] = []
        queued: list[float] = []
        for change_id, account_id, status in rows:
            statuses[status] += 1
            spent = terminal_ms.get(account_id, 0.0)
            waited = queued_ms.get(change_id, 0.0)
            per_row_terminal.append(spent)
            queued.append(waited)
            overhead.append(row_ms[change_id] - spent - waited)
        terminal_sum = sum(terminal_ms.values())
        total_ms = (done - start) * 1000
        ideal_ms = terminal_sum / changes.config.concurrency
        return {
            "update": body,
            "positions": len(rows),
            "statuses": dict(statuses),
            "store_update_ms": round((stored - start) * 1000, 3),
            "plan_ms": round((planned - stored) * 1000, 3),
            "apply_ms": round((done - planned) * 1000, 3),
            "total_ms": round(total_ms, 3),
            "per_position_wall_ms": _summary(list(row_ms.values())),
            "per_position_terminal_ms": _summary(per_row_terminal),
            "per_position_queued_for_store_ms": _summary(queued),
            "engine_overhead_per_position_ms": _summary(overhead),
            "terminal_sum_ms": round(terminal_sum, 3),
            "terminal_bound_ideal_ms": round(ideal_ms, 3),
            "total_vs_ideal": round(total_ms / ideal_ms, 2) if ideal_ms else None,
        }

    control.set_price("EURUSD", Decimal("1.10300"), Decimal("1.10310"))  # in profit: entry is a valid stop
    move_sl = await fan_out({"action": "move_sl", "sl": "entry"}, "bench-move-sl")
    close_half = await fan_out({"action": "close", "percent": 50}, "bench-close-half")
    await registry.close()
    await db.dispose()
    worst = max(
        move_sl["engine_overhead_per_position_ms"]["p99"],
        close_half["engine_overhead_per_position_ms"]["p99"],
    )
    return {
        "benchmark": "updates",
        "database": db.dialect,
        "subscribers": n,
        "concurrency": changes.config.concurrency,
        "setup_s": round(setup_s, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "move_sl": move_sl,
        "close_50": close_half,
        "target": f"engine overhead per position p99 < {TARGET_P99_MS:g} ms",
        "target_met": worst < TARGET_P99_MS,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000, help="subscribers, one position each")
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--concurrency", type=int, default=None, help="rows applied at once (default: the service's)"
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.n, args.database_url, args.concurrency)), indent=2))


if __name__ == "__main__":
    main()
