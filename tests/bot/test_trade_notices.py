"""After the fill: a 2-target signal approved on the paper broker, TP1 reached, and the subscriber
told as a reply to the signal message, in their language (real aiogram against the emulator)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from engine.loop.management import TradeManager
from tests.support.bot_world import World
from tests.support.telegram import buttons

TWO = [("1.10300", 50), ("1.10400", 50)]
TINY_SECOND = [("1.10300", 50), ("1.10400", 1), ("1.10500", 49)]  # 1 % of 0.47 lot is below 0.01


async def _approved_and_filled(world: World, uid: int, filled: str) -> dict[str, Any]:
    dm = await world.wait_message(uid, lambda m: bool(buttons(m)) and "EURUSD" in (m.get("text") or ""))
    await world.tap(uid, uid, dm["message_id"], buttons(dm)[0])
    await world.wait_message(uid, lambda m: m["message_id"] == dm["message_id"] and filled in m["text"])
    return dm


async def _tick(world: World, uid: int) -> None:
    account = await world.account_of(uid)
    assert account is not None
    broker = await world.services.brokers.get(account)
    await TradeManager(world.db, world.services.relay).manage(account, broker)


async def test_target_one_is_told_as_a_reply_to_the_signal_in_english_and_spanish(world: World) -> None:
    await world.subscribe(401, "en")
    await world.subscribe(402, "es")
    await world.accept_signal(targets=TWO, breakeven_after=1)
    dm_en = await _approved_and_filled(world, 401, "Filled")
    dm_es = await _approved_and_filled(world, 402, "Ejecutada")

    world.prices.quotes["EURUSD"] = (Decimal("1.10305"), Decimal("1.10315"))
    await _tick(world, 401)
    await _tick(world, 402)

    en = await world.wait_text(401, "Target 1 hit")
    assert en["text"] == "🎯 Target 1 hit: closed 0.23 lots at 1.103 (+66.70 USD). Stop moved to entry."
    assert en["reply_to_message"]["message_id"] == dm_en["message_id"]
    es = await world.wait_text(402, "Objetivo 1 alcanzado")
    assert (
        es["text"]
        == "🎯 Objetivo 1 alcanzado: cerrados 0,23 lotes a 1,103 (+66,70 USD). Stop movido a la entrada."
    )
    assert es["reply_to_message"]["message_id"] == dm_es["message_id"]
    # One message for the target and the stop it moved: no separate break-even notice.
    for uid in (401, 402):
        texts = [m.get("text") or "" for m in await world.messages(uid)]
        assert not any("🔒" in t for t in texts)


async def test_the_fill_message_says_when_a_share_joined_another_target(world: World) -> None:
    await world.subscribe(403, "en")
    await world.subscribe(404, "es")
    await world.accept_signal(targets=TINY_SECOND, breakeven_after=1)
    note_en = "Target 2's share was below the minimum volume and joined target 1."
    note_es = "La parte del objetivo 2 era menor que el volumen mínimo y se unió al objetivo 1."
    await _approved_and_filled(world, 403, note_en)
    await _approved_and_filled(world, 404, note_es)
