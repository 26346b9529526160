"""The bot renders what the engine planned: one DM per decision (text per language), queued in
one bulk insert, each exactly once however often the plan is handed over."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import delete, func, select

from bot.fanout import Fanout
from engine.store.events import SIGNAL_DISPATCHED
from engine.store.models import Decision, DomainEvent, ExecutionAccount, OutboxMessage, Signal, User
from tests.support.bot_world import World
from tests.support.factories import CONSENT
from tests.support.telegram import buttons
from tests.support.waiting import eventually

FIRST = 5_100_000


async def members(world: World, n: int) -> list[User]:
    """``n`` subscribers straight in the store (consented, one paper account each)."""
    async with world.db.session() as session:
        users = [
            User(
                telegram_id=FIRST + i,
                referral_code=f"F{i}",
                consent_version=CONSENT,
                consented_at=datetime.now(UTC),
                language="es" if i % 2 else "en",
                notifications=i % 3 != 0,
            )
            for i in range(n)
        ]
        session.add_all(users)
        await session.flush()
        session.add_all(ExecutionAccount(owner_id=u.id, kind="paper", balance=Decimal(1000)) for u in users)
    for user in users:
        await world.user(user.telegram_id, lang=user.language)
    return users


async def outbox_rows(world: World, signal_id: str) -> list[OutboxMessage]:
    async with world.db.sessions() as session:
        return list(
            (
                await session.scalars(
                    select(OutboxMessage).where(OutboxMessage.dedupe_key.like(f"signal:{signal_id}:%"))
                )
            ).all()
        )


async def test_every_decision_gets_one_dm_in_its_language_and_a_replay_queues_nothing(world: World) -> None:
    users = await members(world, 12)
    signal_id = await world.accept_signal()

    rows = await eventually(lambda: _rows_when(world, signal_id, 12))
    async with world.db.sessions() as session:
        decisions = {d.chat_id: d.id for d in (await session.scalars(select(Decision))).all()}
        [payload] = (
            await session.scalars(select(DomainEvent.payload).where(DomainEvent.type == SIGNAL_DISPATCHED))
        ).all()
    assert payload == {"mode": "dm", "signals": [{"signal_id": signal_id, "recipients": 12}]}
    by_chat = {r.chat_id: r.payload for r in rows}
    for user in users:
        sent = by_chat[user.telegram_id]
        assert sent["_meta"] == {"decision_id": decisions[user.telegram_id]}
        assert decisions[user.telegram_id] in sent["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        assert sent["disable_notification"] is (not user.notifications)
        assert ("Aprobar" in str(sent["reply_markup"])) is (user.language == "es")

    # the relay hands the event over again (a crash before it was marked): nothing new is queued
    assert await Fanout(world.rt().ctx).render(payload) == 0
    assert len(await outbox_rows(world, signal_id)) == 12

    es = next(u for u in users if u.language == "es")
    dm = await world.wait_message(es.telegram_id, lambda m: bool(buttons(m)))
    assert "EURUSD" in dm["text"] and "Aprobar" in str(dm["reply_markup"])


async def test_an_expired_signal_is_not_rendered(world: World) -> None:
    await members(world, 2)
    signal_id = await world.accept_signal()
    await eventually(lambda: _rows_when(world, signal_id, 2))
    async with world.db.sessions() as session:
        payload = await session.scalar(
            select(DomainEvent.payload).where(DomainEvent.type == SIGNAL_DISPATCHED)
        )
        await session.execute(delete(OutboxMessage))  # as if never queued
        await session.commit()
    async with world.db.session() as session:
        row = await session.get(Signal, signal_id)
        assert row is not None
        row.status = "expired"
    assert await Fanout(world.rt().ctx).render(payload) == 0
    async with world.db.sessions() as session:
        assert await session.scalar(select(func.count(OutboxMessage.id))) == 0


async def _rows_when(world: World, signal_id: str, n: int) -> list[OutboxMessage] | None:
    rows = await outbox_rows(world, signal_id)
    return rows if len(rows) == n else None
