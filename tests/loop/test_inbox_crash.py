"""Taps received just before a crash are not lost: the real ``tradebot run`` is SIGKILLed after
Telegram has confirmed six Approve taps and before they were handled, then restarted.

The window is made deterministic from both sides: the process holds stored updates for a few
seconds before handling them (``TELEGRAM_INBOX_HOLD_SECONDS``), and the emulator delays the
bot's answers to taps (so code that handles a tap at once is still mid-handling at the kill).
The kill comes once the emulator has no update left to deliver: each tap was confirmed (the next
``getUpdates`` offset, or a 200 to the webhook). After the restart every tap is answered exactly
once, each subscriber's approval is decided once, and each has exactly one order.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientError, ClientSession, ClientTimeout
from sqlalchemy import select

from emulator import BotAPIEmulator, EmulatorClient
from engine.ingest.producers import ProducerService
from engine.ingest.signing import signature_header
from engine.settings import load_settings
from engine.store.db import Database, utcnow
from engine.store.models import Decision, InboxUpdate, Order, Subscription
from mt5sim import control
from tests.support.bot_world import SECRET_KEY
from tests.support.ports import free_port
from tests.support.telegram import LOOSE_EMULATOR, TOKEN, buttons
from tests.support.waiting import eventually
from tradebot.app import build_services

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
USERS = tuple(range(351, 357))
CONSENT = "2026-11"
SERVER = "MT5Sim-Demo"
HOOK_SECRET = "inbox-crash_1"


class Process:
    def __init__(self, env: dict[str, str], log: Path, port: int) -> None:
        self.env, self.log, self.port = env, log, port
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, **extra_env: str) -> None:
        with self.log.open("a") as log:
            log.write("\n===== start =====\n")
        out = self.log.open("a")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tradebot.cli",
            "run",
            env={**self.env, **extra_env},
            cwd=ROOT,
            stdout=out,
            stderr=out,
        )
        out.close()
        deadline = asyncio.get_running_loop().time() + 60
        async with ClientSession(timeout=ClientTimeout(total=2)) as http:
            while True:
                assert self.proc.returncode is None, self.tail()
                try:
                    async with http.get(f"http://127.0.0.1:{self.port}/healthz") as resp:
                        if resp.status == 200:
                            return
                except (ClientError, TimeoutError):
                    pass
                assert asyncio.get_running_loop().time() < deadline, self.tail()
                await asyncio.sleep(0.1)

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 30)

    def tail(self) -> str:
        return "\n".join(self.log.read_text().splitlines()[-60:]) if self.log.exists() else ""


async def undelivered(base_url: str) -> int:
    """Updates the emulator still holds for the bot (not yet confirmed or not yet delivered)."""
    async with (
        ClientSession() as http,
        http.get(f"{base_url}/bot{TOKEN}/getWebhookInfo") as resp,
    ):
        return int((await resp.json())["result"]["pending_update_count"])


async def post_signal(port: int, producer: Any, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Producer-Id": producer.id,
        "X-Signature": signature_header(producer.secret, raw),
    }
    async with (
        ClientSession() as http,
        http.post(f"http://127.0.0.1:{port}/api/v1/signals", data=raw, headers=headers) as resp,
    ):
        assert resp.status == 201, await resp.text()


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_taps_confirmed_to_telegram_survive_a_sigkill_before_handling(tmp_path, monkeypatch, mode):
    sim = tmp_path / "mt5sim.sqlite3"
    monkeypatch.setenv("MT5SIM_STATE", str(sim))
    control.ignore_market_hours(state=sim)
    control.set_price("EURUSD", Decimal("1.10000"), Decimal("1.10010"), state=sim)
    for uid in USERS:
        control.create_account(80000 + uid, f"pw-{uid}", server=SERVER, balance=10000, state=sim)

    emulator = BotAPIEmulator(LOOSE_EMULATOR)
    await emulator.start()
    client = EmulatorClient(emulator.base_url)
    port = free_port()
    url = f"sqlite+aiosqlite:///{tmp_path / 'tradebot.db'}"
    values = {
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": emulator.base_url,
        "TELEGRAM_MODE": mode,
        "WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram/webhook",
        "WEBHOOK_SECRET": HOOK_SECRET,
        "DATABASE_URL": url,
        "SECRET_KEY": SECRET_KEY,
        "MT5_MODULE": "mt5sim",
        "BROKER": "mt5",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
        "INSTRUMENTS": "EURUSD",
        "MARKET_HOURS": "*=24/7",
        "CONSENT_VERSION": CONSENT,
        "HEARTBEAT_SECONDS": "1",
    }
    env = {**os.environ, **values, "MT5SIM_STATE": str(sim), "PYTHONPATH": str(ROOT)}
    settings = load_settings(_env_file=None, **{k.lower(): v for k, v in values.items()})

    from engine.store.migrate import upgrade_async

    await upgrade_async(url)
    setup = build_services(settings)
    assert setup.subscribers is not None and setup.accounts is not None
    for uid in USERS:
        await client.add_user(uid, f"User {uid}", username=f"user{uid}", language_code="en")
        await setup.subscribers.register(uid, first_name=f"User {uid}")
        await setup.subscribers.consent(uid, CONSENT)
        await setup.accounts.link_mt5(uid, 80000 + uid, f"pw-{uid}", SERVER, actor="test")
        async with setup.db.session() as session:
            user = await setup.subscribers.get(uid)
            assert user is not None
            session.add(Subscription(user_id=user.id, plan="pro", expires_at=utcnow() + timedelta(days=30)))
    producer = await ProducerService(setup.db, setup.secrets).add("inbox-crash")
    await setup.brokers.close()
    await setup.db.dispose()

    process = Process(env, tmp_path / "tradebot.log", port)
    db = Database(url)
    try:
        await process.start(TELEGRAM_INBOX_HOLD_SECONDS="8")
        note = f"inbox-{mode}"
        body = {"instrument": "EURUSD", "side": "buy", "entry": "1.10010", "sl": "1.09800"}
        await post_signal(port, producer, {**body, "tp": "1.10400", "note": note})

        async def offered() -> dict[int, dict[str, Any]] | None:
            found: dict[int, dict[str, Any]] = {}
            for uid in USERS:
                dm = [m for m in await client.messages(uid) if note in (m.get("text") or "") and buttons(m)]
                if not dm:
                    return None
                found[uid] = dm[-1]
            return found

        dms: dict[int, dict[str, Any]] = await eventually(offered, timeout=30)
        await client.faults("answerCallbackQuery", delay_ms=6000, count=len(USERS))
        queries = {
            uid: await client.tap(uid, uid, dm["message_id"], buttons(dm)[0]) for uid, dm in dms.items()
        }

        async def all_confirmed() -> bool:
            return await undelivered(emulator.base_url) == 0

        await eventually(all_confirmed, timeout=10, interval=0.01)
        await process.kill()  # Telegram has let go of the taps; none was handled yet

        async with db.session() as s:
            stored = (await s.scalars(select(InboxUpdate).where(InboxUpdate.status == "pending"))).all()
            decided = (await s.scalars(select(Decision).where(Decision.status == "approved"))).all()
        assert len(stored) == len(USERS) and decided == []  # the window: durable, not yet handled

        await client.clear_faults()
        await process.start()
        answers = {uid: await client.callback_answer(q, wait=30) for uid, q in queries.items()}
        assert all(a is not None and "Approved" in (a.get("text") or "") for a in answers.values()), answers

        async def filled() -> bool:
            async with db.session() as s:
                statuses = Counter((await s.scalars(select(Order.status))).all())
            return statuses == Counter({"filled": len(USERS)})

        await eventually(filled, timeout=30, interval=0.2)
        stats = await client.stats()
        assert stats["calls"]["answerCallbackQuery"] == len(USERS)  # each tap answered once
        async with db.session() as s:
            decisions = (await s.scalars(select(Decision).where(Decision.status == "approved"))).all()
            orders = (await s.scalars(select(Order))).all()
            left = (await s.scalars(select(InboxUpdate).where(InboxUpdate.status != "done"))).all()
        assert len(decisions) == len(USERS)
        assert Counter(o.decision_id for o in orders) == Counter({d.id: 1 for d in decisions})
        assert left == []
        assert await process.terminate() == 0, process.tail()
    finally:
        if process.proc is not None and process.proc.returncode is None:
            process.proc.kill()
            await process.proc.wait()
        await client.close()
        await emulator.stop()
        await db.dispose()
        control.close()
