"""Three ``tradebot run`` instances on one PostgreSQL and one Redis, behind a round-robin balancer,
with the Bot API emulator (Telegram's limits on) posting updates to the balancer's webhook and the
simulated MT5 terminal (a state file shared by the processes):

1. the MT5 accounts are spread evenly (one owner each) and one instance leads the trading loop;
2. a signal fans out to every subscriber with 0 x 429 (one send budget, shared through Redis);
3. every subscriber approves; a third of the way through, a non-leader instance is SIGKILLed: every
   approval is executed exactly once (one order per approval in the store, one at the terminal),
   its MT5 accounts by whichever instance takes them over;
4. the leader is SIGKILLed: the last instance runs the trading loop within the lease time plus 2 s
   (the advisory lock goes with the dead connection; a standby asks every second), takes over every
   MT5 account after its lease, and its store matches the terminal;
5. a graceful SIGTERM hands everything back (no lease, no instance row left) with exit status 0.

The issue asks for 300 subscribers; 90 (12 of them on MT5) keep this under a minute on two cores
with the same paths exercised. bench/scaleout.py measures the larger figures.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from emulator import BotAPIEmulator, EmulatorClient, EmulatorConfig
from engine.ingest.producers import ProducerService
from engine.settings import load_settings
from engine.store.db import Database
from engine.store.models import (
    AccountLease,
    Decision,
    EngineState,
    ExecutionAccount,
    Instance,
    Order,
    Position,
)
from mt5sim import control
from sandbox.balancer import RoundRobin
from sandbox.cluster import InstanceProcess as Process
from tests.support.bot_world import SECRET_KEY
from tests.support.cluster import fresh_pg_database, post_signal
from tests.support.ports import free_port
from tests.support.redis import REDIS_URL
from tests.support.telegram import buttons
from tests.support.waiting import eventually
from tradebot.app import build_services

pytestmark = pytest.mark.slow

SUBSCRIBERS = 90
ON_MT5 = 12  # the first twelve link an MT5 account: four per instance
INSTANCES = 3
LEASE = 3.0  # ACCOUNT_LEASE_SECONDS
CONSENT = "2026-11"
SERVER = "MT5Sim-Demo"
NOTE = "scale-out test"
SECRET = "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
OPERATOR = 49_999  # the operator's own MT5 login (paper prices)


def uid_of(n: int) -> int:
    return 8_300_000 + n


def login_of(uid: int) -> int:
    return 40_000 + uid % 1000


async def spread(instances: list[Process], mt5_ids: set[int]) -> dict[str, Any] | None:
    """Every running instance ready, the MT5 accounts split evenly, exactly one leader."""
    docs = {p.name: await p.readyz() for p in instances if p.running}
    if any(d is None or "instance" not in d for d in docs.values()):
        return None
    owned = {name: set(d["instance"]["accounts"]) for name, d in docs.items() if d}
    leaders = [name for name, d in docs.items() if d and d["instance"]["leader"]]
    counts = sorted(len(v) for v in owned.values())
    even = counts[-1] - counts[0] <= 1 if counts else False
    if set().union(*owned.values()) != mt5_ids or sum(counts) != len(mt5_ids) or not even:
        return None
    return {"owned": owned, "leader": leaders[0]} if len(leaders) == 1 else None


async def signal_dm(client: EmulatorClient, uid: int) -> dict[str, Any] | None:
    return next((m for m in await client.messages(uid) if NOTE in (m.get("text") or "")), None)


async def approvals(db: Database) -> int:
    async with db.session() as s:
        return int(
            await s.scalar(select(func.count()).select_from(Decision).where(Decision.status == "approved"))
            or 0
        )


async def settled(db: Database) -> bool:
    async with db.session() as s:
        statuses = Counter((await s.scalars(select(Order.status))).all())
    return await approvals(db) == SUBSCRIBERS and statuses == Counter({"filled": SUBSCRIBERS})


async def subscribers_approve(client: EmulatorClient, db: Database, stop: asyncio.Event) -> int:
    """Each subscriber taps Approve, in random order; one whose approval has not been recorded five
    seconds later taps again (as a person would when nothing happens)."""
    tapped: dict[int, float] = {}
    taps = 0
    loop = asyncio.get_running_loop()
    order = [uid_of(n) for n in range(SUBSCRIBERS)]
    random.Random(16).shuffle(order)
    while not stop.is_set():
        async with db.session() as s:
            approved_users = set(
                (await s.scalars(select(Decision.user_id).where(Decision.status == "approved"))).all()
            )
        for uid in order:
            if uid in tapped and loop.time() - tapped[uid] < 5.0:
                continue
            if USER_IDS.get(uid) in approved_users:
                continue
            message = await signal_dm(client, uid)
            data = buttons(message) if message else []
            if data:
                await client.tap(uid, uid, message["message_id"], data[0])  # type: ignore[index]
                tapped[uid] = loop.time()
                taps += 1
        await asyncio.sleep(0.2)
    return taps


USER_IDS: dict[int, int] = {}  # Telegram id -> users.id, filled at set-up


async def test_three_instances_share_the_work_and_survive_sigkills(tmp_path: Path, monkeypatch: Any) -> None:
    sim = tmp_path / "mt5sim.sqlite3"
    monkeypatch.setenv("MT5SIM_STATE", str(sim))
    control.ignore_market_hours(state=sim)
    control.set_price("EURUSD", Decimal("1.10000"), Decimal("1.10010"), state=sim)
    users = [uid_of(n) for n in range(SUBSCRIBERS)]
    for uid in users[:ON_MT5]:
        control.create_account(login_of(uid), f"pw-{uid}", server=SERVER, balance=10000, state=sim)
    # The operator's terminal: paper accounts price from it, so every instance quotes the same.
    control.create_account(OPERATOR, "pw-operator", server=SERVER, balance=10000, state=sim)

    # Telegram's limits on; quick webhook retries, so an instance's death costs little time.
    emulator = BotAPIEmulator(EmulatorConfig(webhook_retry_initial=0.05, webhook_retry_max=0.5))
    await emulator.start()
    client = EmulatorClient(emulator.base_url)
    ports = [free_port() for _ in range(INSTANCES)]
    balancer = await RoundRobin([f"http://127.0.0.1:{p}" for p in ports]).start()
    bot_id = random.randint(7_000_000_000, 7_999_999_999)  # its own Redis keys
    processes: list[Process] = []
    async with fresh_pg_database() as url:
        values = {
            "BOT_TOKEN": f"{bot_id}:{SECRET}",
            "TELEGRAM_API_URL": emulator.base_url,
            "TELEGRAM_MODE": "webhook",
            "WEBHOOK_URL": balancer.url + "/telegram/webhook",
            "WEBHOOK_SECRET": "scaleout-secret-token",
            "TELEGRAM_LEASE_SECONDS": "10",
            "DATABASE_URL": url,
            "REDIS_URL": REDIS_URL,
            "SECRET_KEY": SECRET_KEY,
            "MT5_MODULE": "mt5sim",
            "MT5_LOGIN": str(OPERATOR),
            "MT5_PASSWORD": "pw-operator",
            "MT5_SERVER": SERVER,
            "BROKER": "paper",
            "INSTRUMENTS": "EURUSD",
            "MARKET_HOURS": "*=24/7",
            "CONSENT_VERSION": CONSENT,
            "HEARTBEAT_SECONDS": "1",
            "ACCOUNT_LEASE_SECONDS": str(int(LEASE)),
            "HTTP_HOST": "127.0.0.1",
            "LOG_LEVEL": "INFO",
        }
        settings = load_settings(_env_file=None, **{k.lower(): v for k, v in values.items()})
        setup = build_services(settings)
        for uid in users:
            await client.add_user(uid, f"User {uid}", username=f"user{uid}", language_code="en")
            await setup.subscribers.register(uid, first_name=f"User {uid}")
            await setup.subscribers.consent(uid, CONSENT)
            user = await setup.subscribers.get(uid)
            assert user is not None
            USER_IDS[uid] = user.id
        for uid in users[:ON_MT5]:
            await setup.accounts.link_mt5(uid, login_of(uid), f"pw-{uid}", SERVER, actor="test")
        producer = await ProducerService(setup.db, setup.secrets).add("scale-out")
        await setup.close()
        await setup.db.dispose()

        db = Database(url)
        async with db.session() as s:
            mt5_ids = set(
                (await s.scalars(select(ExecutionAccount.id).where(ExecutionAccount.kind == "mt5"))).all()
            )
        assert len(mt5_ids) == ON_MT5
        stop_tapping = asyncio.Event()
        try:
            processes = [
                Process(f"inst-{n + 1}", port, values, tmp_path / f"inst-{n + 1}.log")
                for n, port in enumerate(ports)
            ]
            clock = asyncio.get_running_loop().time
            phases = {"begin": clock()}
            await asyncio.gather(*(p.start() for p in processes))
            await asyncio.gather(*(p.ready() for p in processes))
            layout = await eventually(lambda: spread(processes, mt5_ids), timeout=30, interval=0.3)
            phases["started"] = clock()
            assert sorted(len(v) for v in layout["owned"].values()) == [4, 4, 4]

            # 2. one signal to every subscriber, within one budget
            await client.reset_stats()
            started = asyncio.get_running_loop().time()
            body = {"instrument": "EURUSD", "side": "buy", "sl": "1.09800", "tp": "1.10400", "note": NOTE}
            await post_signal(balancer.url, producer.id, producer.secret, body)

            # One cheap request while the messages go out: the emulator runs on this test's event loop
            # and times each message when it handles it, so heavy polling here would bunch them up.
            async def all_sent() -> bool:
                return int((await client.stats())["calls"].get("sendMessage", 0)) >= SUBSCRIBERS

            await eventually(all_sent, timeout=30, interval=0.25)
            fanout = asyncio.get_running_loop().time() - started
            assert all(await asyncio.gather(*(signal_dm(client, uid) for uid in users)))
            phases["fanned out"] = clock()
            stats = await client.stats()
            assert stats["too_many_requests"] == 0, stats
            assert fanout >= (SUBSCRIBERS - 30) / 30  # never faster than Telegram allows one bot

            # 3. approvals; a non-leader owning MT5 accounts dies a third of the way through
            tapper = asyncio.create_task(subscribers_approve(client, db, stop_tapping))
            await eventually(lambda: approvals_at_least(db, SUBSCRIBERS // 3), timeout=30, interval=0.05)
            victim = next(p for p in processes if p.name != layout["leader"])
            await victim.kill()
            try:
                await eventually(lambda: settled(db), timeout=45, interval=0.3)
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {await progress(db)}") from None
            stop_tapping.set()
            await tapper
            phases["approved"] = clock()

            # 4. the leader dies: the survivor leads, takes every account over, matches the terminal
            leader = next(p for p in processes if p.name == layout["leader"])
            survivor = next(p for p in processes if p.running and p is not leader)
            killed_at = asyncio.get_running_loop().time()
            await leader.kill()

            async def leads() -> bool:
                doc = await survivor.readyz()
                return bool(doc and doc["instance"]["leader"])

            await eventually(leads, timeout=LEASE + 5, interval=0.1)
            failover = asyncio.get_running_loop().time() - killed_at
            assert failover <= LEASE + 2, failover

            async def owns_everything() -> bool:
                doc = await survivor.readyz()
                return bool(doc and set(doc["instance"]["accounts"]) == mt5_ids)

            await eventually(owns_everything, timeout=LEASE + 10, interval=0.2)

            async def heartbeat_from_survivor() -> bool:
                async with db.session() as s:
                    beat = await s.get(EngineState, "heartbeat")
                return bool(beat and (beat.value or {}).get("instance") == survivor.name)

            await eventually(heartbeat_from_survivor, timeout=10, interval=0.2)
            assert await survivor.terminate() == 0, survivor.tail()
            phases["stopped"] = clock()
            marks = list(phases.items())
            print(
                "\nphases:", ", ".join(f"{k} +{v - marks[i][1]:.1f} s" for i, (k, v) in enumerate(marks[1:]))
            )
        finally:
            stop_tapping.set()
            for p in processes:
                await p.kill()
            await balancer.stop()
            await client.close()
            await emulator.stop()

        async with db.session() as s:
            orders = list((await s.scalars(select(Order))).all())
            decisions = list((await s.scalars(select(Decision).where(Decision.status == "approved"))).all())
            positions = list(
                (
                    await s.scalars(
                        select(Position).where(Position.status == "open", Position.account_id.in_(mt5_ids))
                    )
                ).all()
            )
            leases = (await s.scalars(select(AccountLease))).all()
            instances = (await s.scalars(select(Instance.id))).all()
        await db.dispose()
    state = control.dump(state=sim)
    control.close()

    # Exactly once: one order per approval in the store, one per MT5 order at the terminal.
    assert len(decisions) == SUBSCRIBERS
    assert Counter(o.decision_id for o in orders) == Counter({d.id: 1 for d in decisions})
    mt5_orders = {o.client_order_id for o in orders if o.account_id in mt5_ids}
    at_terminal = Counter(o["comment"] for o in state["orders"] if o["comment"].startswith("tb-"))
    assert at_terminal == Counter(dict.fromkeys(mt5_orders, 1)), at_terminal
    # The store equals the terminal for the accounts taken over.
    assert {p.ticket for p in positions} == {str(p["ticket"]) for p in state["positions"]}
    assert not any(p.external for p in positions)
    # The graceful stop handed back what the survivor held; the dead ones' rows are what is left.
    assert leases == [] and survivor.name not in instances
    print(f"\nscale-out: fan-out of {SUBSCRIBERS} in {fanout:.1f} s, 0 x 429; loop failover {failover:.1f} s")


async def progress(db: Database) -> str:
    async with db.session() as s:
        statuses = Counter((await s.scalars(select(Order.status))).all())
    return f"{await approvals(db)} approved, orders {dict(statuses)}"


async def approvals_at_least(db: Database, n: int) -> bool:
    return await approvals(db) >= n
