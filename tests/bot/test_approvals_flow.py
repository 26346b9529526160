"""Signal -> DM fan-out -> tap -> order -> the DM shows the fill; duplicate, concurrent, forged and late taps."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from sqlalchemy import func, select

from engine.store.models import AuditLog, Decision, Order, PaperOrder, Signal
from tests.support.bot_world import FAST, World, WorldFactory
from tests.support.telegram import buttons
from tests.support.waiting import eventually


async def signal_dm(world: World, uid: int) -> dict[str, Any]:
    return await world.wait_message(uid, lambda m: bool(buttons(m)) and "EURUSD" in (m.get("text") or ""))


async def decisions(world: World) -> list[Decision]:
    async with world.db.session() as session:
        return list((await session.scalars(select(Decision).order_by(Decision.user_id))).all())


async def orders(world: World) -> list[Order]:
    async with world.db.session() as session:
        return list((await session.scalars(select(Order))).all())


async def test_signal_to_subscribers_then_approval_fills_and_the_dm_shows_it(world: World) -> None:
    await world.subscribe(201, "en")
    await world.subscribe(202, "es")
    await world.user(203)
    await world.say(203, "/start")  # registered, never consented
    await world.wait_text(203, "Risk disclaimer")

    signal_id = await world.accept_signal(note="<b>breakout</b> & retest")
    dm = await signal_dm(world, 201)
    text = dm["text"]
    assert "BUY EURUSD" in text and "1.098" in text and "1.104" in text and "Risk 1%" in text
    assert "<b>breakout</b> & retest" in text  # the note was escaped, not rendered as HTML
    approve, reject = buttons(dm)
    assert approve.startswith("d:a:") and reject.startswith("d:r:") and len(approve.encode()) <= 64
    es = await signal_dm(world, 202)
    assert "COMPRA EURUSD" in es["text"] and "Aprueba en 15 minutos" in es["text"]
    assert [m for m in await world.messages(203) if "EURUSD" in (m.get("text") or "")] == []

    rows = await decisions(world)
    assert {d.chat_id for d in rows} == {201, 202} and {d.status for d in rows} == {"pending"}
    await eventually(lambda: _message_ids_recorded(world))

    answer = await world.tap(201, 201, dm["message_id"], approve)
    assert answer["text"] == "✅ Approved. Sending the order…"
    done = await world.wait_message(
        201, lambda m: m["message_id"] == dm["message_id"] and "Filled" in m["text"]
    )
    assert (
        "✅ Approved at" in done["text"]
        and "🟢 Filled: " in done["text"]
        and "lots EURUSD at 1.1001" in done["text"]
    )
    mine = next(d for d in await decisions(world) if d.chat_id == 201)
    assert buttons(done) == [f"pos:{a}:d{mine.id}" for a in "che"]  # Close, Close 50 %, Stop → entry

    mine = next(d for d in await decisions(world) if d.chat_id == 201)
    account = await world.account_of(201)
    assert account is not None
    assert mine.status == "approved" and mine.account_id == account.id and mine.consent_version == "2026-11"
    assert mine.message_id == dm["message_id"] and mine.decided_at is not None
    [order] = await orders(world)
    assert order.decision_id == mine.id and order.status == "filled" and order.signal_id == signal_id
    async with world.db.session() as session:
        assert await session.scalar(select(func.count(PaperOrder.ticket))) == 1
        line = await session.scalar(select(AuditLog).where(AuditLog.action == "decision.approved"))
    assert line is not None and line.actor == "tg:201"
    assert line.details["chat_id"] == 201 and line.details["message_id"] == dm["message_id"]
    assert line.details["consent_version"] == "2026-11"


async def _message_ids_recorded(world: World) -> bool:
    return all(d.message_id is not None for d in await decisions(world))


async def test_rejection_is_recorded_and_shown(world: World) -> None:
    await world.subscribe(210)
    await world.accept_signal()
    dm = await signal_dm(world, 210)
    answer = await world.tap(210, 210, dm["message_id"], buttons(dm)[1])
    assert answer["text"] == "❌ Rejected."
    await world.wait_message(
        210, lambda m: m["message_id"] == dm["message_id"] and "❌ Rejected at" in m["text"]
    )
    assert [d.status for d in await decisions(world)] == ["rejected"]
    assert await orders(world) == []


async def test_concurrent_and_duplicate_taps_make_one_decision_and_one_order(world: World) -> None:
    await world.subscribe(220)
    await world.accept_signal()
    dm = await signal_dm(world, 220)
    approve, reject = buttons(dm)
    taps = [approve] * 6 + [reject]
    ids = await asyncio.gather(*(world.client.tap(220, 220, dm["message_id"], data) for data in taps))
    answers = [await world.client.callback_answer(i, wait=5) for i in ids]
    texts = [a["text"] for a in answers if a]
    assert len(texts) == 7
    recorded = [t for t in texts if t in ("✅ Approved. Sending the order…", "❌ Rejected.")]
    assert len(recorded) == 1, texts
    [decision] = await decisions(world)
    if decision.status == "approved":
        assert texts.count("You already approved this signal.") == 6
        await eventually(lambda: _filled(world))
        assert len(await orders(world)) == 1
    else:
        assert decision.status == "rejected" and texts.count("You already rejected this signal.") == 6
        assert await orders(world) == []


async def test_six_concurrent_approvals_send_one_order(world: World) -> None:
    await world.subscribe(221)
    await world.accept_signal()
    dm = await signal_dm(world, 221)
    ids = await asyncio.gather(
        *(world.client.tap(221, 221, dm["message_id"], buttons(dm)[0]) for _ in range(6))
    )
    texts = [(await world.client.callback_answer(i, wait=5) or {}).get("text") for i in ids]
    assert texts.count("✅ Approved. Sending the order…") == 1
    assert texts.count("You already approved this signal.") == 5
    await eventually(lambda: _filled(world))
    await asyncio.sleep(0.2)
    assert len(await orders(world)) == 1
    async with world.db.session() as session:
        assert await session.scalar(select(func.count(PaperOrder.ticket))) == 1


async def _filled(world: World) -> bool:
    return [o.status for o in await orders(world)] == ["filled"]


async def test_forged_tap_on_someone_elses_message_is_refused(world: World) -> None:
    await world.subscribe(230)
    await world.subscribe(231)
    await world.accept_signal()
    victim = await signal_dm(world, 230)
    forged = {
        "update_id": 999_001,
        "callback_query": {
            "id": "424242",
            "from": {"id": 231, "is_bot": False, "first_name": "Mallory"},
            "chat_instance": "x",
            "data": buttons(victim)[0],
            "message": victim,
        },
    }
    runtime = world.rt()
    await runtime.dispatcher.feed_raw_update(runtime.bot, forged)
    assert {d.status for d in await decisions(world)} == {"pending"}
    assert await orders(world) == []
    async with world.db.session() as session:
        line = await session.scalar(select(AuditLog).where(AuditLog.action == "decision.refused"))
    assert line is not None and line.actor == "tg:231"


async def test_expired_signal_loses_its_buttons_and_a_late_tap_answers_expired(
    world_factory: WorldFactory,
) -> None:
    world = await world_factory(config=replace(FAST, expiry_sweep_seconds=3600))
    await world.subscribe(240)
    await world.subscribe(241)
    signal_id = await world.accept_signal()
    dm = await signal_dm(world, 240)
    other = await signal_dm(world, 241)
    await world.expire_now(signal_id)

    answer = await world.tap(240, 240, dm["message_id"], buttons(dm)[0])
    assert answer["text"] == "⌛ This signal has expired." and answer["show_alert"] is True
    assert await orders(world) == []

    assert await world.services.approvals.expire_due() == [signal_id]  # the sweep's work
    for uid, message in ((240, dm), (241, other)):
        await world.wait_message(
            uid, lambda m, mid=message["message_id"]: m["message_id"] == mid and "Expired" in m["text"]
        )
        edited = next(m for m in await world.messages(uid) if m["message_id"] == message["message_id"])
        assert buttons(edited) == []
    assert {d.status for d in await decisions(world)} == {"expired"}
    async with world.db.session() as session:
        signal = await session.get(Signal, signal_id)
    assert signal is not None and signal.status == "expired"


async def test_the_sweep_runs_by_itself(world: World) -> None:
    await world.subscribe(250)
    signal_id = await world.accept_signal()
    dm = await signal_dm(world, 250)
    await world.expire_now(signal_id)
    await world.wait_message(250, lambda m: m["message_id"] == dm["message_id"] and "Expired" in m["text"])


async def test_refused_order_is_explained_in_the_dm(world: World) -> None:
    await world.subscribe(260)
    await world.accept_signal(sl="1.09990", tp="1.10020")  # stop too close, poor R:R
    dm = await signal_dm(world, 260)
    await world.tap(260, 260, dm["message_id"], buttons(dm)[0])
    done = await world.wait_message(
        260, lambda m: m["message_id"] == dm["message_id"] and "Not executed" in m["text"]
    )
    assert "⚠️ Not executed:" in done["text"]
    assert [o.status for o in await orders(world)] == ["refused"]
