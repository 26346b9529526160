"""SIGTERM on a real ``tradebot run`` process with a backlog of 2,000 signals: it exits 0 within its
deadline with no traceback, and the next start processes everything that was left, once."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from sqlalchemy import func, insert, select

from emulator import BotAPIEmulator, EmulatorClient, EmulatorConfig
from engine.store.crypto import SecretBox
from engine.store.db import Database
from engine.store.events import SIGNAL_ACCEPTED
from engine.store.ids import uuid4
from engine.store.migrate import upgrade_async
from engine.store.models import Decision, DomainEvent, ExecutionAccount, OutboxMessage, Producer, Signal, User

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
CONSENT = "2026-11"
SECRET_KEY = "s" * 40
SIGNALS = 2_000
SUBSCRIBERS = 3
FIRST_TG = 6_200_000
STOP_DEADLINE = 10.0  # RuntimeOptions.stop_deadline_seconds, what `tradebot run` uses
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def emulator() -> AsyncIterator[BotAPIEmulator]:
    emu = BotAPIEmulator(EmulatorConfig())  # Telegram's limits: the DMs cannot all go out in time
    await emu.start()
    yield emu
    await emu.stop()


class Product:
    """``tradebot run`` as a child process, configured through its environment."""

    def __init__(self, tmp: Path, url: str, emulator: BotAPIEmulator) -> None:
        self.port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "BOT_", "TELEGRAM_"))},
            "BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": emulator.base_url,
            "DATABASE_URL": url,
            "SECRET_KEY": SECRET_KEY,
            "HTTP_PORT": str(self.port),
            "CONSENT_VERSION": CONSENT,
            "MARKET_HOURS": "*=24/7",
            "LOG_LEVEL": "INFO",
        }
        self.tmp = tmp
        self.runs = 0

    async def start(self) -> tuple[subprocess.Popen[bytes], Path]:
        self.runs += 1
        stderr = self.tmp / f"stderr-{self.runs}.log"
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("tradebot")), "run"],
            cwd=self.tmp,  # no .env of the repository
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=stderr.open("wb"),
        )
        deadline = time.monotonic() + 240  # a loaded shared machine imports slowly
        async with ClientSession() as http:
            while True:
                assert proc.poll() is None, stderr.read_text()
                try:
                    async with http.get(f"http://127.0.0.1:{self.port}/healthz") as resp:
                        if resp.status == 200:
                            return proc, stderr
                except OSError:
                    pass
                assert time.monotonic() < deadline, "tradebot run did not come up"
                await asyncio.sleep(0.1)


async def wait_exit(proc: subprocess.Popen[bytes], seconds: float) -> int | None:
    deadline = time.monotonic() + seconds
    while proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return proc.poll()


async def seed(db: Database) -> None:
    now = datetime.now(UTC)
    async with db.session() as session:
        users = [
            User(telegram_id=FIRST_TG + i, referral_code=f"S{i}", consent_version=CONSENT, consented_at=now)
            for i in range(SUBSCRIBERS)
        ]
        session.add_all(users)
        await session.flush()
        session.add_all(ExecutionAccount(owner_id=u.id, kind="paper", balance=Decimal(10_000)) for u in users)
        # encrypted under the product's SECRET_KEY: `tradebot run` checks it can read stored secrets
        secret = SecretBox(SECRET_KEY).encrypt("producer-secret")
        session.add(Producer(id="p-shutdown", name="p", secret_enc=secret, token_digest="d" * 64))


async def backlog(db: Database, n: int) -> None:
    """``n`` accepted signals and their events, committed at once (as ingest would, only faster)."""
    now = datetime.now(UTC)
    signals = [
        {
            "id": uuid4(),
            "producer_id": "p-shutdown",
            "idempotency_key": f"k-{i}",
            "body_hash": "h",
            "instrument": "EURUSD",
            "side": "buy",
            "order_type": "market",
            "sl": Decimal("1.098"),
            "tp": Decimal("1.104"),
            "risk_percent": Decimal(1),
            "ttl_seconds": 3600,
            "status": "accepted",
            "received_at": now,
            "expires_at": now + timedelta(hours=1),
        }
        for i in range(n)
    ]
    events = [
        {"event_id": uuid4(), "type": SIGNAL_ACCEPTED, "payload": {"signal_id": s["id"]}, "created_at": now}
        for s in signals
    ]
    async with db.engine.begin() as conn:
        await conn.execute(insert(Signal), signals)
        await conn.execute(insert(DomainEvent), events)


async def counts(db: Database) -> dict[str, Any]:
    async with db.sessions() as session:

        async def n(model: Any, *where: Any) -> int:
            return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

        return {
            "pending_events": await n(DomainEvent, DomainEvent.processed_at.is_(None)),
            "accepted": await n(Signal, Signal.status == "accepted"),
            "dispatched": await n(Signal, Signal.status == "dispatched"),
            "decisions": await n(Decision),
            "dms": await n(OutboxMessage, OutboxMessage.dedupe_key.like("signal:%")),
        }


def clean(stderr: Path) -> str:
    text = stderr.read_text()
    assert "Traceback" not in text and "CancelledError" not in text, text[-4000:]
    return text


async def test_sigterm_with_a_backlog_exits_0_and_the_next_start_finishes_it(
    tmp_path: Path, emulator: BotAPIEmulator
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'tradebot.db'}"
    await upgrade_async(url)
    db = Database(url)
    try:
        await seed(db)
        client = EmulatorClient(emulator.base_url)
        for i in range(SUBSCRIBERS):
            await client.add_user(FIRST_TG + i, f"S{i}")
        await client.close()
        product = Product(tmp_path, url, emulator)

        proc, stderr = await product.start()
        await backlog(db, SIGNALS)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        code = await wait_exit(proc, STOP_DEADLINE + 5)
        took = time.monotonic() - sent
        assert code == 0, clean(stderr)[-4000:]
        assert took < STOP_DEADLINE + 2, took
        clean(stderr)
        first = await counts(db)
        # nothing done twice, nothing half done: each signal is either still waiting or fully planned
        assert first["accepted"] + first["dispatched"] == SIGNALS
        assert first["decisions"] == first["dispatched"] * SUBSCRIBERS

        proc, stderr = await product.start()

        async def settled() -> dict[str, Any] | None:
            now = await counts(db)
            return now if now["pending_events"] == 0 and now["dms"] == SIGNALS * SUBSCRIBERS else None

        deadline = time.monotonic() + 120
        final = await settled()
        while final is None:
            assert proc.poll() is None, clean(stderr)[-4000:]
            assert time.monotonic() < deadline, await counts(db)
            await asyncio.sleep(0.2)
            final = await settled()
        proc.send_signal(signal.SIGTERM)
        assert await wait_exit(proc, STOP_DEADLINE + 5) == 0
        clean(stderr)
        assert final["accepted"] == 0 and final["dispatched"] == SIGNALS
        assert final["decisions"] == SIGNALS * SUBSCRIBERS  # exactly once across the two runs
    finally:
        await db.dispose()
