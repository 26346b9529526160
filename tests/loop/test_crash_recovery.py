"""The proof: ``tradebot run`` SIGKILLed at random moments loses nothing and repeats nothing.

The real process runs against the Bot API emulator (in this test process) and the simulated
MT5 terminal (a state file that outlives the process). Subscribers with linked MT5 accounts get
a burst of signals and tap Approve; meanwhile the process is SIGKILLed at seeded random
moments and restarted. A subscriber whose tap was lost taps again, as a person would. At the
end (after a graceful SIGTERM, exit status 0):
- every approval has at most one order in the store and at most one order at the terminal;
  every approval was executed (the subscribers kept tapping until it was);
- the store equals the terminal: the same open positions (ticket, volume), every filled order's
  position there, no order left in flight;
- every subscriber got each signal's message exactly once, and it shows the fill.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientError, ClientSession, ClientTimeout
from sqlalchemy import func, select

from bot.callbacks import APPROVE, DecisionCb
from emulator import BotAPIEmulator, EmulatorClient
from engine.ingest.producers import ProducerService
from engine.ingest.signing import signature_header
from engine.settings import load_settings
from engine.store.db import Database, utcnow
from engine.store.models import AuditLog, Decision, DomainEvent, Order, OutboxMessage, Position, Subscription
from mt5sim import control
from tests.support.bot_world import SECRET_KEY
from tests.support.ports import free_port
from tests.support.telegram import LOOSE_EMULATOR, TOKEN, buttons
from tradebot.app import build_services

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
USERS = (301, 302, 303)
SIGNALS = 5
KILLS = 2
CONSENT = "2026-11"
SERVER = "MT5Sim-Demo"


def login_of(uid: int) -> int:
    return 80000 + uid


class Process:
    """One ``tradebot run``; SIGKILLed and started again by the test."""

    def __init__(self, env: dict[str, str], log: Path, port: int) -> None:
        self.env, self.log, self.port = env, log, port
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1
        with self.log.open("a") as log:
            log.write(f"\n===== start {self.starts} =====\n")
        out = self.log.open("a")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tradebot.cli", "run", env=self.env, cwd=ROOT, stdout=out, stderr=out
        )
        out.close()
        await self.ready()

    async def ready(self, timeout: float = 60.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        async with ClientSession(timeout=ClientTimeout(total=2)) as http:
            while True:
                assert self.proc is not None and self.proc.returncode is None, self.tail()
                try:
                    async with http.get(f"http://127.0.0.1:{self.port}/healthz") as resp:
                        if resp.status == 200:
                            return
                except (ClientError, TimeoutError):
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError("tradebot run did not come up:\n" + self.tail())
                await asyncio.sleep(0.1)

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), timeout)

    def tail(self) -> str:
        return "\n".join(self.log.read_text().splitlines()[-60:]) if self.log.exists() else ""


async def post_signal(port: int, producer: Any, body: dict[str, Any]) -> None:
    """A producer delivering a signal: retried until the server answers (it may be down)."""
    raw = json.dumps(body).encode()
    async with ClientSession(timeout=ClientTimeout(total=5)) as http:
        while True:
            headers = {
                "Content-Type": "application/json",
                "X-Producer-Id": producer.id,
                "X-Signature": signature_header(producer.secret, raw),
            }
            try:
                async with http.post(
                    f"http://127.0.0.1:{port}/api/v1/signals", data=raw, headers=headers
                ) as resp:
                    if resp.status in (200, 201):
                        return
            except (ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.1)


def note_of(seed: int, n: int) -> str:
    return f"crash-{seed}-{n}"


async def the_dm(client: EmulatorClient, uid: int, note: str) -> list[dict[str, Any]]:
    return [m for m in await client.messages(uid) if note in (m.get("text") or "")]


APPROVE_PREFIX = DecisionCb(action=APPROVE, decision_id="x").pack().removesuffix("x")


async def subscribers_tap(client: EmulatorClient, seed: int, stop: asyncio.Event) -> int:
    """Each subscriber approves every signal DM still showing its buttons, again if a tap was lost."""
    taps = 0
    while not stop.is_set():
        for uid in USERS:
            for n in range(SIGNALS):
                for message in await the_dm(client, uid, note_of(seed, n)):
                    # Approve only: a filled signal keeps Close / Close 50 % / Stop → entry buttons
                    data = [b for b in buttons(message) if b.startswith(APPROVE_PREFIX)]
                    if data:
                        await client.tap(uid, uid, message["message_id"], data[0])
                        taps += 1
        await asyncio.sleep(0.4)
    return taps


async def in_flight(db: Database) -> bool:
    async with db.session() as s:
        return bool(await s.scalar(select(Order.id).where(Order.status == "submitting").limit(1)))


async def settled(db: Database, client: EmulatorClient, seed: int) -> bool:
    async with db.session() as s:
        approved = await s.scalar(
            select(func.count()).select_from(Decision).where(Decision.status == "approved")
        )
        statuses = Counter((await s.scalars(select(Order.status))).all())
        outbox = await s.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "pending")
        )
        events = await s.scalar(
            select(func.count()).select_from(DomainEvent).where(DomainEvent.processed_at.is_(None))
        )
    if approved != len(USERS) * SIGNALS or statuses != Counter({"filled": approved}) or outbox or events:
        return False
    for uid in USERS:
        for n in range(SIGNALS):
            dms = await the_dm(client, uid, note_of(seed, n))
            if not dms or "Filled" not in dms[-1]["text"]:
                return False
    return True


@pytest.mark.parametrize("seed", [11, 22, 33])
async def test_sigkill_at_random_moments_loses_and_repeats_nothing(tmp_path, monkeypatch, seed):
    rng = random.Random(seed)
    sim = tmp_path / "mt5sim.sqlite3"
    monkeypatch.setenv("MT5SIM_STATE", str(sim))
    control.ignore_market_hours(state=sim)
    control.set_price("EURUSD", Decimal("1.10000"), Decimal("1.10010"), state=sim)
    for uid in USERS:
        control.create_account(login_of(uid), f"pw-{uid}", server=SERVER, balance=10000, state=sim)
    control.latency(0.4, func="order_send", state=sim)  # orders spend time in flight: kills land there

    emulator = BotAPIEmulator(LOOSE_EMULATOR)
    await emulator.start()
    client = EmulatorClient(emulator.base_url)
    port = free_port()
    url = f"sqlite+aiosqlite:///{tmp_path / 'tradebot.db'}"
    values = {
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": emulator.base_url,
        "TELEGRAM_MODE": "polling",
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
        "LOG_LEVEL": "INFO",
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
        await setup.accounts.link_mt5(uid, login_of(uid), f"pw-{uid}", SERVER, actor="test")
        async with setup.db.session() as session:  # the plan that covers MT5 execution, paid
            user = await setup.subscribers.get(uid)
            assert user is not None
            session.add(Subscription(user_id=user.id, plan="pro", expires_at=utcnow() + timedelta(days=30)))
    producer = await ProducerService(setup.db, setup.secrets).add("crash-test")
    await setup.brokers.close()
    await setup.db.dispose()

    process = Process(env, tmp_path / "tradebot.log", port)
    db = Database(url)
    stop_tapping = asyncio.Event()
    try:
        await process.start()
        tapper = asyncio.create_task(subscribers_tap(client, seed, stop_tapping))

        async def burst() -> None:
            for n in range(SIGNALS):
                body = {
                    "id": note_of(seed, n),
                    "instrument": "EURUSD",
                    "side": "buy",
                    "entry": "1.10010",
                    "sl": "1.09800",
                    "tp": "1.10400",
                    "risk_percent": 1,
                    "note": note_of(seed, n),
                }
                await post_signal(port, producer, body)
                await asyncio.sleep(rng.uniform(0.05, 0.4))

        async def killer() -> None:
            # First the moment an order is in flight (at the broker, not yet recorded), then at a
            # random moment of what follows.
            deadline = asyncio.get_running_loop().time() + 30
            while not await in_flight(db):
                assert asyncio.get_running_loop().time() < deadline, "no order ever in flight"
                await asyncio.sleep(0.01)
            await asyncio.sleep(rng.uniform(0.0, 0.2))
            await process.kill()
            await asyncio.sleep(rng.uniform(0.0, 0.5))
            await process.start()
            await asyncio.sleep(rng.uniform(0.2, 2.0))
            await process.kill()
            await asyncio.sleep(rng.uniform(0.0, 0.5))
            await process.start()

        await asyncio.gather(burst(), killer())
        deadline = asyncio.get_running_loop().time() + 90
        while not await settled(db, client, seed):
            assert asyncio.get_running_loop().time() < deadline, "did not settle:\n" + process.tail()
            await asyncio.sleep(0.5)
        stop_tapping.set()
        await tapper
        # Telegram: every subscriber got each signal, and its message shows the fill. A message is
        # sent twice only when a kill landed between Telegram accepting it and the outbox recording
        # that (the Bot API cannot be asked whether it arrived); each such resend is audited, and
        # no copy appears that an audited in-doubt resend does not explain.
        async with db.session() as s:
            in_doubt = Counter(
                (
                    await s.scalars(
                        select(AuditLog.target).where(AuditLog.action == "outbox.resend_in_doubt")
                    )
                ).all()
            )
        for uid in USERS:
            extra = 0
            for n in range(SIGNALS):
                dms = await the_dm(client, uid, note_of(seed, n))
                assert dms and "Filled" in dms[-1]["text"], (uid, n, dms)
                extra += len(dms) - 1
            assert len(await client.messages(uid)) == SIGNALS + extra  # nothing else twice
            assert extra <= in_doubt[f"chat:{uid}"], (uid, extra, in_doubt)
        assert await process.terminate() == 0, process.tail()
    finally:
        stop_tapping.set()
        if process.proc is not None and process.proc.returncode is None:
            process.proc.kill()
            await process.proc.wait()
        await client.close()
        await emulator.stop()

    state = control.dump(state=sim)
    async with db.session() as s:
        decisions = list((await s.scalars(select(Decision).where(Decision.status == "approved"))).all())
        orders = list((await s.scalars(select(Order))).all())
        positions = list((await s.scalars(select(Position).where(Position.status == "open"))).all())
        orphaned = await s.scalar(
            select(func.count()).select_from(AuditLog).where(AuditLog.action == "order.orphaned")
        )
    await db.dispose()
    control.close()

    # Exactly once where money moves: one order per approval, in the store and at the terminal.
    assert len(decisions) == len(USERS) * SIGNALS
    by_decision = Counter(o.decision_id for o in orders)
    assert set(by_decision) == {d.id for d in decisions} and set(by_decision.values()) == {1}
    at_terminal = Counter(o["comment"] for o in state["orders"] if o["comment"].startswith("tb-"))
    assert at_terminal == Counter({o.client_order_id: 1 for o in orders}), at_terminal
    entries = Counter(
        d["comment"] for d in state["deals"] if d["comment"].startswith("tb-") and d["entry"] == 0
    )
    assert entries == at_terminal

    # The store equals the terminal.
    terminal_open = {str(p["ticket"]): Decimal(p["volume"]) for p in state["positions"]}
    assert {p.ticket: p.volume for p in positions} == terminal_open
    assert {o.position_ticket for o in orders} == set(terminal_open)
    assert all(not p.external for p in positions)

    # The first kill hit an order in flight: the restarted process looked it up instead of waiting.
    assert process.starts == KILLS + 1 and orphaned >= 1
