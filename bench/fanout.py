"""Benchmark the Telegram fan-out against the Bot API emulator at Telegram's limits.

The emulator runs in its own process with its default configuration (about 30 messages a second
per bot, about one a second per chat, 429 with ``retry_after`` past them); the engine and the bot
(real aiogram ``Bot``, dispatcher, outbox sender with the production rate limits) run in this
process on a fresh SQLite database. Two phases:

- ``dm``: one signal to ``--subscribers`` DM subscribers. Reports the time from the signal's
  acceptance to the last message delivered, that time divided by the ideal ``N / 30`` seconds,
  the resulting share of Telegram's limit, and the 429s the emulator returned (``/_emulator/stats``).
  Targets: >= 95 % of the limit, zero 429s.
- ``channel``: one channel post, then ``--taps`` distinct subscribers tap Approve (open loop at
  ``--tap-rate`` taps a second). Reports the answer latency (tap sent -> answerCallbackQuery seen
  by the emulator, measured by the tapping client): p50, p99, max. Target: p99 < 50 ms. Every
  approval also executes on the subscriber's paper account in the background.

Prints one JSON document. Usage::

    .venv/bin/python bench/fanout.py                      # both phases, 1,000 subscribers / taps
    .venv/bin/python bench/fanout.py --phase dm --subscribers 300
    .venv/bin/python bench/fanout.py --phase channel --tap-rate 25 50 --pg   # a sweep on PostgreSQL
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
CHANNEL = -1001234567890
FIRST_USER = 10_000_000
TELEGRAM_RATE = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def emulator_process() -> Any:
    """The emulator in a child process (Telegram's default limits); yields its base URL."""
    from emulator import EmulatorClient

    port = free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before the measurement
        [sys.executable, "-m", "emulator", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        client = EmulatorClient(base)
        for _ in range(100):
            try:
                await client.stats()
                break
            except Exception:
                await asyncio.sleep(0.1)
        await client.close()
        yield base
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


async def build(base_url: str, database_url: str, n: int, channel: bool) -> tuple[Any, Any, Any]:
    """Engine + bot over a fresh database with ``n`` consented subscribers (paper accounts)."""
    from bot.app import start_bot
    from emulator import EmulatorClient
    from engine.settings import Settings
    from engine.store.models import ExecutionAccount, User
    from tradebot.app import build_services

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        bot_token=TOKEN,
        telegram_api_url=base_url,
        database_url=database_url,
        secret_key="bench-" + "k" * 40,
        market_hours="*=24/7",
        signal_channel_id=CHANNEL if channel else None,
    )
    services = build_services(settings)
    client = EmulatorClient(base_url)
    if channel:
        await client.add_chat(CHANNEL, "channel", "Signals")
    uids = list(range(FIRST_USER, FIRST_USER + n))
    for start in range(0, n, 50):
        await asyncio.gather(*(client.add_user(uid, f"U{uid}") for uid in uids[start : start + 50]))
    now = datetime.now(UTC)
    async with services.db.session() as session:
        users = [
            User(
                telegram_id=uid,
                referral_code=f"B{uid}",
                consent_version=settings.consent_version,
                consented_at=now,
                language="en" if uid % 2 else "es",
            )
            for uid in uids
        ]
        session.add_all(users)
        await session.flush()
        session.add_all(
            ExecutionAccount(
                owner_id=u.id, kind="paper", balance=Decimal(10000), reference_equity=Decimal(10000)
            )
            for u in users
        )
    services.relay.start()
    runtime = await start_bot(services)
    return services, runtime, client


async def accept_signal(services: Any) -> str:
    from engine.store.events import SIGNAL_ACCEPTED, emit
    from engine.store.models import Producer, Signal
    from mt5sim.pricefeed import SimulatedFeed

    tick = SimulatedFeed().tick("EURUSD")
    assert tick is not None
    now = datetime.now(UTC)
    async with services.db.session() as session:
        producer = Producer(name="bench", secret_enc="x", token_digest="b" * 64)
        session.add(producer)
        await session.flush()
        signal = Signal(
            producer_id=producer.id,
            idempotency_key=f"bench-{now.timestamp()}",
            body_hash="h",
            instrument="EURUSD",
            side="buy",
            sl=(tick.bid - Decimal("0.00300")).quantize(Decimal("0.00001")),
            tp=(tick.ask + Decimal("0.00600")).quantize(Decimal("0.00001")),
            risk_percent=Decimal("0.5"),
            ttl_seconds=3600,
            note="benchmark",
            expires_at=now + timedelta(hours=1),
        )
        session.add(signal)
        await session.flush()
        emit(session, SIGNAL_ACCEPTED, signal_id=signal.id)
        signal_id = signal.id
    services.relay.notify()
    return str(signal_id)


async def outbox_counts(services: Any) -> tuple[int, int]:
    from sqlalchemy import func, select

    from engine.store.models import OutboxMessage

    async with services.db.session() as session:
        rows = (
            await session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status))
        ).all()
    counts = dict(rows)
    return int(counts.get("sent", 0)), int(counts.get("pending", 0))


async def sent_span(services: Any) -> tuple[float, float]:
    """Seconds (epoch) of the first and the last outbox send."""
    from sqlalchemy import func, select

    from engine.store.models import OutboxMessage

    async with services.db.session() as session:
        first, last = (
            await session.execute(select(func.min(OutboxMessage.sent_at), func.max(OutboxMessage.sent_at)))
        ).one()
    return (first.timestamp(), last.timestamp()) if first and last else (0.0, 0.0)


async def phase_dm(base_url: str, database_url: str, n: int) -> dict[str, Any]:
    services, runtime, client = await build(base_url, database_url, n, channel=False)
    try:
        await client.reset_stats()
        started = time.perf_counter()
        await accept_signal(services)
        while True:
            sent, pending = await outbox_counts(services)
            if sent >= n:
                break
            if time.perf_counter() - started > n / TELEGRAM_RATE * 4 + 60:
                raise RuntimeError(f"DM fan-out stalled: {sent} sent, {pending} pending")
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        stats = await client.stats()
        ideal = n / TELEGRAM_RATE
        first, last = await sent_span(services)
        return {
            "subscribers": n,
            "delivered": int(stats["calls"].get("sendMessage", 0)) - int(stats["too_many_requests"]),
            "seconds": round(elapsed, 3),
            "ideal_seconds": round(ideal, 3),
            "time_ratio": round(elapsed / ideal, 4),
            "percent_of_limit": round(100 * ideal / elapsed, 2),
            "messages_per_second": round(n / elapsed, 2),
            "first_send_after_seconds": round(elapsed - (last - first), 3),
            "send_phase_per_second": round((n - 1) / (last - first), 2) if last > first else None,
            "http_429": int(stats["too_many_requests"]),
            "target": ">= 95 % of the limit, 0 x 429",
        }
    finally:
        await runtime.stop()
        await services.relay.stop()
        await services.execution.drain(5)
        await services.brokers.close()
        await services.db.dispose()
        await client.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


async def phase_channel(base_url: str, database_url: str, n: int, rate: float) -> dict[str, Any]:
    from sqlalchemy import func, select

    from engine.store.models import Decision, Order

    services, runtime, client = await build(base_url, database_url, n, channel=True)
    try:
        await accept_signal(services)
        post: dict[str, Any] | None = None
        for _ in range(200):
            found = [m for m in await client.messages(CHANNEL) if m.get("reply_markup")]
            if found:
                post = found[0]
                break
            await asyncio.sleep(0.05)
        assert post is not None, "the channel post never arrived"
        approve = post["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        latencies: list[float] = []
        answers: list[str] = []

        async def one(uid: int) -> None:
            began = time.perf_counter()
            query_id = await client.tap(uid, CHANNEL, post["message_id"], approve)
            answer = await client.callback_answer(query_id, wait=30)
            latencies.append((time.perf_counter() - began) * 1000)
            answers.append((answer or {}).get("text", ""))

        tasks = []
        started = time.perf_counter()
        for i in range(n):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(FIRST_USER + i)))
        await asyncio.gather(*tasks)
        async with services.db.session() as session:
            decisions = await session.scalar(select(func.count(Decision.id)))
        await asyncio.sleep(1.0)
        async with services.db.session() as session:
            orders = await session.scalar(select(func.count(Order.id)))
        return {
            "taps": n,
            "tap_rate_per_second": rate,
            "answered": sum(1 for a in answers if a),
            "approved": sum(1 for a in answers if a.startswith(("✅", "Aprobada"))),
            "decisions": int(decisions or 0),
            "orders_created_1s_later": int(orders or 0),
            "p50_ms": round(statistics.median(latencies), 2),
            "p99_ms": round(percentile(latencies, 99), 2),
            "max_ms": round(max(latencies), 2),
            "target": "p99 < 50 ms",
        }
    finally:
        await runtime.stop()
        await services.relay.stop()
        await services.execution.drain(10)
        await services.brokers.close()
        await services.db.dispose()
        await client.close()


PG_ADMIN = os.environ.get("TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


async def _pg_admin(statement: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def fresh_database(tmp: str, name: str, pg: bool) -> Any:
    """A migrated, empty database: a SQLite file, or a new PostgreSQL database dropped afterwards."""
    from engine.store.migrate import upgrade_async

    if not pg:
        url = f"sqlite+aiosqlite:///{os.path.join(tmp, name + '.db')}"
        await upgrade_async(url)
        yield url
        return
    db_name = f"tradebot_bench_{name}_{os.getpid()}"
    await _pg_admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    await _pg_admin(f'CREATE DATABASE "{db_name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{db_name}"
    try:
        await upgrade_async(url)
        yield url
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from engine.observability.logs import setup_logging

    setup_logging("ERROR")
    out: dict[str, Any] = {
        "emulator": "separate process, Telegram's default limits",
        "database": "postgresql" if args.pg else "sqlite",
        "cpu_count": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        if args.phase in ("dm", "both"):
            async with emulator_process() as base_url, fresh_database(tmp, "dm", args.pg) as url:
                out["dm"] = await phase_dm(base_url, url, args.subscribers)
        if args.phase in ("channel", "both"):
            out["channel"] = []
            for rate in args.tap_rate:
                async with (
                    emulator_process() as base_url,
                    fresh_database(tmp, f"ch{int(rate)}", args.pg) as url,
                ):
                    out["channel"].append(await phase_channel(base_url, url, args.taps, rate))
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phase", choices=("dm", "channel", "both"), default="both")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--taps", type=int, default=1000)
    parser.add_argument(
        "--tap-rate",
        type=float,
        nargs="+",
        default=[25.0],
        help="taps a second (open loop); several: a sweep",
    )
    parser.add_argument("--pg", action="store_true", help="PostgreSQL (a fresh database) instead of SQLite")
    result = asyncio.run(main(parser.parse_args()))
    print(json.dumps(result, indent=2))
