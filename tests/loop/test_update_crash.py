"""A SIGKILL between claiming an update's row and the terminal's answer, then a restart: applied once.

The real ``tradebot run`` process, against the Bot API emulator and the simulated MT5 terminal (a
state file that outlives the process). Three subscribers hold a position from one signal. The
producer posts ``close 50 %``; the terminal executes each close but answers only seconds later
(``stall_after_execute``), and the process is SIGKILLed while every row is claimed and the closes
are done at the terminal. After a restart, the rows are resolved by looking at the terminal (the
deals carrying each row's client id): every row is applied, and each position was halved exactly
once, at the terminal and in the store.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from aiohttp import ClientSession, ClientTimeout
from sqlalchemy import select

from emulator import BotAPIEmulator
from engine.ingest.producers import ProducerService
from engine.ingest.signing import signature_header
from engine.settings import load_settings
from engine.store.db import Database
from engine.store.models import Decision, Position, PositionChange, Signal, Subscription, User
from mt5sim import control
from tests.support.bot_world import SECRET_KEY
from tests.support.ports import free_port
from tests.support.telegram import LOOSE_EMULATOR, TOKEN
from tradebot.app import build_services

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
USERS = (401, 402, 403)
SERVER = "MT5Sim-Demo"


async def _eventually(check, timeout: float = 40.0, what: str = "condition", log: Path | None = None) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            tail = log.read_text()[-4000:] if log is not None and log.exists() else ""
            raise AssertionError(f"timed out waiting for {what}\n{tail}")
        await asyncio.sleep(0.05)


async def _start(env: dict[str, str], log: Path, port: int) -> asyncio.subprocess.Process:
    out = log.open("a")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tradebot.cli", "run", env=env, cwd=ROOT, stdout=out, stderr=out
    )
    out.close()

    async def up() -> bool:
        assert proc.returncode is None, log.read_text()[-3000:]
        try:
            async with ClientSession(timeout=ClientTimeout(total=2)) as http:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    return resp.status == 200
        except Exception:
            return False

    await _eventually(up, timeout=90, what="tradebot run to come up", log=log)
    return proc


async def test_sigkill_between_claim_and_answer_applies_once(tmp_path, monkeypatch):
    sim = tmp_path / "mt5sim.sqlite3"
    monkeypatch.setenv("MT5SIM_STATE", str(sim))
    control.ignore_market_hours(state=sim)
    control.set_price("EURUSD", Decimal("1.10000"), Decimal("1.10010"), state=sim)
    for uid in USERS:
        control.create_account(80000 + uid, f"pw-{uid}", server=SERVER, balance=10000, state=sim)
    emulator = BotAPIEmulator(LOOSE_EMULATOR)
    await emulator.start()
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
        "CONSENT_VERSION": "2026-11",
        "LOG_LEVEL": "INFO",
    }
    env = {**os.environ, **values, "MT5SIM_STATE": str(sim), "PYTHONPATH": str(ROOT)}
    settings = load_settings(_env_file=None, **{k.lower(): v for k, v in values.items()})
    from engine.store.migrate import upgrade_async

    await upgrade_async(url)
    setup = build_services(settings)
    assert setup.subscribers is not None and setup.accounts is not None
    producer = await ProducerService(setup.db, setup.secrets).add("crash-updates")
    now = datetime.now(UTC)
    async with setup.db.session() as s:
        sig = Signal(
            producer_id=producer.id, external_id="s-1", idempotency_key="s-1", body_hash="h",
            instrument="EURUSD", side="buy", order_type="market", sl=Decimal("1.09800"),
            tp=Decimal("1.10400"), risk_percent=Decimal(1), ttl_seconds=900, status="dispatched",
            received_at=now, expires_at=now + timedelta(seconds=900),
        )  # fmt: skip
        s.add(sig)
    decisions = []
    for uid in USERS:
        await setup.subscribers.register(uid, first_name=f"User {uid}")
        await setup.subscribers.consent(uid, "2026-11")
        account, _ = await setup.accounts.link_mt5(uid, 80000 + uid, f"pw-{uid}", SERVER, actor="test")
        async with setup.db.session() as s:
            user = (await s.scalars(select(User).where(User.telegram_id == uid))).one()
            s.add(Subscription(user_id=user.id, plan="pro", expires_at=now + timedelta(days=30)))
            decision = Decision(
                signal_id=sig.id, user_id=user.id, account_id=account.id, status="approved",
                decided_at=now, consent_version="2026-11",
            )  # fmt: skip
            s.add(decision)
            await s.flush()
            decisions.append(decision.id)
    for decision_id in decisions:
        order = await setup.execution.execute_decision(decision_id)
        assert order is not None and order.status == "filled", order and order.reason
    await setup.brokers.close()
    await setup.db.dispose()

    db = Database(url)
    async with db.sessions() as s:
        before = {p.ticket: p.volume for p in (await s.scalars(select(Position))).all()}
    assert len(before) == len(USERS)
    control.stall_after_execute(8.0, count=None, state=sim)  # executed at once, answered 8 s later
    log = tmp_path / "tradebot.log"
    proc = await _start(env, log, port)
    try:
        raw = json.dumps({"action": "close", "percent": 50}).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Producer-Id": producer.id,
            "X-Signature": signature_header(producer.secret, raw),
        }
        async with ClientSession() as http:
            async with http.post(
                f"http://127.0.0.1:{port}/api/v1/signals/s-1/updates", data=raw, headers=headers
            ) as r:
                assert r.status == 202, await r.text()

        async def all_claimed_and_done_at_terminal() -> bool:
            async with db.sessions() as s:
                rows = (await s.scalars(select(PositionChange))).all()
            if len(rows) != len(USERS) or any(r.status != "claimed" for r in rows):
                return False
            deals = control.dump(state=sim)["deals"]
            return sum(1 for d in deals if str(d.get("comment", "")).startswith("tu-")) == len(USERS)

        await _eventually(all_claimed_and_done_at_terminal, what="every close claimed and executed", log=log)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        control.clear_faults(state=sim)
        proc = await _start(env, log, port)

        async def all_applied() -> bool:
            async with db.sessions() as s:
                rows = (await s.scalars(select(PositionChange))).all()
            return len(rows) == len(USERS) and all(r.status == "applied" for r in rows)

        await _eventually(all_applied, what="every row resolved and applied after the restart", log=log)
        deals = control.dump(state=sim)["deals"]
        closes = [d for d in deals if str(d.get("comment", "")).startswith("tu-")]
        assert len(closes) == len(USERS)  # one close per position, never a second
        async with db.sessions() as s:
            after = {p.ticket: p.volume for p in (await s.scalars(select(Position))).all()}
        for ticket, volume in before.items():
            half = (volume / 2).quantize(Decimal("0.01"), rounding="ROUND_DOWN")
            assert after[ticket] == volume - half
        positions = {
            str(p["ticket"]): Decimal(str(p["volume"])) for p in control.dump(state=sim)["positions"]
        }
        assert positions == after
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await db.dispose()
        await emulator.stop()
        control.close()
