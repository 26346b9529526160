"""Channel mode: one post with buttons; each tap identifies the subscriber by the callback's ``from``."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from engine.store.models import Decision, Order, Signal
from tests.support.bot_world import CHANNEL, World, WorldFactory
from tests.support.telegram import BOT_USERNAME, buttons
from tests.support.waiting import eventually


async def channel_post(world: World) -> dict[str, Any]:
    return await world.wait_message(CHANNEL, lambda m: bool(buttons(m)) and "EURUSD" in (m.get("text") or ""))


async def test_channel_post_collects_approvals_by_tapper(world_factory: WorldFactory) -> None:
    world = await world_factory(signal_channel_id=CHANNEL)
    await world.subscribe(401)
    await world.subscribe(402, "es")
    await world.user(499, "Stranger")
    signal_id = await world.accept_signal()
    post = await channel_post(world)
    approve, reject = buttons(post)
    assert approve.startswith("c:a:") and reject.startswith("c:r:")
    links = [b.get("url") for row in post["reply_markup"]["inline_keyboard"] for b in row if b.get("url")]
    assert links == [f"https://t.me/{BOT_USERNAME}?start=channel"]
    assert [m for m in await world.messages(401) if "Stop loss" in (m.get("text") or "")] == []  # no DMs

    # The sender records the post's message id in the transaction after Telegram answers, so the
    # message can be visible in the chat a moment before the row says so: wait for the row.
    async def recorded() -> int | None:
        async with world.db.session() as session:
            signal = await session.get(Signal, signal_id)
        return None if signal is None else signal.channel_message_id

    assert await eventually(recorded, timeout=10) == post["message_id"]

    stranger = await world.tap(499, CHANNEL, post["message_id"], approve)
    assert stranger["show_alert"] is True and f"t.me/{BOT_USERNAME}?start=channel" in stranger["text"]

    first = await world.tap(401, CHANNEL, post["message_id"], approve)
    assert first["text"].startswith("✅ Approved.") and "DM" in first["text"]
    again = await world.tap(401, CHANNEL, post["message_id"], reject)
    assert again["text"] == "You already approved this signal."
    es = await world.tap(402, CHANNEL, post["message_id"], reject)
    assert es["text"] == "❌ Rechazada."

    result = await world.wait_text(401, "🟢 Filled:")
    assert "BUY EURUSD" in result["text"]
    async with world.db.session() as session:
        rows = (await session.scalars(select(Decision).order_by(Decision.user_id))).all()
        orders = (await session.scalars(select(Order))).all()
    assert [(d.via, d.status, d.chat_id, d.message_id) for d in rows] == [
        ("channel", "approved", CHANNEL, post["message_id"]),
        ("channel", "rejected", CHANNEL, post["message_id"]),
    ]
    assert rows[0].account_id is not None and [o.status for o in orders] == ["filled"]


async def test_concurrent_channel_taps_by_one_user_record_once(world_factory: WorldFactory) -> None:
    world = await world_factory(signal_channel_id=CHANNEL)
    await world.subscribe(410)
    await world.accept_signal()
    post = await channel_post(world)
    ids = await asyncio.gather(
        *(world.client.tap(410, CHANNEL, post["message_id"], buttons(post)[0]) for _ in range(5))
    )
    texts = [(await world.client.callback_answer(i, wait=5) or {}).get("text") for i in ids]
    assert sum(1 for t in texts if t and t.startswith("✅ Approved.")) == 1
    assert texts.count("You already approved this signal.") == 4

    async def one_order() -> bool:
        async with world.db.session() as session:
            return [o.status for o in (await session.scalars(select(Order))).all()] == ["filled"]

    await eventually(one_order)


async def test_channel_post_loses_its_buttons_on_expiry(world_factory: WorldFactory) -> None:
    world = await world_factory(signal_channel_id=CHANNEL)
    signal_id = await world.accept_signal()
    post = await channel_post(world)
    await world.expire_now(signal_id)
    await world.wait_message(
        CHANNEL, lambda m: m["message_id"] == post["message_id"] and "Expired" in m["text"]
    )
    edited = next(m for m in await world.messages(CHANNEL) if m["message_id"] == post["message_id"])
    assert buttons(edited) == []
