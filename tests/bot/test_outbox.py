"""The outbox against the emulator: 429 storms, 5xx outages, blocked users, restarts, Telegram's limits."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from sqlalchemy import select

from bot.ratelimit import RateLimits
from emulator import EmulatorConfig
from engine.store.models import OutboxMessage, User
from tests.support.bot_world import FAST, World, WorldFactory
from tests.support.waiting import eventually

NOTES = ("first", "second", "third")


async def outbox(world: World) -> list[OutboxMessage]:
    async with world.db.session() as session:
        return list((await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all())


async def signal_notes(world: World, uid: int) -> list[str]:
    """The notes of the signals a chat received, in the order the messages arrived."""
    out = []
    for m in await world.messages(uid):
        for note in NOTES:
            if f"Note: {note}" in (m.get("text") or ""):
                out.append(note)
    return out


async def all_delivered(world: World, uids: list[int], expected: list[str]) -> bool:
    for uid in uids:
        if await signal_notes(world, uid) != expected:
            return False
    return True


async def subscribers(world: World, first: int, count: int) -> list[int]:
    uids = list(range(first, first + count))
    for uid in uids:
        await world.subscribe(uid)
    return uids


async def test_429_storm_and_5xx_outage_delay_but_lose_nothing_and_keep_order(world: World) -> None:
    uids = await subscribers(world, 300, 4)
    await world.client.reset_stats()
    await world.client.faults("sendMessage", 429, count=2, retry_after=1)
    await world.client.faults("sendMessage", 502, count=6)
    for note in NOTES:
        await world.accept_signal(note=note)
    await eventually(lambda: all_delivered(world, uids, list(NOTES)), timeout=15)
    stats = await world.client.stats()
    assert _count_429(stats) == 2
    # the sender marks a row sent after Telegram answers: the last message can be visible first
    rows = await eventually(lambda: _all_signal_rows_sent(world, 12))
    assert stats["errors"] == {"429": 2, "502": 6}
    assert world.rt().sender.stats.rate_limited == 2 and world.rt().sender.stats.retried == 6
    assert sum(r.attempts for r in rows) == 12 + 6  # a 429 is a wait, not a failed attempt


def _count_429(stats: dict[str, Any]) -> int:
    return int(stats["too_many_requests"])


async def test_blocked_user_is_marked_and_gets_nothing_more(world: World) -> None:
    uids = await subscribers(world, 320, 2)
    runtime = world.rt()
    await runtime.stop_polling()  # the bot must learn it from the 403, not from my_chat_member
    await runtime.sender.stop()
    await world.accept_signal(note="first")
    await eventually(lambda: _rows(world, 2))
    await world.client.block(320)
    runtime.sender.start()
    await eventually(lambda: all_delivered(world, [321], ["first"]))

    async def blocked() -> bool:
        async with world.db.session() as session:
            user = await session.scalar(select(User).where(User.telegram_id == 320))
        return user is not None and user.status == "blocked"

    await eventually(blocked)
    failed = [r for r in await outbox(world) if r.chat_id == 320]
    assert [r.status for r in failed] == ["failed"] and (failed[0].last_error or "").startswith("403")
    assert await signal_notes(world, uids[0]) == []

    await world.accept_signal(note="second")
    await eventually(lambda: all_delivered(world, [321], ["first", "second"]))
    assert [r.status for r in await outbox(world) if r.chat_id == 320] == ["failed"]  # nothing new queued


async def _rows(world: World, n: int) -> bool:
    return len([r for r in await outbox(world) if r.dedupe_key.startswith("signal:")]) >= n


async def test_restart_sends_what_was_pending_exactly_once(world: World) -> None:
    uids = await subscribers(world, 340, 3)
    await world.client.faults("sendMessage", 503, count=10_000)
    await world.accept_signal(note="first")
    await eventually(lambda: _retried(world))
    await world.rt().stop()
    pending = [r for r in await outbox(world) if r.dedupe_key.startswith("signal:")]
    assert len(pending) == 3 and {r.status for r in pending} == {"pending"}
    await world.client.clear_faults()

    await world.start_bot()  # a new runtime (new Bot, dispatcher, sender) on the same database
    await eventually(lambda: all_delivered(world, uids, ["first"]))
    await eventually(lambda: _all_signal_rows_sent(world, 3))  # marked after Telegram answers
    for uid in uids:
        assert await signal_notes(world, uid) == ["first"]


async def _all_signal_rows_sent(world: World, expected: int) -> list[Any]:
    """The signal rows of the outbox once there are ``expected`` of them, all sent; else []."""
    rows = [r for r in await outbox(world) if r.dedupe_key.startswith("signal:")]
    return rows if len(rows) == expected and all(r.status == "sent" for r in rows) else []


async def _retried(world: World) -> bool:
    rows = [r for r in await outbox(world) if r.dedupe_key.startswith("signal:")]
    return len(rows) == 3 and all(r.attempts >= 1 for r in rows)


async def test_replayed_event_sends_nothing_twice(world: World) -> None:
    uids = await subscribers(world, 350, 2)
    signal_id = await world.accept_signal(note="first")
    await eventually(lambda: all_delivered(world, uids, ["first"]))
    from engine.store.events import SIGNAL_ACCEPTED, emit

    async with world.db.session() as session:
        emit(session, SIGNAL_ACCEPTED, signal_id=signal_id)
    world.services.relay.notify()
    await eventually(lambda: _all_events_processed(world))
    await asyncio.sleep(0.2)
    for uid in uids:
        assert await signal_notes(world, uid) == ["first"]


async def _all_events_processed(world: World) -> bool:
    from engine.store.models import DomainEvent

    async with world.db.session() as session:
        return await session.scalar(select(DomainEvent.id).where(DomainEvent.processed_at.is_(None))) is None


async def test_sends_stay_under_telegrams_limits(world_factory: WorldFactory) -> None:
    """The emulator enforces 60/s per bot and 2/s per chat (burst 2); the limiter keeps every send under."""
    limits = EmulatorConfig(
        global_per_second=60.0, per_chat_per_second=2.0, per_chat_burst=2, set_webhook_min_interval=0.0
    )
    config = replace(FAST, limits=RateLimits(global_per_second=60, per_chat_per_second=2, per_chat_burst=2))
    world = await world_factory(emulator_config=limits, config=config)
    uids = list(range(360, 400))
    for uid in uids:
        await world.user(uid)
    await world.client.reset_stats()
    async with world.db.session() as session:
        from bot.outbox import Outgoing, enqueue

        await enqueue(
            session,
            [
                Outgoing(f"t:{uid}:{n}", uid, "sendMessage", {"chat_id": uid, "text": f"n{n}"})
                for n in range(3)
                for uid in uids
            ],
        )
    world.rt().sender.wake()

    async def done() -> bool:
        return all(r.status == "sent" for r in await outbox(world) if r.dedupe_key.startswith("t:"))

    started = asyncio.get_running_loop().time()
    await eventually(done, timeout=20)
    elapsed = asyncio.get_running_loop().time() - started
    assert _count_429(await world.client.stats()) == 0
    assert elapsed >= 1.0  # 120 sends at 60/s cannot take less than about two seconds minus the first window
    for uid in uids[:5]:
        assert [m["text"] for m in await world.messages(uid)] == ["n0", "n1", "n2"]
