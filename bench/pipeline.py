"""Benchmark the whole pipeline: a real ``tradebot run`` process, signals in, fan-out out.

For each case (subscribers x mode) it starts the Bot API emulator (its own process, Telegram's
default limits) and ``tradebot run`` (a subprocess on a fresh database) with that many consented
subscribers, then sends signed signals at a fixed rate (open loop) for ``--seconds`` and reports:

- ``accepted_per_second``: 201 answers a second;
- ``dispatched_per_second``: signals moved to DISPATCHED a second during the load, and the
  backlog (events not yet relayed + signals not yet dispatched) sampled every second: it is
  ``flat`` when it ends no higher than half a second of load;
- ``cpu_ms_per_signal``: the process's CPU (utime + stime from ``/proc/<pid>/stat``) from the
  first request until everything sent was dispatched, divided by the signals;
- ``rss_idle_mib`` (after start-up, before load) and ``peak_rss_mib`` (``VmHWM``).

DM sends are paced by Telegram's limit (about 30 a second), so DM cases measure planning and
queueing (decisions and outbox rows written), not delivery. Then ``plan_10k`` measures planning
one signal for 10,000 subscribers in-process: the engine's plan (decisions) and the bot's render
(outbox rows). Prints one JSON document. The machine may be shared: note its load with the figures.

    .venv/bin/python bench/pipeline.py                    # every case, 60 s each
    .venv/bin/python bench/pipeline.py --seconds 15 --cases 0:dm 1000:channel
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sqlite3
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
sys.path.insert(0, str(ROOT / "bench"))

from ingest import Client, fixed_rate  # noqa: E402 - bench/ingest.py, the signed-request client

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
CHANNEL = -1001234567890
FIRST_USER = 20_000_000
SECRET_KEY = "bench-" + "k" * 40
CONSENT = "2026-11"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def proc_mib(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


async def seed(url: str, subscribers: int, emulator_url: str) -> tuple[str, str]:
    """Subscribers (users, paper accounts, emulator chats) and a producer with no rate limit."""
    from emulator import EmulatorClient
    from engine.ingest.producers import ProducerService
    from engine.store.crypto import SecretBox
    from engine.store.db import Database
    from engine.store.models import ExecutionAccount, User

    db = Database(url)
    try:
        now = datetime.now(UTC)
        for start in range(0, subscribers, 2000):
            async with db.session() as session:
                users = [
                    User(
                        telegram_id=FIRST_USER + i,
                        referral_code=f"B{i}",
                        consent_version=CONSENT,
                        consented_at=now,
                        language="es" if i % 2 else "en",
                    )
                    for i in range(start, min(subscribers, start + 2000))
                ]
                session.add_all(users)
                await session.flush()
                session.add_all(
                    ExecutionAccount(owner_id=u.id, kind="paper", balance=Decimal(10_000)) for u in users
                )
        producer = await ProducerService(db, SecretBox(SECRET_KEY)).add(
            "bench", rate_per_second=Decimal(1_000_000), burst=1_000_000
        )
    finally:
        await db.dispose()
    client = EmulatorClient(emulator_url)
    try:
        await client.add_chat(CHANNEL, "channel", "Signals")
        uids = range(FIRST_USER, FIRST_USER + subscribers)
        for start in range(0, subscribers, 100):
            await asyncio.gather(*(client.add_user(u, f"U{u}") for u in uids[start : start + 100]))
    finally:
        await client.close()
    return producer.id, producer.secret


def backlog(path: str) -> tuple[int, int]:
    """(events not yet relayed + signals not yet dispatched, signals dispatched)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        events = conn.execute("SELECT count(*) FROM domain_events WHERE processed_at IS NULL").fetchone()[0]
        accepted = conn.execute("SELECT count(*) FROM signals WHERE status = 'accepted'").fetchone()[0]
        dispatched = conn.execute("SELECT count(*) FROM signals WHERE status = 'dispatched'").fetchone()[0]
    finally:
        conn.close()
    return int(events) + int(accepted), int(dispatched)


@contextlib.contextmanager
def child(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> Any:
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()


async def wait_http(url: str, proc: subprocess.Popen[bytes], seconds: float = 300) -> None:
    from aiohttp import ClientSession

    deadline = time.monotonic() + seconds
    async with ClientSession() as http:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{url}: the process exited with {proc.returncode}")
            with contextlib.suppress(OSError):
                async with http.get(url) as resp:
                    if resp.status < 500:
                        return
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not come up")
            await asyncio.sleep(0.1)


async def run_case(subscribers: int, mode: str, rate: float, seconds: float, tmp: Path) -> dict[str, Any]:
    from engine.store.migrate import upgrade_async

    work = tmp / f"{subscribers}-{mode}"
    work.mkdir()
    path = str(work / "tradebot.db")
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade_async(url)
    emulator_port, http_port = free_port(), free_port()
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "BOT_", "TELEGRAM_"))}
    with child(
        [sys.executable, "-m", "emulator", "--port", str(emulator_port)],
        base_env,
        ROOT,
        work / "emulator.log",
    ) as emulator:
        await wait_http(f"{emulator_url}/_emulator/stats", emulator)
        producer_id, secret = await seed(url, subscribers, emulator_url)
        env = {
            **base_env,
            "BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": emulator_url,
            "DATABASE_URL": url,
            "SECRET_KEY": SECRET_KEY,
            "HTTP_PORT": str(http_port),
            "CONSENT_VERSION": CONSENT,
            "MARKET_HOURS": "*=24/7",
            "LOG_LEVEL": "WARNING",
            # one load generator is one client address: the per-client connection cap that keeps a
            # greedy client from starving the others (docs/security.md) would only measure itself
            "HTTP_MAX_CONNECTIONS_PER_CLIENT": "100000",
        }
        if mode == "channel":
            env["SIGNAL_CHANNEL_ID"] = str(CHANNEL)
        tradebot = str(Path(sys.executable).with_name("tradebot"))
        with child([tradebot, "run"], env, work, work / "tradebot.log") as proc:
            await wait_http(f"http://127.0.0.1:{http_port}/healthz", proc)
            await asyncio.sleep(3)  # settle: first heartbeat, bot commands
            rss_idle = proc_mib(proc.pid, "VmRSS")
            client = Client(http_port, producer_id, secret)
            requests = client.requests(int(rate * seconds) + 20)
            samples: list[int] = []
            stop = asyncio.Event()

            async def sampler() -> None:
                while not stop.is_set():
                    samples.append(backlog(path)[0])
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 1.0)

            _, dispatched_before = backlog(path)
            cpu_before = proc_cpu_seconds(proc.pid)
            started = time.perf_counter()
            sampling = asyncio.create_task(sampler())
            load = await fixed_rate(client, rate, seconds, requests)
            load_seconds = time.perf_counter() - started
            stop.set()
            await sampling
            waiting, dispatched_in_load = backlog(path)
            dispatched_in_load -= dispatched_before
            drain_started = time.perf_counter()
            while waiting > 0 and time.perf_counter() - drain_started < 300:
                await asyncio.sleep(0.2)
                waiting, _ = backlog(path)
            drained_after = time.perf_counter() - drain_started
            cpu = proc_cpu_seconds(proc.pid) - cpu_before
            peak = proc_mib(proc.pid, "VmHWM")
            await client.close()
            accepted = load["ok"] + 20  # the warm-up requests count too
            return {
                "subscribers": subscribers,
                "mode": mode,
                "target_rate": rate,
                "accepted_per_second": round(load["ok"] / load["seconds"], 1),
                "dispatched_per_second": round(dispatched_in_load / load_seconds, 1),
                "backlog_samples": samples,
                "backlog_flat": bool(samples) and samples[-1] <= max(50, rate * 0.5),
                "drained_seconds_after_load": round(drained_after, 2),
                "cpu_ms_per_signal": round(cpu * 1000 / accepted, 3),
                "rss_idle_mib": rss_idle,
                "peak_rss_mib": peak,
                "latency_ms": load["latency_ms"],
                "errors": client.errors,
            }


async def plan_10k(tmp: Path, subscribers: int) -> dict[str, Any]:
    """Planning one signal for ``subscribers`` DM subscribers, in-process: the engine's plan, then
    the bot's render (decisions and outbox rows written)."""
    from sqlalchemy import func, select

    from bot.app import bot_context
    from bot.fanout import Fanout
    from emulator import BotAPIEmulator
    from engine.settings import Settings
    from engine.store.migrate import upgrade_async
    from engine.store.models import Decision, OutboxMessage, Producer, Signal
    from tradebot.app import build_services

    url = f"sqlite+aiosqlite:///{tmp / 'plan.db'}"
    await upgrade_async(url)
    emulator = BotAPIEmulator()
    await emulator.start()
    try:
        await seed(url, subscribers, emulator.base_url)
    finally:
        await emulator.stop()
    values: dict[str, Any] = {
        "database_url": url,
        "secret_key": SECRET_KEY,
        "consent_version": CONSENT,
        "bot_token": TOKEN,
    }
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    services = build_services(settings)
    ctx = bot_context(services)
    assert services.fanout is not None
    try:
        now = datetime.now(UTC)
        async with services.db.session() as session:
            producer_id = await session.scalar(select(Producer.id))
            signal = Signal(
                producer_id=producer_id,
                idempotency_key="plan-10k",
                body_hash="h",
                instrument="EURUSD",
                side="buy",
                sl=Decimal("1.098"),
                tp=Decimal("1.104"),
                risk_percent=Decimal(1),
                ttl_seconds=900,
                expires_at=now + timedelta(minutes=15),
            )
            session.add(signal)
        c0, t0 = time.process_time(), time.perf_counter()
        plan = await services.fanout.plan([signal.id])
        c1, t1 = time.process_time(), time.perf_counter()
        rows = await Fanout(ctx).render(
            {"mode": "dm", "signals": [{"signal_id": signal.id, "recipients": plan.decisions}]}
        )
        c2, t2 = time.process_time(), time.perf_counter()
        async with services.db.sessions() as session:
            decisions = await session.scalar(select(func.count(Decision.id)))
            outbox = await session.scalar(select(func.count(OutboxMessage.id)))
    finally:
        await services.db.dispose()
    return {
        "subscribers": subscribers,
        "decisions_written": decisions,
        "outbox_rows_written": outbox,
        "rendered": rows,
        "plan_ms": round((t1 - t0) * 1000, 1),
        "render_and_queue_ms": round((t2 - t1) * 1000, 1),
        "total_ms": round((t2 - t0) * 1000, 1),
        "cpu_ms": {"plan": round((c1 - c0) * 1000, 1), "render_and_queue": round((c2 - c1) * 1000, 1)},
        "target_ms": 300,
    }


def parse_case(text: str) -> tuple[int, str]:
    subscribers, _, mode = text.partition(":")
    if mode not in ("dm", "channel") or not subscribers.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: write SUBSCRIBERS:dm or SUBSCRIBERS:channel")
    return int(subscribers), mode


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from engine.observability.logs import setup_logging

    setup_logging("ERROR")
    out: dict[str, Any] = {
        "benchmark": "pipeline",
        "database": "sqlite",
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "seconds_per_case": args.seconds,
        "cases": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for subscribers, mode in args.cases:
            rate = args.rate if mode == "channel" or subscribers == 0 else args.dm_decisions / subscribers
            out["cases"].append(await run_case(subscribers, mode, rate, args.seconds, Path(tmp)))
        if args.plan_subscribers:
            out["plan_one_signal"] = await plan_10k(Path(tmp), args.plan_subscribers)
    out["load_average_at_end"] = os.getloadavg()
    out["targets"] = {
        "zero_subscribers_signals_per_second": 1500,
        "cpu_ms_per_signal": 1.5,
        "plan_10k_ms": 300,
        "peak_rss_mib": 150,
        "idle_rss_mib": 120,
    }
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="load per case (sustained: 60)")
    parser.add_argument(
        "--rate", type=float, default=1500.0, help="signals a second (0 subscribers, channel)"
    )
    parser.add_argument(
        "--dm-decisions",
        type=float,
        default=10_000.0,
        help="DM cases: signals a second = this / subscribers (decisions opened a second)",
    )
    parser.add_argument(
        "--cases",
        type=parse_case,
        nargs="+",
        default=[parse_case(c) for c in ("0:dm", "1000:dm", "10000:dm", "1000:channel", "10000:channel")],
    )
    parser.add_argument("--plan-subscribers", type=int, default=10_000, help="0: skip the plan measurement")
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
