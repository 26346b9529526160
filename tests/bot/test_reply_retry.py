"""A handler's direct reply that meets a 429 waits out retry_after instead of being lost."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from loguru import logger
from sqlalchemy import select

from engine.store.models import InboxUpdate
from tests.support.bot_world import FAST, World
from tests.support.waiting import eventually


async def test_help_reply_survives_flood_control(world: World) -> None:
    await world.subscribe(301, "en")
    before = len(await world.messages(301))
    await world.client.faults("sendMessage", 429, count=2, retry_after=1)
    await world.say(301, "/help")
    reply = await world.wait_text(301, "/settings", timeout=8.0)
    assert reply["message_id"] > 0
    assert len(await world.messages(301)) == before + 1  # delivered once, after waiting
    stats = await world.client.stats()
    assert stats["too_many_requests"] >= 2


async def test_a_flood_wait_longer_than_the_handler_waits_hands_the_update_back(world_factory: Any) -> None:
    """Telegram asks for more than the handler may wait: the update is not failed, it goes back to
    the inbox and is handled again after retry_after; the reply arrives once, nothing is logged as
    an error and the inbox row ends ``done``."""
    world: World = await world_factory(config=replace(FAST, reply_wait_seconds=0.5))
    errors: list[str] = []
    sink = logger.add(lambda m: errors.append(str(m)), level="ERROR")
    try:
        await world.subscribe(302, "en")
        before = len(await world.messages(302))
        await world.client.faults("sendMessage", 429, count=1, retry_after=2)
        started = asyncio.get_running_loop().time()
        await world.say(302, "/help")
        await world.wait_text(302, "/settings", timeout=10.0)
        assert asyncio.get_running_loop().time() - started >= 1.5  # waited for Telegram's retry_after
        assert len(await world.messages(302)) == before + 1

        async def settled() -> bool:
            async with world.db.session() as session:
                rows = (await session.scalars(select(InboxUpdate).where(InboxUpdate.chat_key == 302))).all()
            return bool(rows) and all(r.status == "done" for r in rows)

        await eventually(settled, timeout=5.0)
        assert errors == []
    finally:
        logger.remove(sink)
