"""Drawdown guard: time from the tick that sees the cap crossed to every position closed.

Builds the engine through the composition root (``tradebot.app.build_services``) on SQLite,
with one MT5 account on the simulated terminal (``MT5_MODULE=mt5sim``; ``--broker paper`` for
the paper broker). Opens ``--positions`` positions (default 100) at the broker, lets the loop
record them, then pushes the price (``mt5sim.control.set_price``; the paper feed for paper) past
the drawdown cap and times the next loop tick: the guard refreshes the account's positions,
closes them all through ``PositionCloser.close_account``, pauses the account and alerts.
Repeated ``--runs`` times on fresh state. Target: under 1 s. Prints JSON.

    python bench/drawdown.py [--positions 100] [--runs 3] [--broker mt5|paper]
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
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LOGIN, PASSWORD, SERVER = 9101, "bench-pw", "Bench-Demo"
BALANCE = Decimal(100_000)
VOLUME = Decimal("0.5")  # x positions: 100 x 0.5 lot = $50 a point on EURUSD
TARGET_MS = 1000.0


class _Market:
    """Paper-broker prices the benchmark moves (mt5sim's symbol specs, a held quote)."""

    def __init__(self) -> None:
        from mt5sim.pricefeed import SimulatedFeed

        self._feed = SimulatedFeed()
        self.quote = (Decimal("1.10000"), Decimal("1.10010"))

    def spec(self, symbol: str) -> Any:
        return self._feed.spec(symbol)

    def tick(self, symbol: str) -> Any:
        from datetime import UTC, datetime

        from engine.brokers.base import Tick

        if symbol.upper() != "EURUSD":
            return self._feed.tick(symbol)
        return Tick("EURUSD", self.quote[0], self.quote[1], datetime.now(UTC))


async def one_run(n_positions: int, kind: str) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-drawdown-"))
    state = tmp / "mt5sim.sqlite3"
    os.environ["MT5SIM_STATE"] = str(state)
    from sqlalchemy import select

    from engine.brokers.base import FillingMode, OrderRequest, OrderType, Side, SubmitStatus
    from engine.settings import load_settings
    from engine.store.events import DRAWDOWN_TRIGGERED
    from engine.store.migrate import upgrade
    from engine.store.models import DomainEvent, ExecutionAccount, Position, User
    from mt5sim import control
    from tradebot.app import build_services

    url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    await asyncio.to_thread(upgrade, url)
    control.use_state(state)
    control.ignore_market_hours()
    control.create_account(LOGIN, PASSWORD, server=SERVER, balance=BALANCE)
    control.set_price("EURUSD", Decimal("1.10000"), Decimal("1.10010"))
    settings = load_settings(database_url=url, mt5_module="mt5sim", secret_key="b" * 64, _env_file=None)
    from engine.brokers.pricefeed import PaperMarket

    market = _Market()
    services = build_services(
        settings, paper_market=PaperMarket(market, simulated=True, description="benchmark quotes")
    )
    loop = services.trading_loop
    assert services.secrets is not None
    db = services.db
    async with db.session() as s:
        user = User(telegram_id=1, referral_code="bench")
        s.add(user)
        await s.flush()
        account = ExecutionAccount(
            owner_id=user.id,
            kind=kind,
            login=str(LOGIN),
            server=SERVER,
            credentials_enc=services.secrets.encrypt(PASSWORD),
            balance=BALANCE if kind == "paper" else None,
        )
        s.add(account)
        await s.flush()
        account_id = account.id
        s.expunge(account)
    broker = await services.brokers.get(account)
    for i in range(n_positions):
        result = await broker.submit(
            OrderRequest(
                f"tb-bench{i:05d}",
                "EURUSD",
                Side.BUY,
                OrderType.MARKET,
                VOLUME,
                Decimal("1.10010"),
                Decimal("1.00000"),
                Decimal("1.30000"),
                FillingMode.IOC,
            )
        )
        assert result.status is SubmitStatus.ACCEPTED, result
    await loop.tick()  # reconcile: the positions are recorded; the reference equity is set
    async with db.session() as s:
        recorded = len((await s.scalars(select(Position))).all())
    assert recorded == n_positions, recorded

    # 500 points down on 50 lots: -25 000 on 100 000, past the 20 % cap.
    crossing = (Decimal("1.09510"), Decimal("1.09520"))
    if kind == "paper":
        market.quote = crossing
    else:
        control.set_price("EURUSD", *crossing)
    started = time.perf_counter()
    await loop.tick()
    tick_ms = (time.perf_counter() - started) * 1000
    left_at_broker = len(await broker.positions())
    all_closed_ms = (time.perf_counter() - started) * 1000
    async with db.session() as s:
        open_in_store = len((await s.scalars(select(Position).where(Position.status != "closed"))).all())
        alerts = (await s.scalars(select(DomainEvent).where(DomainEvent.type == DRAWDOWN_TRIGGERED))).all()
        paused = (await s.get(ExecutionAccount, account_id)).paused  # type: ignore[union-attr]
    await loop.stop(5.0)
    await db.dispose()
    control.close()
    payload = alerts[0].payload if alerts else {}
    return {
        "tick_ms": round(tick_ms, 1),
        "crossing_to_all_closed_ms": round(all_closed_ms, 1),
        "closed": payload.get("closed"),
        "failed": payload.get("failed"),
        "left_at_broker": left_at_broker,
        "open_in_store": open_in_store,
        "alerts": len(alerts),
        "paused": paused,
        "drawdown_percent": payload.get("drawdown_percent"),
    }


async def main_async(n: int, runs: int, kind: str) -> dict[str, Any]:
    from engine.observability.logs import setup_logging

    setup_logging("ERROR")
    results = [await one_run(n, kind) for _ in range(runs)]
    times = [r["crossing_to_all_closed_ms"] for r in results]
    ok = all(r["left_at_broker"] == 0 and r["open_in_store"] == 0 and r["alerts"] == 1 for r in results)
    return {
        "benchmark": "drawdown_close_all",
        "broker": "mt5sim" if kind == "mt5" else "paper",
        "database": "sqlite",
        "positions": n,
        "runs": runs,
        "crossing_to_all_closed_ms": {
            "min": min(times),
            "median": round(statistics.median(times), 1),
            "max": max(times),
        },
        "target_ms": TARGET_MS,
        "within_target": ok and max(times) < TARGET_MS,
        "all_closed_paused_alerted_once": ok,
        "per_run": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--positions", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--broker", choices=("mt5", "paper"), default="mt5")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args.positions, args.runs, args.broker)), indent=2))


if __name__ == "__main__":
    main()
