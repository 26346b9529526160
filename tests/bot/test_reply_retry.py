"""A handler's direct reply that meets a 429 waits out retry_after instead of being lost."""

from __future__ import annotations

from tests.support.bot_world import World


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
