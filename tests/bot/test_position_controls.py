"""A subscriber's own controls in Telegram: Close, Close 50 % and Stop → entry under a filled
signal and in /positions, the confirmation, double taps, a closed position, somebody else's tap,
and a pending order that expires (real aiogram against the Bot API emulator, paper accounts)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update

from bot.callbacks import CLOSE, CLOSE_HALF, NO, STOP_TO_ENTRY, PositionCb
from engine.store.models import Decision, Order, Position, PositionChange, Signal, SignalUpdate
from tests.support.bot_world import ADMIN, World
from tests.support.telegram import buttons
from tests.support.waiting import eventually


async def _filled(world: World, uid: int, **signal: Any) -> tuple[dict[str, Any], str]:
    """A signal approved and filled: the signal message (with its new buttons) and the decision."""
    await world.accept_signal(**signal)
    dm = await world.wait_message(uid, lambda m: bool(buttons(m)) and "EURUSD" in (m.get("text") or ""))
    await world.tap(uid, uid, dm["message_id"], buttons(dm)[0])
    async with world.db.sessions() as s:
        decision = str(await s.scalar(select(Decision.id).where(Decision.chat_id == uid)))
    close = PositionCb(action=CLOSE, ref="d" + decision).pack()
    filled = await world.wait_message(
        uid, lambda m: m["message_id"] == dm["message_id"] and close in buttons(m), timeout=10
    )
    return filled, decision


def _cb(action: str, decision: str) -> str:
    return PositionCb(action=action, ref="d" + decision).pack()


async def _confirmation(world: World, uid: int, after: int) -> dict[str, Any]:
    return await world.wait_message(
        uid, lambda m: m["message_id"] > after and any(b.startswith("posok:") for b in buttons(m))
    )


def _yes(message: dict[str, Any]) -> str:
    return next(b for b in buttons(message) if b.startswith("posok:") and not b.startswith(f"posok:{NO}:"))


async def _count(world: World, model: Any) -> int:
    async with world.db.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def _position(world: World, uid: int) -> Position:
    account = await world.account_of(uid)
    assert account is not None
    async with world.db.sessions() as s:
        return (await s.scalars(select(Position).where(Position.account_id == account.id))).one()


async def _closing_deals(world: World, uid: int) -> int:
    account = await world.account_of(uid)
    assert account is not None
    broker = await world.services.brokers.get(account)
    position = await _position(world, uid)
    return sum(d.entry == "out" for d in await broker.position_deals(position.ticket))


async def test_close_asks_to_confirm_and_a_double_tap_closes_once(world: World) -> None:
    await world.subscribe(611)
    signal, decision = await _filled(world, 611)
    labels = [b["text"] for row in signal["reply_markup"]["inline_keyboard"] for b in row]
    assert labels == ["Close", "Close 50 %", "Stop → entry"]

    # Close -> a confirmation as a reply to the signal; Cancel closes nothing
    answer = await world.tap(611, 611, signal["message_id"], _cb(CLOSE, decision))
    assert answer["text"] == "Please confirm below." and not answer["show_alert"]
    ask = await _confirmation(world, 611, signal["message_id"])
    assert ask["reply_to_message"]["message_id"] == signal["message_id"]
    assert ask["text"].startswith("⚠️ Close your BUY EURUSD position (") and "lots) at market?" in ask["text"]
    cancel = next(b for b in buttons(ask) if b.startswith(f"posok:{NO}:"))
    assert (await world.tap(611, 611, ask["message_id"], cancel))["text"] == "Cancelled."
    await world.wait_message(
        611, lambda m: m["message_id"] == ask["message_id"] and "nothing was closed" in m["text"]
    )
    assert await _count(world, SignalUpdate) == 0

    # Close again; "Yes, close" tapped twice at once: one request, one close at the broker
    await world.tap(611, 611, signal["message_id"], _cb(CLOSE, decision))
    ask = await _confirmation(world, 611, ask["message_id"])
    yes = _yes(ask)
    first, second = await asyncio.gather(
        world.tap(611, 611, ask["message_id"], yes), world.tap(611, 611, ask["message_id"], yes)
    )
    texts = sorted([first["text"], second["text"]])
    assert "⏳ Closing… The result follows as a reply to the signal." in texts
    assert any(t.startswith("Already") for t in texts), texts
    closed = await world.wait_text(611, "Closed at your request", timeout=10)
    assert closed["reply_to_message"]["message_id"] == signal["message_id"]
    assert closed["text"].startswith("📕 Closed at your request: ") and "USD)" in closed["text"]
    assert await _closing_deals(world, 611) == 1
    assert await _count(world, SignalUpdate) == 1 and await _count(world, PositionChange) == 1

    # the last position closed: the buttons under the signal go; the old confirmation says done
    await world.wait_message(611, lambda m: m["message_id"] == signal["message_id"] and not buttons(m))
    assert buttons(await world.wait_message(611, lambda m: m["message_id"] == ask["message_id"])) == []
    again = await world.forged_tap(611, 611, ask["message_id"], yes)  # a client still showing it
    assert again["text"] == "Already done: this request was carried out." and again["show_alert"]
    assert await _closing_deals(world, 611) == 1


async def test_taps_on_a_closed_position_and_by_another_user(world: World) -> None:
    await world.subscribe(621)
    await world.subscribe(622)
    signal, decision = await _filled(world, 621)
    # somebody else's tap (a tampered client) on 621's buttons: refused, nothing stored
    for data in (_cb(CLOSE, decision), _cb(STOP_TO_ENTRY, decision)):
        refused = await world.forged_tap(622, 621, signal["message_id"], data)
        assert refused["text"] == "This button is not yours." and refused["show_alert"]
    await world.tap(621, 621, signal["message_id"], _cb(CLOSE_HALF, decision))
    ask = await _confirmation(world, 621, signal["message_id"])
    assert "Close 50 % of your BUY EURUSD position" in ask["text"]
    stolen = await world.forged_tap(622, 621, ask["message_id"], _yes(ask))
    assert stolen["text"] == "This button is not yours."
    assert await _count(world, SignalUpdate) == 0

    # the position closes at the broker (say, by hand); the next tap is told, no order is sent
    account = await world.account_of(621)
    assert account is not None
    broker = await world.services.brokers.get(account)
    position = await _position(world, 621)
    await broker.close_position(position.ticket, "by-hand-621")
    await world.services.reconciler.reconcile_account(account)
    for data in (_cb(CLOSE, decision), _cb(STOP_TO_ENTRY, decision)):
        late = await world.tap(621, 621, signal["message_id"], data)
        assert late["text"] == "This position is already closed." and late["show_alert"]
    late = await world.tap(621, 621, ask["message_id"], _yes(ask))  # the confirmation, still there
    assert late["text"] == "This position is already closed."
    assert await _count(world, SignalUpdate) == 0 and await _closing_deals(world, 621) == 1


async def test_stop_to_entry_and_close_half_in_spanish(world: World) -> None:
    await world.subscribe(631, "es")
    signal, decision = await _filled(world, 631)
    labels = [b["text"] for row in signal["reply_markup"]["inline_keyboard"] for b in row]
    assert labels == ["Cerrar", "Cerrar 50 %", "Stop → entrada"]
    world.prices.quotes["EURUSD"] = (Decimal("1.10200"), Decimal("1.10210"))  # in profit
    first, second = await asyncio.gather(
        world.tap(631, 631, signal["message_id"], _cb(STOP_TO_ENTRY, decision)),
        world.tap(631, 631, signal["message_id"], _cb(STOP_TO_ENTRY, decision)),
    )
    texts = sorted([first["text"], second["text"]])
    assert texts[0].startswith("Un cambio anterior") or texts[0].startswith("El stop ya está"), texts
    assert texts[1].startswith("🔒 Moviendo el stop a la entrada")
    moved = await world.wait_text(631, "a petición tuya", timeout=10)
    assert moved["text"] == "🔒 Stop movido a la entrada (1,1001) a petición tuya."  # Spanish decimals
    assert moved["reply_to_message"]["message_id"] == signal["message_id"]
    third = await world.tap(631, 631, signal["message_id"], _cb(STOP_TO_ENTRY, decision))
    assert third["text"] == "El stop ya está en la entrada."
    assert await _count(world, SignalUpdate) == 1

    before = (await _position(world, 631)).volume
    await world.tap(631, 631, signal["message_id"], _cb(CLOSE_HALF, decision))
    ask = await _confirmation(world, 631, moved["message_id"])
    assert ask["text"].startswith("⚠️ ¿Cerrar el 50 % de tu posición COMPRA EURUSD")
    assert (await world.tap(631, 631, ask["message_id"], _yes(ask)))["text"].startswith("⏳ Cerrando…")
    half = await world.wait_text(631, "quedan", timeout=10)
    closed = (before / 2).quantize(Decimal("0.01"), rounding="ROUND_DOWN")

    def es(value: Decimal) -> str:  # Spanish decimals
        return str(value).replace(".", ",")

    assert half["text"].startswith(f"✂️ Cerrados {es(closed)} lotes a 1,102 (")
    assert half["text"].endswith(f"a petición tuya; quedan {es(before - closed)} lotes abiertos.")
    assert (await _position(world, 631)).volume == before - closed
    # still open: the buttons stay
    current = await world.wait_message(631, lambda m: m["message_id"] == signal["message_id"])
    assert _cb(CLOSE, decision) in buttons(current)


async def test_positions_lists_live_pnl_with_buttons_per_position(world: World) -> None:
    await world.subscribe(641)
    await world.say(641, "/positions")
    await world.wait_text(641, "You have no open positions.")
    await _filled(world, 641, targets=[("1.10300", 50), ("1.10400", 50)])  # two legs on paper
    world.prices.quotes["EURUSD"] = (Decimal("1.10100"), Decimal("1.10110"))
    await world.say(641, "/positions")
    listed = await world.wait_text(641, "Your open positions (2)")
    lines = listed["text"].splitlines()
    assert lines[1].startswith("1. BUY ") and " EURUSD at 1.1001 · SL 1.098 · TP 1.103 · P/L +" in lines[1]
    assert lines[2].startswith("2. BUY ") and "TP 1.104 · P/L +" in lines[2]
    rows = listed["reply_markup"]["inline_keyboard"]
    assert [[b["text"] for b in row] for row in rows] == [
        ["1· Close", "1· Close 50 %", "1· Stop → entry"],
        ["2· Close", "2· Close 50 %", "2· Stop → entry"],
    ]
    second = rows[1][0]["callback_data"]
    await world.tap(641, 641, listed["message_id"], second)
    ask = await _confirmation(world, 641, listed["message_id"])
    assert ask["reply_to_message"]["message_id"] == listed["message_id"]
    await world.tap(641, 641, ask["message_id"], _yes(ask))
    await world.wait_text(641, "Closed at your request", timeout=10)
    await world.say(641, "/positions")
    await world.wait_text(641, "Your open positions (1)")

    # a scope is the admin's: refused for a subscriber; an admin's own list is /positions mine
    await world.say(641, "/positions account 1")
    await world.wait_text(641, "admins only")
    await world.subscribe(ADMIN, name="Boss")
    await world.say(ADMIN, "/positions mine")
    await world.wait_text(ADMIN, "You have no open positions.")
    await world.say(ADMIN, "/positions")
    await world.wait_text(ADMIN, "Open positions (1)")


async def test_an_expired_pending_order_is_removed_and_the_subscriber_told(world: World) -> None:
    await world.subscribe(651)
    await world.subscribe(652, "es")
    await world.accept_signal(order_type="limit", entry="1.09900", sl="1.09700", tp="1.10400")
    signals = {}
    for uid, placed in ((651, "Order placed"), (652, "Orden colocada")):
        dm = await world.wait_message(uid, lambda m: bool(buttons(m)) and "EURUSD" in (m.get("text") or ""))
        await world.tap(uid, uid, dm["message_id"], buttons(dm)[0])
        signals[uid] = await world.wait_message(
            uid, lambda m, d=dm, p=placed: m["message_id"] == d["message_id"] and p in m["text"]
        )
        assert buttons(signals[uid]) == []  # nothing to close before the fill
    async with world.db.session() as s:
        await s.execute(update(Order).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    for uid in (651, 652):
        account = await world.account_of(uid)
        assert account is not None
        report = await world.services.reconciler.reconcile_account(account)
        assert report.expired == 1
        assert await (await world.services.brokers.get(account)).pending_orders() == []
    en = await world.wait_text(651, "expired and was removed")
    assert en["text"].startswith("⌛ Your pending order expired and was removed at the broker: BUY ")
    assert en["text"].endswith(" EURUSD at 1.099.")
    assert en["reply_to_message"]["message_id"] == signals[651]["message_id"]
    es = await world.wait_text(652, "caducó")
    assert es["text"].startswith("⌛ Tu orden pendiente caducó y se retiró en el bróker: COMPRA ")
    assert es["reply_to_message"]["message_id"] == signals[652]["message_id"]

    async def told_once() -> bool:
        texts = [m.get("text") or "" for m in await world.messages(651)]
        return sum("expired and was removed" in t for t in texts) == 1 and await world.events_processed()

    assert await eventually(told_once)
    await world.services.reconciler.reconcile_account(await world.account_of(651))  # type: ignore[arg-type]
    assert await eventually(told_once)


async def test_a_providers_updates_are_told_as_replies_to_the_signal(world: World) -> None:
    await world.subscribe(661)
    signal, _decision = await _filled(world, 661)
    async with world.db.sessions() as s:
        signal_id, producer_id = (
            await s.execute(
                select(Decision.signal_id, Signal.producer_id).join(Signal).where(Decision.chat_id == 661)
            )
        ).one()

    async def provider(body: str) -> None:
        await world.services.updates.submit(producer_id, signal_id, body.encode())

    # below the entry a stop at the entry is refused: the subscriber is told why
    world.prices.quotes["EURUSD"] = (Decimal("1.09950"), Decimal("1.09960"))
    await provider('{"action": "move_sl", "sl": "entry"}')
    refused = await world.wait_text(661, "could not be applied", timeout=10)
    assert refused["text"] == (
        "⚠️ The provider's update could not be applied to your position: "
        "the stop would be on the wrong side of the price."
    )
    assert refused["reply_to_message"]["message_id"] == signal["message_id"]
    await provider('{"action": "move_sl", "sl": "1.09850"}')
    moved = await world.wait_text(661, "The provider moved the stop", timeout=10)
    assert moved["text"] == "🛡 The provider moved the stop to 1.0985."
    before = (await _position(world, 661)).volume
    await provider('{"action": "close", "percent": 50}')
    half = await world.wait_text(661, "The provider closed", timeout=10)
    closed = (before / 2).quantize(Decimal("0.01"), rounding="ROUND_DOWN")
    assert half["text"].startswith(f"✂️ The provider closed {closed} lots at 1.0995 (")
    assert half["text"].endswith(f"; {before - closed} lots stay open.")
    assert half["reply_to_message"]["message_id"] == signal["message_id"]
    await provider('{"action": "close"}')
    gone = await world.wait_text(661, "Closed by the provider", timeout=10)
    assert gone["reply_to_message"]["message_id"] == signal["message_id"]
    await world.wait_message(661, lambda m: m["message_id"] == signal["message_id"] and not buttons(m))
