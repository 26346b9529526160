"""Auto-execution end to end: an order without a tap, announced with a close button; /pause stops it."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from sqlalchemy import func, select

from bot.billing_texts import AutoCb
from engine.store.models import Decision, Order, Position, User
from tests.support.billing_bot import buy
from tests.support.bot_world import ADMIN, World
from tests.support.telegram import buttons
from tests.support.waiting import eventually

SIGNAL = {"instrument": "EURUSD", "side": "buy", "sl": "1.09800", "tp": "1.10400"}


async def orders(world: World) -> list[Order]:
    async with world.db.session() as s:
        return list((await s.scalars(select(Order).order_by(Order.created_at))).all())


async def test_auto_execution_announces_with_a_close_button_and_stops_when_paused(world: World) -> None:
    await world.subscribe(1001)
    await world.say(1001, "/auto on")
    await world.wait_text(1001, "does not include auto-execution")  # the free plan
    assert (await buy(world, 1001, "auto"))["status"] == "paid"
    await world.wait_text(1001, "Payment received")
    await world.say(1001, "/auto risk 0.5")
    await world.wait_text(1001, "Sizing: 0.5% of equity per trade")
    await world.say(1001, "/auto")
    panel = await world.wait_message(1001, lambda m: AutoCb(action="on").pack() in buttons(m))
    answer = await world.tap(1001, 1001, panel["message_id"], AutoCb(action="on").pack())
    assert answer["text"] == "Saved."
    await world.wait_text(1001, "Auto-execution: on")

    await world.post_signal({**SIGNAL, "id": "auto-1"})
    announced = await world.wait_message(1001, lambda m: "Auto-executed" in (m.get("text") or ""), 15)
    assert "BUY 0.23 EURUSD at 1.1001 (SL 1.098, TP 1.104)" in announced["text"]  # 0.5 % of 10,000
    [close] = buttons(announced)
    assert close == AutoCb(action="close", position_id=1).pack()
    [order] = await orders(world)
    assert order.status == "filled" and order.volume == Decimal("0.23")
    async with world.db.session() as s:
        decision = await s.get(Decision, order.decision_id)
    assert decision is not None and decision.via == "auto"
    # The signal's DM lost its Approve/Reject buttons: nothing to tap.
    dm = await world.wait_message(
        1001, lambda m: "Auto-executing with your risk settings" in (m.get("text") or "")
    )
    assert buttons(dm) == []

    # A forged tap (another user, the same callback data) closes nothing.
    await world.subscribe(1002)
    runtime = world.rt()
    forged = {
        "id": "forged-1",
        "from": {"id": 1002, "is_bot": False, "first_name": "Eve"},
        "chat_instance": "x",
        "data": close,
        "message": {**announced, "chat": {"id": 1002, "type": "private"}},
    }
    await runtime.dispatcher.feed_raw_update(runtime.bot, {"update_id": 10**9, "callback_query": forged})
    async with world.db.session() as s:
        assert (await s.scalar(select(Position.status))) == "open"
    closed = await world.tap(1001, 1001, announced["message_id"], close)
    assert closed["text"].startswith("Closed. Result:")
    async with world.db.session() as s:
        assert (await s.scalar(select(Position.status))) == "closed"
    await world.wait_text(1001, "Position closed")

    await world.user(ADMIN, "Admin")
    await world.say(ADMIN, "/pause")
    await world.wait_text(ADMIN, "Paused")
    await world.post_signal({**SIGNAL, "id": "auto-2"})
    await eventually(world.events_processed)  # signal.accepted has reached every subscriber
    assert len(await orders(world)) == 1
    async with world.db.session() as s:
        assert await s.scalar(select(func.count(Decision.id))) == 1

    await world.say(1001, "/auto off")
    await world.wait_text(1001, "Auto-execution: off")
    await world.say(ADMIN, "/resume")
    dm = await world.wait_message(1001, lambda m: bool(buttons(m)) and "EURUSD" in (m.get("text") or ""))
    await eventually(world.events_processed)
    await asyncio.sleep(0.5)  # a window for a wrong auto-execution to show (none may)
    assert len(await orders(world)) == 1  # turned off: the signal waits for a tap like any other
    assert await eventually(lambda: _pending(world))


async def _pending(world: World) -> bool:
    async with world.db.session() as s:
        user_id = await s.scalar(select(User.id).where(User.telegram_id == 1001))
        statuses = (await s.scalars(select(Decision.status).where(Decision.user_id == user_id))).all()
    return sorted(statuses) == ["approved", "pending"]
