"""/settings → Risk through the real bot against the Bot API emulator: changing each kind of limit,
bad input answered with the rule and nothing saved, the minimum R:R keeping a signal from a
subscriber, a limit's refusal shown under the signal, and the daily-loss pause told."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select

from bot.callbacks import RiskCb
from engine.brokers.base import AccountSnapshot
from engine.store.models import AuditLog, RiskLimits, User
from tests.support.bot_world import World
from tests.support.telegram import buttons
from tests.support.waiting import eventually

D = Decimal


async def limits_row(world: World, uid: int) -> RiskLimits | None:
    async with world.db.session() as s:
        user = await s.scalar(select(User).where(User.telegram_id == uid))
        assert user is not None
        return await s.get(RiskLimits, user.id)


async def open_panel(world: World, uid: int) -> dict[str, Any]:
    await world.say(uid, "/settings")
    settings = await world.wait_message(uid, lambda m: RiskCb(action="show").pack() in buttons(m))
    answer = await world.tap(uid, uid, settings["message_id"], RiskCb(action="show").pack())
    assert answer.get("text") in (None, "")
    return await world.wait_message(
        uid, lambda m: m["message_id"] == settings["message_id"] and "Risk limits" in m["text"]
    )


async def message(world: World, uid: int, message_id: int) -> dict[str, Any]:
    return next(m for m in await world.messages(uid) if m["message_id"] == message_id)


async def ask(world: World, uid: int, panel: dict[str, Any], field: str) -> dict[str, Any]:
    before = len(await world.messages(uid))
    await world.tap(uid, uid, panel["message_id"], RiskCb(action="ask", value=field).pack())
    return await world.wait_message(
        uid, lambda m: "Send the new value" in (m.get("text") or "") and m["message_id"] > before
    )


async def reply_after(world: World, uid: int, text: str, fragment: str) -> dict[str, Any]:
    """Send ``text`` and wait for the bot's next message containing ``fragment``."""
    last = max((m["message_id"] for m in await world.messages(uid)), default=0)
    await world.say(uid, text)
    return await world.wait_message(
        uid, lambda m: m["message_id"] > last + 1 and fragment in (m.get("text") or "")
    )


async def test_the_risk_panel_changes_each_kind_of_limit(world: World) -> None:
    await world.subscribe(401)
    panel = await open_panel(world, 401)
    text = panel["text"]
    assert "Sizing: the risk % each signal gives, of equity (default)" in text
    assert "Max open trades: none (default)" in text and "All instruments on." in text
    assert RiskCb(action="sizing", value="fixed").pack() in buttons(panel)

    answer = await world.tap(
        401, 401, panel["message_id"], RiskCb(action="sizing", value="risk_percent").pack()
    )
    assert answer["text"] == "Saved."
    panel = await world.wait_message(401, lambda m: "Sizing: 1% of equity per trade" in (m.get("text") or ""))
    assert any(b == RiskCb(action="sizing", value="risk_percent").pack() for b in buttons(panel))
    labels = [b["text"] for row in panel["reply_markup"]["inline_keyboard"] for b in row]
    assert "• Risk %" in labels

    prompt = await ask(world, 401, panel, "max_positions")
    assert "Max open trades" in prompt["text"] and "from 1 to 100" in prompt["text"]
    saved = await reply_after(world, 401, "3", "Saved.")
    assert "Max open trades: 3" in saved["text"] and "Max open trades: 3 (default)" not in saved["text"]
    row = await limits_row(world, 401)
    assert row is not None and row.max_positions == 3 and row.sizing == "risk_percent"

    await ask(world, 401, saved, "daily_loss_percent")
    saved = await reply_after(world, 401, "2.5%", "Saved.")
    assert "Daily loss limit: 2.5% of equity" in saved["text"]
    await ask(world, 401, saved, "max_positions")
    saved = await reply_after(world, 401, "default", "Saved.")
    assert "Max open trades: none (default)" in saved["text"]

    await world.tap(401, 401, saved["message_id"], RiskCb(action="instruments").pack())
    listing = await world.wait_message(
        401, lambda m: m["message_id"] == saved["message_id"] and "Instruments" in m["text"]
    )
    assert RiskCb(action="inst", value="XAUUSD").pack() in buttons(listing)
    answer = await world.tap(401, 401, listing["message_id"], RiskCb(action="inst", value="XAUUSD").pack())
    assert answer["text"] == "Saved."
    listing = await world.wait_message(
        401, lambda m: m["message_id"] == saved["message_id"] and "🚫 XAUUSD" in str(m.get("reply_markup"))
    )
    await world.tap(401, 401, listing["message_id"], RiskCb(action="show").pack())
    panel = await world.wait_message(
        401, lambda m: m["message_id"] == saved["message_id"] and "Instruments off: XAUUSD" in m["text"]
    )
    row = await limits_row(world, 401)
    assert row is not None and row.instruments_off == ["XAUUSD"] and row.daily_loss_percent == D("2.5")
    assert row.max_positions is None


async def test_bad_input_gets_the_rule_and_nothing_is_saved(world: World) -> None:
    await world.subscribe(402)
    panel = await open_panel(world, 402)
    await ask(world, 402, panel, "max_lots")
    reply = await reply_after(world, 402, "lots please", "not a number")
    assert buttons(reply) == [RiskCb(action="cancel").pack()]
    reply = await reply_after(world, 402, "500", "must be")
    assert "Max lots per trade must be from 0.01 to 100. Nothing was saved" in reply["text"]
    await reply_after(world, 402, "0.125", "at most two decimals")
    await ask(world, 402, panel, "max_positions")
    reply = await reply_after(world, 402, "2.5", "must be")
    assert "Max open trades must be a whole number from 1 to 100" in reply["text"]
    await ask(world, 402, panel, "daily_loss_percent")
    reply = await reply_after(world, 402, "150", "must be")
    assert "Daily loss limit must be above 0, up to 100" in reply["text"]
    assert await limits_row(world, 402) is None  # nothing written at all

    # Cancel ends the question: the next number is not taken as a limit.
    await world.tap(402, 402, reply["message_id"], RiskCb(action="cancel").pack())
    await world.wait_message(
        402, lambda m: m["message_id"] == reply["message_id"] and m["text"] == "Cancelled."
    )
    await world.say(402, "5")
    await eventually(world.events_processed)
    assert await limits_row(world, 402) is None
    async with world.db.session() as s:
        assert (await s.scalars(select(AuditLog).where(AuditLog.action == "risk.limits"))).all() == []


async def test_the_panel_speaks_spanish(world: World) -> None:
    await world.subscribe(403, lang="es")
    await world.say(403, "/settings")
    settings = await world.wait_message(403, lambda m: RiskCb(action="show").pack() in buttons(m))
    await world.tap(403, 403, settings["message_id"], RiskCb(action="show").pack())
    panel = await world.wait_message(
        403, lambda m: m["message_id"] == settings["message_id"] and "Límites de riesgo" in m["text"]
    )
    assert "Operaciones abiertas máximas: ninguno (predeterminado)" in panel["text"]
    await ask_es(world, 403, panel)
    await reply_after(world, 403, "muchos", "Eso no es un número")
    reply = await reply_after(world, 403, "25", "debe ser")
    assert "R:R mínimo debe ser mayor que 0, hasta 20. No se guardó nada" in reply["text"]
    saved = await reply_after(world, 403, "1,5", "Guardado.")
    assert "R:R mínimo: 1,5" in saved["text"]  # Spanish decimals


async def ask_es(world: World, uid: int, panel: dict[str, Any]) -> None:
    before = len(await world.messages(uid))
    await world.tap(uid, uid, panel["message_id"], RiskCb(action="ask", value="min_rr").pack())
    await world.wait_message(
        uid, lambda m: "Envía el nuevo valor" in (m.get("text") or "") and m["message_id"] > before
    )


async def test_min_rr_keeps_the_signal_from_the_subscriber(world: World) -> None:
    await world.subscribe(411)
    await world.subscribe(412)
    panel = await open_panel(world, 411)
    await ask(world, 411, panel, "min_rr")
    await reply_after(world, 411, "2.5", "Saved.")

    await world.accept_signal(entry="1.10000", tp="1.10400", note="rr-two")  # R:R 2
    await world.wait_text(412, "rr-two")
    await world.accept_signal(entry="1.10000", tp="1.10600", note="rr-three")  # R:R 3
    await world.wait_text(411, "rr-three")
    await world.wait_text(412, "rr-three")
    assert [m for m in await world.messages(411) if "rr-two" in (m.get("text") or "")] == []


async def test_a_limits_refusal_is_shown_under_the_signal(world: World) -> None:
    await world.subscribe(421)
    await world.services.risk_limits.change(421, "test", max_positions=1)
    for note in ("first", "second"):
        await world.accept_signal(note=note)
        dm = await world.wait_message(421, lambda m, n=note: n in (m.get("text") or "") and bool(buttons(m)))
        await world.tap(421, 421, dm["message_id"], buttons(dm)[0])
        done = await world.wait_message(
            421,
            lambda m, i=dm["message_id"]: (
                m["message_id"] == i and ("Filled" in m["text"] or "Not executed" in m["text"])
            ),
        )
    assert "⚠️ Not executed: you already have 1 open trades; your maximum is 1." in done["text"]


async def test_the_daily_loss_pause_is_told_and_stops_the_offers(world: World) -> None:
    await world.subscribe(431)
    await world.subscribe(432)
    panel = await open_panel(world, 431)
    await ask(world, 431, panel, "daily_loss_percent")
    await reply_after(world, 431, "3", "Saved.")
    account = await world.account_of(431)
    assert account is not None
    watch = world.services.trading_loop.daily_loss
    assert watch is not None
    await watch.observe(account.id, _snapshot("10000"))
    await watch.observe(account.id, _snapshot("9650"))
    notice = await world.wait_text(431, "Your daily loss limit of 3% was reached")
    assert "down 3.5% today" in notice["text"] and "when the next trading day starts" in notice["text"]

    await world.accept_signal(note="while-paused")
    await world.wait_text(432, "while-paused")
    await eventually(world.events_processed)
    assert [m for m in await world.messages(431) if "while-paused" in (m.get("text") or "")] == []
    panel = await open_panel(world, 431)
    assert "Your daily loss limit was reached: no new trades until" in panel["text"]


def _snapshot(equity: str) -> AccountSnapshot:
    value = D(equity)
    return AccountSnapshot(login="1", balance=value, equity=value, margin=D(0), free_margin=value)
