"""The trading loop's heartbeat: what it did since the last beat, where everyone can read it.

Every ``HEARTBEAT_SECONDS`` the leader's loop writes one heartbeat:
- to the log (one INFO line);
- to ``engine_state`` key ``heartbeat`` (``/status`` and ``/readyz`` read it there);
- as a ``heartbeat`` domain event (the outbound dispatcher forwards it; the bot's notifier
  summarises heartbeats to ops at its own period);
- to Prometheus through ``LoopCollector``, a collector that reads the loop's counters at scrape
  time (register it on any registry: ``TradingLoop.register_metrics(registry)``).

Payload: ``at`` (RFC 3339 UTC), ``loop_id``, ``instance``, ``seq``, ``signals_processed`` and
``trades_executed`` since the previous beat, ``orders_driven`` (approved orders the loop drove),
``errors`` since the previous beat and ``errors_total``, ``loop_duration_ms`` (the last tick),
``ticks``, ``positions_open``, ``equity`` (last reading per account id, at most 50 accounts) with
``equity_accounts`` (how many), ``accounts_failing``, ``lifetime_signals``, ``lifetime_trades``
(positions the bot opened) and ``final`` (true for the beat written on graceful stop).
The lifetime counts come from the store, so they are exact across restarts; the "since the
previous beat" counts are their differences from the stored previous beat.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from loguru import logger
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from engine.observability.logs import HEARTBEAT_EXTRA
from engine.states import PositionStatus
from engine.store.db import Database, utcnow
from engine.store.events import HEARTBEAT, emit
from engine.store.models import EngineState, Position, Signal

HEARTBEAT_KEY = "heartbeat"
EQUITY_IN_PAYLOAD = 50
EQUITY_SERIES = 200
INSTANCE = f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class LoopStats:
    """Counters the loop keeps in memory (reset when the process starts)."""

    ticks: int = 0
    errors_total: int = 0
    errors_since_beat: int = 0
    orders_driven_total: int = 0
    orders_driven_since_beat: int = 0
    last_tick_ms: float = 0.0
    heartbeats: int = 0
    last_heartbeat_unix: float = 0.0
    leader: bool = False
    instance: str = INSTANCE  # this instance's id (the cluster's)
    positions_open: int = 0
    lifetime_signals: int = 0
    lifetime_trades: int = 0
    equity: dict[int, Decimal] = field(default_factory=dict)
    tiers: dict[int, str] = field(default_factory=dict)
    failing: set[int] = field(default_factory=set)


async def beat(db: Database, *, loop_id: str, stats: LoopStats, final: bool = False) -> dict[str, Any]:
    """Write one heartbeat (state row + event, one transaction) and log it; returns the payload."""
    now = utcnow()
    async with db.session() as session:
        signals = int(await session.scalar(select(func.count()).select_from(Signal)) or 0)
        trades = int(
            await session.scalar(
                select(func.count()).select_from(Position).where(Position.external.is_(False))
            )
            or 0
        )
        open_positions = int(
            await session.scalar(
                select(func.count())
                .select_from(Position)
                .where(Position.status.in_([PositionStatus.OPEN.value, PositionStatus.CLOSING.value]))
            )
            or 0
        )
        row = await session.get(EngineState, HEARTBEAT_KEY, with_for_update=True)
        previous = dict(row.value or {}) if row is not None else {}
        equity = sorted(stats.equity.items())
        payload: dict[str, Any] = {
            "at": now.isoformat(),
            "loop_id": loop_id,
            "instance": stats.instance,
            "seq": stats.heartbeats + 1,
            "signals_processed": max(signals - int(previous.get("lifetime_signals", 0)), 0),
            "trades_executed": max(trades - int(previous.get("lifetime_trades", 0)), 0),
            "orders_driven": stats.orders_driven_since_beat,
            "errors": stats.errors_since_beat,
            "errors_total": stats.errors_total,
            "loop_duration_ms": round(stats.last_tick_ms, 3),
            "ticks": stats.ticks,
            "positions_open": open_positions,
            "equity": {str(k): str(v) for k, v in equity[:EQUITY_IN_PAYLOAD]},
            "equity_accounts": len(equity),
            "accounts_failing": len(stats.failing),
            "lifetime_signals": signals,
            "lifetime_trades": trades,
            "final": final,
        }
        if row is None:
            session.add(EngineState(key=HEARTBEAT_KEY, value=payload, updated_at=now))
        else:
            row.value = payload
        emit(session, HEARTBEAT, **payload)
    stats.heartbeats += 1
    stats.last_heartbeat_unix = now.timestamp()
    stats.errors_since_beat = 0
    stats.orders_driven_since_beat = 0
    stats.positions_open = open_positions
    stats.lifetime_signals = signals
    stats.lifetime_trades = trades
    logger.bind(**HEARTBEAT_EXTRA, final=final).info(
        "heartbeat loop={} signals={} trades={} orders={} errors={} tick_ms={} positions_open={} "
        "accounts={} failing={} lifetime_signals={} lifetime_trades={}{}",
        loop_id,
        payload["signals_processed"],
        payload["trades_executed"],
        payload["orders_driven"],
        payload["errors"],
        payload["loop_duration_ms"],
        open_positions,
        len(equity),
        len(stats.failing),
        signals,
        trades,
        " (final)" if final else "",
    )
    return payload


async def read_heartbeat(db: Database) -> dict[str, Any] | None:
    async with db.session() as session:
        row = await session.get(EngineState, HEARTBEAT_KEY)
        return dict(row.value) if row is not None and row.value else None


async def heartbeat_fresh(db: Database, max_age_seconds: float) -> bool | str:
    """Readiness probe: True when the loop's last heartbeat is younger than ``max_age_seconds``."""
    value = await read_heartbeat(db)
    if value is None or "at" not in value:
        return "no heartbeat from the trading loop yet"
    age = (utcnow() - datetime.fromisoformat(value["at"])).total_seconds()
    if value.get("final"):
        return f"the trading loop stopped {age:.0f} s ago"
    if age > max_age_seconds:
        return f"last heartbeat {age:.0f} s ago (limit {max_age_seconds:g} s)"
    return True


def heartbeat_probe(db: Database, heartbeat_seconds: float) -> Callable[[], Awaitable[bool | str]]:
    """The ``/readyz`` check: a heartbeat missed for 3 periods means not ready."""

    async def probe() -> bool | str:
        return await heartbeat_fresh(db, 3 * float(heartbeat_seconds))

    return probe


class LoopCollector(Collector):
    """Prometheus view of the loop, read at scrape time (no module-level metric objects)."""

    def __init__(self, stats: LoopStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self._stats

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, value=value)

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, value=value)

        yield gauge(
            "tradebot_loop_leader", "1 when this instance holds the trading-loop lease.", int(s.leader)
        )
        yield gauge(
            "tradebot_loop_heartbeat_timestamp_seconds",
            "Unix time of the last heartbeat.",
            s.last_heartbeat_unix,
        )
        yield gauge(
            "tradebot_loop_tick_duration_seconds", "Duration of the last loop tick.", s.last_tick_ms / 1000
        )
        yield counter("tradebot_loop_ticks", "Loop ticks run by this process.", s.ticks)
        yield counter("tradebot_loop_errors", "Errors in the loop (per account or per tick).", s.errors_total)
        yield counter(
            "tradebot_loop_orders_driven",
            "Approved orders the loop drove (pending, retries, unknown).",
            s.orders_driven_total,
        )
        yield gauge("tradebot_loop_heartbeats", "Heartbeats written by this process.", s.heartbeats)
        yield gauge(
            "tradebot_positions_open", "Open positions in the store (last heartbeat).", s.positions_open
        )
        yield gauge("tradebot_signals_lifetime", "Signals ever stored (last heartbeat).", s.lifetime_signals)
        yield gauge(
            "tradebot_trades_lifetime",
            "Positions ever opened by the bot (last heartbeat).",
            s.lifetime_trades,
        )
        yield gauge(
            "tradebot_accounts_failing", "Accounts whose broker is failing (backing off).", len(s.failing)
        )
        tiers = GaugeMetricFamily(
            "tradebot_accounts_drawdown_tier", "Accounts per drawdown tier.", labels=["tier"]
        )
        for tier in ("ok", "soft", "hard"):
            tiers.add_metric([tier], sum(1 for t in s.tiers.values() if t == tier))
        yield tiers
        equity = GaugeMetricFamily(
            "tradebot_account_equity",
            "Last equity reading per account (first 200 accounts).",
            labels=["account"],
        )
        for account_id, value in sorted(s.equity.items())[:EQUITY_SERIES]:
            equity.add_metric([str(account_id)], float(value))
        yield equity
