"""Fan-out planning (engine.approvals.fanout) on SQLite and PostgreSQL: who gets a signal, exactly
once even with two planners at the same moment, in a number of statements that does not grow
with the number of subscribers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, event, func, select

from engine.approvals.fanout import MODE_CHANNEL, MODE_DM, FanoutPlanner
from engine.risk.control import EngineControl
from engine.settings import Settings
from engine.store.db import Database
from engine.store.events import ENGINE_RESUMED, SIGNAL_ACCEPTED, SIGNAL_DISPATCHED, Event
from engine.store.models import AuditLog, Decision, DomainEvent, ExecutionAccount, Producer, Signal, User

CONSENT = "2026-11"
FIRST_TG = 7_000_000_001  # above any id the other helpers of this module use


def settings(db: Database, **overrides: Any) -> Settings:
    return Settings(_env_file=None, database_url=db.url, consent_version=CONSENT, **overrides)  # type: ignore[call-arg]


async def subscribers(db: Database, n: int, *, start: int = 0) -> list[User]:
    """``n`` consented, active subscribers with one active paper account each."""
    async with db.session() as session:
        users = [
            User(
                telegram_id=FIRST_TG + start + i,
                referral_code=f"R{start + i}",
                consent_version=CONSENT,
                consented_at=datetime.now(UTC),
                language="es" if i % 2 else "en",
            )
            for i in range(n)
        ]
        session.add_all(users)
        await session.flush()
        session.add_all(ExecutionAccount(owner_id=u.id, kind="paper", balance=Decimal(1000)) for u in users)
    return users


async def signals(db: Database, n: int, *, ttl: int = 900) -> list[str]:
    now = datetime.now(UTC)
    async with db.session() as session:
        producer = await session.scalar(select(Producer))
        if producer is None:
            producer = Producer(name="p", secret_enc="x", token_digest="d" * 64)
            session.add(producer)
            await session.flush()
        rows = [
            Signal(
                producer_id=producer.id,
                idempotency_key=f"k-{now.timestamp()}-{i}",
                body_hash="h",
                instrument="EURUSD",
                side="buy",
                sl=Decimal("1.098"),
                tp=Decimal("1.104"),
                risk_percent=Decimal(1),
                ttl_seconds=ttl,
                received_at=now + timedelta(microseconds=i),
                expires_at=now + timedelta(seconds=ttl),
            )
            for i in range(n)
        ]
        session.add_all(rows)
    return [r.id for r in rows]


def accepted(signal_id: str) -> Event:
    return Event(0, f"e-{signal_id}", SIGNAL_ACCEPTED, {"signal_id": signal_id}, datetime.now(UTC))


async def count(db: Database, model: Any, *where: Any) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def statuses(db: Database, ids: list[str]) -> set[str]:
    async with db.sessions() as session:
        return set((await session.scalars(select(Signal.status).where(Signal.id.in_(ids)))).all())


async def dispatched_events(db: Database) -> list[dict[str, Any]]:
    async with db.sessions() as session:
        return list(
            (
                await session.scalars(
                    select(DomainEvent.payload)
                    .where(DomainEvent.type == SIGNAL_DISPATCHED)
                    .order_by(DomainEvent.id)
                )
            ).all()
        )


@contextmanager
def statements() -> Iterator[list[str]]:
    """Every SQL statement any engine sends to its database meanwhile (executemany counts once)."""
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", before)


async def test_dm_plan_opens_one_decision_per_eligible_subscriber_and_dispatches(db: Database) -> None:
    eligible = await subscribers(db, 3)
    async with db.session() as session:
        # not consented, left, consented to an old version, no active account: none of them
        session.add(User(telegram_id=FIRST_TG + 100, referral_code="N1"))
        session.add(
            User(telegram_id=FIRST_TG + 101, referral_code="N2", consent_version=CONSENT, status="left")
        )
        session.add(User(telegram_id=FIRST_TG + 102, referral_code="N3", consent_version="2020-01"))
        inactive = User(telegram_id=FIRST_TG + 103, referral_code="N4", consent_version=CONSENT)
        session.add(inactive)
        await session.flush()
        session.add(ExecutionAccount(owner_id=inactive.id, kind="paper", active=False))
        # a second, newer account: the decision carries the newest active one
        newer = ExecutionAccount(owner_id=eligible[0].id, kind="paper", balance=Decimal(5))
        session.add(newer)
    ids = await signals(db, 2)
    planner = FanoutPlanner(db, settings(db))

    plan = await planner.plan(ids)

    assert plan.mode == MODE_DM and [p.signal_id for p in plan.signals] == ids
    assert [p.recipients for p in plan.signals] == [3, 3]
    assert await statuses(db, ids) == {"dispatched"}
    async with db.sessions() as session:
        rows = (
            await session.execute(
                select(
                    Decision.signal_id,
                    Decision.user_id,
                    Decision.account_id,
                    Decision.status,
                    Decision.via,
                    Decision.chat_id,
                )
            )
        ).all()
    assert {(r.signal_id, r.user_id) for r in rows} == {(s, u.id) for s in ids for u in eligible}
    assert {r.status for r in rows} == {"pending"} and {r.via for r in rows} == {"dm"}
    assert {r.account_id for r in rows if r.user_id == eligible[0].id} == {newer.id}
    assert {r.chat_id for r in rows} == {u.telegram_id for u in eligible}
    assert await count(db, AuditLog, AuditLog.action == "signal.dispatched") == 2
    assert await dispatched_events(db) == [
        {"mode": MODE_DM, "signals": [{"signal_id": s, "recipients": 3} for s in ids]}
    ]


async def test_a_replayed_plan_changes_nothing(db: Database) -> None:
    await subscribers(db, 2)
    ids = await signals(db, 2)
    planner = FanoutPlanner(db, settings(db))
    await planner.handle_batch([accepted(i) for i in ids])
    again = await planner.plan(ids)
    assert again.signals == []
    assert await count(db, Decision) == 4
    assert len(await dispatched_events(db)) == 1
    assert await count(db, AuditLog, AuditLog.action == "signal.dispatched") == 2


async def test_two_planners_at_once_plan_each_signal_exactly_once(db: Database) -> None:
    await subscribers(db, 20)
    ids = await signals(db, 30)
    other = Database(db.url)  # another instance: its own connections (and writer thread)
    try:
        first = FanoutPlanner(db, settings(db))
        second = FanoutPlanner(other, settings(other))
        plans = await asyncio.gather(
            first.plan(ids), second.plan(list(reversed(ids))), first.plan(ids[:10]), second.plan(ids[5:])
        )
    finally:
        await other.dispose()
    planned = [p.signal_id for plan in plans for p in plan.signals]
    assert sorted(planned) == sorted(ids)  # each signal by exactly one planner
    assert await count(db, Decision) == 20 * 30
    events = await dispatched_events(db)
    assert sorted(s["signal_id"] for e in events for s in e["signals"]) == sorted(ids)
    assert await count(db, AuditLog, AuditLog.action == "signal.dispatched") == 30


async def test_statements_do_not_grow_with_the_subscribers(db: Database) -> None:
    planner = FanoutPlanner(db, settings(db))
    await subscribers(db, 2)
    first = await signals(db, 3)
    with statements() as few:
        await planner.plan(first)
    await subscribers(db, 300, start=1000)
    more = await signals(db, 3)
    with statements() as many:
        plan = await planner.plan(more)
    assert plan.decisions == 3 * 302
    assert await count(db, Decision) == 3 * 2 + 3 * 302
    # the same few statements for 302 subscribers as for 2 (an INSERT batch holds up to 1,000 rows)
    assert len(many) == len(few) <= 8, many


async def test_nothing_moves_while_paused_and_the_backlog_goes_on_resume(db: Database) -> None:
    await subscribers(db, 2)
    control = EngineControl(db)
    await control.set_paused(True, "test")
    ids = await signals(db, 2)
    planner = FanoutPlanner(db, settings(db))
    plan = await planner.plan(ids)
    assert plan.paused and plan.signals == []
    assert await statuses(db, ids) == {"accepted"} and await count(db, Decision) == 0
    await control.set_paused(False, "test")
    resumed = Event(0, "e-r", ENGINE_RESUMED, {}, datetime.now(UTC))
    await planner.handle_batch([resumed])
    assert await statuses(db, ids) == {"dispatched"} and await count(db, Decision) == 4


async def test_expired_signals_are_not_planned(db: Database) -> None:
    await subscribers(db, 1)
    [expired] = await signals(db, 1)
    async with db.session() as session:
        row = await session.get(Signal, expired)
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    plan = await FanoutPlanner(db, settings(db)).plan([expired])
    assert plan.signals == [] and await statuses(db, [expired]) == {"accepted"}


async def test_channel_mode_opens_no_decisions(db: Database) -> None:
    await subscribers(db, 5)
    ids = await signals(db, 2)
    plan = await FanoutPlanner(db, settings(db, signal_channel_id=-1001)).plan(ids)
    assert plan.mode == MODE_CHANNEL and len(plan.signals) == 2
    assert await count(db, Decision) == 0 and await statuses(db, ids) == {"dispatched"}
    [payload] = await dispatched_events(db)
    assert payload["mode"] == MODE_CHANNEL


async def test_no_subscribers_dispatches_without_per_subscriber_work(db: Database) -> None:
    ids = await signals(db, 3)
    with statements() as seen:
        plan = await FanoutPlanner(db, settings(db)).plan(ids)
    assert [p.recipients for p in plan.signals] == [0, 0, 0]
    assert await statuses(db, ids) == {"dispatched"}
    assert await dispatched_events(db) == []  # nothing for the bot to render
    assert not any("INSERT INTO decisions" in s for s in seen)
