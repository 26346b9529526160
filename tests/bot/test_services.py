"""The engine services behind the bot (approvals, subscribers, accounts) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.accounts.service import AccountError, AccountService
from engine.accounts.subscribers import StaleConsent, SubscriberService
from engine.approvals.fanout import FanoutPlanner
from engine.approvals.service import ApprovalService, Verdict
from engine.brokers.paper import PaperBroker
from engine.brokers.registry import BrokerRegistry
from engine.risk.control import EngineControl
from engine.settings import Settings
from engine.store.db import Database
from engine.store.events import SIGNAL_EXPIRED
from engine.store.models import (
    AuditLog,
    Decision,
    DomainEvent,
    ExecutionAccount,
    Position,
    Producer,
    Signal,
    User,
)
from tests.support.bot_world import SECRET_KEY
from tests.support.factories import CONSENT
from tests.support.prices import FixedPrices


class World:
    def __init__(self, db: Database, **overrides: Any) -> None:
        values: dict[str, Any] = {
            "database_url": db.url,
            "consent_version": CONSENT,
            "secret_key": SECRET_KEY,
        }
        values.update(overrides)
        self.db = db
        self.settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
        prices = FixedPrices()

        async def factory(account: ExecutionAccount) -> PaperBroker:
            return PaperBroker(db, account.id, prices=prices)

        self.executed: list[str] = []
        self.accounts = AccountService(db, self.settings, BrokerRegistry(factory), None)
        self.subscribers = SubscriberService(db, self.settings, self.accounts)
        self.approvals = ApprovalService(db, self.settings, self.accounts, None, self.executed.append)

    async def member(self, telegram_id: int) -> User:
        await self.subscribers.register(telegram_id, username=f"u{telegram_id}")
        result = await self.subscribers.consent(telegram_id, CONSENT)
        return result.user

    async def signal(self, *, ttl: int = 900) -> Signal:
        async with self.db.session() as session:
            producer = await session.scalar(select(Producer))
            if producer is None:
                producer = Producer(name="p", secret_enc="x", token_digest="d" * 64)
                session.add(producer)
                await session.flush()
            now = datetime.now(UTC)
            signal = Signal(
                producer_id=producer.id,
                idempotency_key=f"k{now.timestamp()}",
                body_hash="h",
                instrument="EURUSD",
                side="buy",
                sl=Decimal("1.098"),
                tp=Decimal("1.104"),
                risk_percent=Decimal(1),
                ttl_seconds=ttl,
                expires_at=now + timedelta(seconds=ttl),
            )
            session.add(signal)
        return signal

    async def pending(self, signal: Signal, message_id: int = 50) -> list[Decision]:
        await FanoutPlanner(self.db, self.settings).plan([signal.id])
        async with self.db.session() as session:
            rows = list(
                (await session.scalars(select(Decision).where(Decision.signal_id == signal.id))).all()
            )
            for row in rows:
                await self.approvals.record_message(session, row.id, message_id)
        return rows


async def test_concurrent_dm_taps_record_exactly_one_decision(db: Database) -> None:
    w = World(db)
    user = await w.member(11)
    [decision] = await w.pending(await w.signal())
    outcomes = await asyncio.gather(
        *(
            w.approvals.decide_dm(decision.id, telegram_id=11, chat_id=11, message_id=50, approve=True)
            for _ in range(8)
        )
    )
    verdicts = sorted(o.verdict for o in outcomes)
    assert verdicts.count(Verdict.APPROVED) == 1 and verdicts.count(Verdict.ALREADY_APPROVED) == 7
    assert w.executed == [decision.id]  # handed to execution once, after the commit
    async with db.session() as session:
        row = await session.get(Decision, decision.id)
        lines = (await session.scalars(select(AuditLog).where(AuditLog.action == "decision.approved"))).all()
        events = await session.scalar(
            select(func.count(DomainEvent.id)).where(DomainEvent.type == "decision.recorded")
        )
    assert row is not None and row.status == "approved" and row.account_id is not None
    assert row.consent_version == CONSENT and row.decided_at is not None and row.user_id == user.id
    assert len(lines) == 1 and lines[0].details["message_id"] == 50 and events == 1


async def test_forged_and_misrouted_taps_are_refused(db: Database) -> None:
    w = World(db)
    await w.member(21)
    await w.member(22)
    rows = await w.pending(await w.signal())
    mine = next(r for r in rows if r.chat_id == 21)
    other_user = await w.approvals.decide_dm(mine.id, telegram_id=22, chat_id=21, message_id=50, approve=True)
    other_chat = await w.approvals.decide_dm(mine.id, telegram_id=21, chat_id=22, message_id=50, approve=True)
    other_message = await w.approvals.decide_dm(
        mine.id, telegram_id=21, chat_id=21, message_id=51, approve=True
    )
    assert {other_user.verdict, other_chat.verdict, other_message.verdict} == {Verdict.NOT_YOURS}
    async with db.session() as session:
        assert (await session.get(Decision, mine.id)).status == "pending"  # type: ignore[union-attr]
        refused = await session.scalar(
            select(func.count(AuditLog.id)).where(AuditLog.action == "decision.refused")
        )
    assert refused == 3 and w.executed == []


async def test_expired_paused_and_stale_consent(db: Database) -> None:
    w = World(db)
    await w.member(31)
    signal = await w.signal()
    [decision] = await w.pending(signal)
    await EngineControl(db).set_paused(True, "tg:1")
    paused = await w.approvals.decide_dm(decision.id, telegram_id=31, chat_id=31, message_id=50, approve=True)
    assert paused.verdict is Verdict.PAUSED
    rejected_while_paused = await w.approvals.decide_dm(
        decision.id, telegram_id=31, chat_id=31, message_id=50, approve=False
    )
    assert rejected_while_paused.verdict is Verdict.REJECTED  # saying no is always allowed

    await EngineControl(db).set_paused(False, "tg:1")
    second = await w.signal()
    [d2] = await w.pending(second)
    w.settings.consent_version = "2099-01"
    stale = await w.approvals.decide_dm(d2.id, telegram_id=31, chat_id=31, message_id=50, approve=True)
    assert stale.verdict is Verdict.NEEDS_CONSENT
    w.settings.consent_version = CONSENT

    async with db.session() as session:
        row = await session.get(Signal, second.id)
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    late = await w.approvals.decide_dm(d2.id, telegram_id=31, chat_id=31, message_id=50, approve=True)
    assert late.verdict is Verdict.EXPIRED
    assert await w.approvals.expire_due() == [second.id]
    assert await w.approvals.expire_due() == []
    async with db.session() as session:
        assert (await session.get(Decision, d2.id)).status == "expired"  # type: ignore[union-attr]
        assert (await session.get(Signal, second.id)).status == "expired"  # type: ignore[union-attr]
        expired_events = await session.scalar(
            select(func.count(DomainEvent.id)).where(DomainEvent.type == SIGNAL_EXPIRED)
        )
    assert expired_events == 1 and w.executed == []


async def test_channel_taps_insert_one_decision_per_user(db: Database) -> None:
    w = World(db)
    await w.member(41)
    await w.subscribers.register(42)  # never consented
    signal = await w.signal()
    outcomes = await asyncio.gather(
        *(
            w.approvals.decide_channel(signal.id, telegram_id=41, chat_id=-100, message_id=7, approve=True)
            for _ in range(8)
        )
    )
    assert sorted(o.verdict for o in outcomes).count(Verdict.APPROVED) == 1
    assert sum(1 for o in outcomes if o.verdict is Verdict.ALREADY_APPROVED) == 7
    unknown = await w.approvals.decide_channel(
        signal.id, telegram_id=49, chat_id=-100, message_id=7, approve=True
    )
    unconsented = await w.approvals.decide_channel(
        signal.id, telegram_id=42, chat_id=-100, message_id=7, approve=True
    )
    assert unknown.verdict is Verdict.UNKNOWN_USER and unconsented.verdict is Verdict.NEEDS_CONSENT
    async with db.session() as session:
        rows = (await session.scalars(select(Decision))).all()
    assert [(r.via, r.status, r.chat_id, r.message_id) for r in rows] == [("channel", "approved", -100, 7)]
    assert len(w.executed) == 1


async def test_registration_is_idempotent_and_recipients_are_filtered(db: Database) -> None:
    w = World(db)
    results = await asyncio.gather(*(w.subscribers.register(51, language="es") for _ in range(5)))
    assert sum(1 for r in results if r.created) == 1
    referrer = results[0].user
    referred = await w.subscribers.register(52, start_payload=f"ref_{referrer.referral_code.lower()}")
    assert referred.user.referred_by_id == referrer.id and referred.user.start_payload.startswith("ref_")
    with pytest.raises(StaleConsent):
        await w.subscribers.consent(51, "1999-01")
    for uid in (51, 52, 53, 54):
        await w.subscribers.register(uid)
        await w.subscribers.consent(uid, CONSENT)
    await w.subscribers.register(55)  # no consent
    await w.subscribers.unsubscribe(53)
    await w.subscribers.mark_blocked(54)
    async with db.session() as session:
        recipients = await w.subscribers.recipients(session)
        users = await session.scalar(select(func.count(User.id)))
    assert [r.telegram_id for r in recipients] == [51, 52] and users == 5
    assert recipients[0].language == "es"
    again = await w.subscribers.register(53)
    assert again.reactivated and again.user.status == "active"


async def test_accounts_paper_default_listing_and_guards(db: Database) -> None:
    w = World(db)
    await w.member(61)
    first = await w.accounts.account_of(61)
    assert first is not None and first.kind == "paper" and first.balance == Decimal("10000")
    second = await w.accounts.create_paper(61, Decimal("2500"), actor="operator")
    assert (await w.accounts.account_of(61)).id == second.id  # type: ignore[union-attr]
    listed = await w.accounts.list_accounts(61, include_inactive=True)
    assert [(a.id, a.active) for a, _u in listed] == [(first.id, False), (second.id, True)]
    operator_made = await w.accounts.create_paper(777, None)  # a user the bot has not seen yet
    assert operator_made.owner_id is not None

    async with db.session() as session:
        session.add(
            Position(
                account_id=second.id,
                ticket="1",
                symbol="EURUSD",
                side="buy",
                volume=Decimal("0.1"),
                open_price=Decimal("1.1"),
            )
        )
    with pytest.raises(AccountError) as refused:
        await w.accounts.remove(second.id)
    assert refused.value.code == "open_positions"
    with pytest.raises(AccountError) as not_linked:
        await w.accounts.unlink_mt5(61, "tg:61")
    assert not_linked.value.code == "not_linked"
    with pytest.raises(AccountError) as no_key:
        await w.accounts.link_mt5(61, "5001", "pw", "Srv", "tg:61")  # built without a SecretBox
    assert no_key.value.code == "no_secret_key"
    with pytest.raises(AccountError) as bad_login:
        await w.accounts.link_mt5(61, "abc", "pw", "Srv", "tg:61")
    assert bad_login.value.code == "bad_login"
    removed = await w.accounts.remove(operator_made.id)
    assert not removed.active


async def test_broker_mt5_gives_no_account_on_consent(db: Database) -> None:
    w = World(db, broker="mt5")
    await w.subscribers.register(71)
    result = await w.subscribers.consent(71, CONSENT)
    assert result.account is None and result.first_time
    async with db.session() as session:
        assert await w.subscribers.recipients(session) == []


async def test_operator_created_user_takes_telegram_language_on_first_start(db: Database) -> None:
    w = World(db)
    await w.accounts.create_paper(61)  # the operator gave an account before the user ever wrote
    first = await w.subscribers.register(61, language="es")
    assert first.user.language == "es"
    await w.subscribers.consent(61, CONSENT)
    async with db.session() as session:
        user = await session.scalar(select(User).where(User.telegram_id == 61))
        user.language = "en"  # chosen in /settings after onboarding
    again = await w.subscribers.register(61, language="es")
    assert again.user.language == "en"  # a later /start keeps the user's own choice


async def test_the_mini_app_and_the_chat_decide_a_signal_once_between_them(db: Database) -> None:
    w = World(db)
    await w.member(41)
    await w.member(42)
    rows = await w.pending(await w.signal())
    mine = next(r for r in rows if r.chat_id == 41)
    stranger = await w.approvals.decide_own(mine.id, telegram_id=42, approve=True)
    assert stranger.verdict is Verdict.NOT_YOURS
    outcomes = await asyncio.gather(
        *(w.approvals.decide_own(mine.id, telegram_id=41, approve=True) for _ in range(4)),
        *(
            w.approvals.decide_dm(mine.id, telegram_id=41, chat_id=41, message_id=50, approve=True)
            for _ in range(4)
        ),
    )
    verdicts = [o.verdict for o in outcomes]
    assert verdicts.count(Verdict.APPROVED) == 1 and verdicts.count(Verdict.ALREADY_APPROVED) == 7
    assert w.executed == [mine.id]
    async with db.session() as session:
        row = await session.get(Decision, mine.id)
        [line] = (await session.scalars(select(AuditLog).where(AuditLog.action == "decision.approved"))).all()
        [refusal] = (
            await session.scalars(select(AuditLog).where(AuditLog.action == "decision.refused"))
        ).all()
    assert row is not None and row.status == "approved" and row.message_id == 50 and row.chat_id == 41
    assert line.details["source"] in ("miniapp", "chat") and line.details["message_id"] == 50
    assert refusal.actor == "tg:42" and refusal.details["reason"] == "not the owner of this decision"
