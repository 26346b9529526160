"""The DM rows of a planned signal, built by the database (INSERT ... SELECT), on SQLite and
PostgreSQL: the same JSON payload on both, one row per decision, nothing twice."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Connection, select

from bot.callbacks import APPROVE, REJECT, DecisionCb
from bot.fanout import DmText, queue_dms
from engine.approvals.fanout import FanoutPlanner
from engine.settings import Settings
from engine.store.db import Database
from engine.store.models import Decision, ExecutionAccount, OutboxMessage, Producer, Signal, User

CONSENT = "2026-11"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


async def test_dm_rows_are_built_by_the_database_the_same_on_both(db: Database) -> None:
    now = datetime.now(UTC)
    async with db.session() as session:
        users = [
            User(
                telegram_id=8_100_000 + i,
                referral_code=f"Q{i}",
                consent_version=CONSENT,
                language=lang,
                notifications=quiet,
            )
            for i, (lang, quiet) in enumerate([("en", True), ("en", False), ("es", True)])
        ]
        session.add_all(users)
        await session.flush()
        session.add_all(ExecutionAccount(owner_id=u.id, kind="paper", balance=Decimal(1)) for u in users)
        producer = Producer(name="p", secret_enc="x", token_digest="d" * 64)
        session.add(producer)
        await session.flush()
        signal = Signal(
            producer_id=producer.id,
            idempotency_key="k",
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
    settings = Settings(_env_file=None, database_url=db.url, consent_version=CONSENT)  # type: ignore[call-arg]
    await FanoutPlanner(db, settings).plan([signal.id])
    placeholder = "\x00"
    dm = DmText(
        signal.id,
        "en",
        '<b>BUY</b> EURUSD "quoted" ✅',
        "✅ Approve",
        DecisionCb(action=APPROVE, decision_id=placeholder).pack().split(placeholder),
        "❌ Reject",
        DecisionCb(action=REJECT, decision_id=placeholder).pack().split(placeholder),
    )

    def queue(conn: Connection) -> int:
        return queue_dms(conn, dm)

    assert await db.writer.call(queue) == 2  # the two English readers
    assert await db.writer.call(queue) == 0  # handed over again: nothing new
    async with db.sessions() as session:
        decisions = {d.chat_id: d.id for d in (await session.scalars(select(Decision))).all()}
        rows = (await session.scalars(select(OutboxMessage).order_by(OutboxMessage.chat_id))).all()
    assert all(UUID.match(d) for d in decisions.values())
    assert [r.chat_id for r in rows] == [8_100_000, 8_100_001]
    for row, user in zip(rows, users[:2], strict=True):
        decision_id = decisions[user.telegram_id]
        assert row.dedupe_key == f"signal:{signal.id}:{user.telegram_id}"
        assert row.method == "sendMessage" and row.status == "pending" and row.attempts == 0
        assert row.payload == {
            "chat_id": user.telegram_id,
            "text": dm.text,
            "parse_mode": "HTML",
            "reply_markup": {
                "inline_keyboard": [
                    [
                        {
                            "text": "✅ Approve",
                            "callback_data": DecisionCb(action=APPROVE, decision_id=decision_id).pack(),
                        },
                        {
                            "text": "❌ Reject",
                            "callback_data": DecisionCb(action=REJECT, decision_id=decision_id).pack(),
                        },
                    ]
                ]
            },
            "disable_notification": not user.notifications,
            "_meta": {"decision_id": decision_id},
        }
