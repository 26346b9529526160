"""Admin commands and ops alerts."""

from __future__ import annotations

from sqlalchemy import select

from bot.callbacks import AdminCb
from engine.store.events import (
    BROKER_DISCONNECTED,
    BROKER_RECONNECTED,
    DRAWDOWN_TRIGGERED,
    ENGINE_STARTED,
    ENGINE_STOPPING,
    HEARTBEAT,
    ORDER_FAILED,
    emit,
)
from engine.store.models import AuditLog, EngineState, Position
from tests.support.bot_world import ADMIN, OPS_CHAT, World
from tests.support.telegram import buttons
from tests.support.waiting import eventually


async def audit_lines(world: World, action: str) -> list[AuditLog]:
    async with world.db.session() as session:
        return list((await session.scalars(select(AuditLog).where(AuditLog.action == action))).all())


async def approve_and_fill(world: World, uid: int) -> None:
    dm = await world.wait_message(uid, lambda m: bool(buttons(m)) and "EURUSD" in (m.get("text") or ""))
    await world.tap(uid, uid, dm["message_id"], buttons(dm)[0])
    await world.wait_message(uid, lambda m: m["message_id"] == dm["message_id"] and "Filled" in m["text"])


async def test_non_admins_are_refused_politely_and_audited(world: World) -> None:
    await world.subscribe(501)
    # /positions alone is a subscriber's own list (tests/bot/test_position_controls.py); a scope is not
    for command in ("/pause", "/resume", "/closeall", "/status", "/positions account 1"):
        await world.say(501, command)
    await eventually(lambda: _count(world, "admin.refused", 5))
    texts = [m["text"] for m in await world.messages(501) if "admins only" in m["text"]]
    assert len(texts) == 5
    lines = await audit_lines(world, "admin.refused")
    assert {line.target for line in lines} == {"/pause", "/resume", "/closeall", "/status", "/positions"}
    assert {line.actor for line in lines} == {"tg:501"}
    assert not await world.services.control.is_paused()


async def _count(world: World, action: str, n: int) -> bool:
    return len(await audit_lines(world, action)) >= n


async def test_spanish_non_admin_is_refused_in_spanish(world: World) -> None:
    await world.subscribe(502, "es")
    await world.say(502, "/pause")
    await world.wait_text(502, "solo para administradores")


async def test_pause_holds_fanout_and_resume_releases_it(world: World) -> None:
    await world.subscribe(510)
    await world.user(ADMIN, "Boss")
    await world.say(ADMIN, "/pause")
    await world.wait_text(ADMIN, "⏸ Paused")
    assert await world.services.control.is_paused()
    await world.wait_text(OPS_CHAT, "Trading paused by tg:900")
    await world.accept_signal()
    await world.say(ADMIN, "/status")
    status = await world.wait_text(ADMIN, "Engine status")
    assert "Paused by tg:900" in status["text"] and "Outbox: 0 pending" in status["text"]
    assert [m for m in await world.messages(510) if "EURUSD" in m["text"]] == []  # held while paused

    await world.say(ADMIN, "/resume")
    await world.wait_text(ADMIN, "Resumed")
    await world.wait_message(510, lambda m: bool(buttons(m)) and "EURUSD" in m["text"])
    await world.wait_text(OPS_CHAT, "Trading resumed by tg:900")


async def test_status_positions_and_closeall(world: World) -> None:
    await world.subscribe(520)
    await world.user(ADMIN, "Boss")
    await world.accept_signal()
    await approve_and_fill(world, 520)
    async with world.db.session() as session:
        session.add(EngineState(key="heartbeat", value={"at": "2026-11-28T10:00:00+00:00"}))

    await world.say(ADMIN, "/status")
    status = await world.wait_text(ADMIN, "Engine status")
    assert "▶️ Running" in status["text"] and "Open positions: 1" in status["text"]
    assert "Last heartbeat: 28 Nov 2026, 10:00 UTC" in status["text"]
    assert "@user520: equity" in status["text"]
    await world.say(ADMIN, "/positions")
    positions = await world.wait_text(ADMIN, "Open positions (1)")
    assert "BUY" in positions["text"] and "EURUSD at 1.1001" in positions["text"]

    await world.say(ADMIN, "/closeall")
    confirm = await world.wait_message(ADMIN, lambda m: bool(buttons(m)) and "Close" in m["text"])
    assert await _open_positions(world) == 1  # nothing happens before the confirmation
    answer = await world.tap(ADMIN, ADMIN, confirm["message_id"], buttons(confirm)[0])
    assert answer["text"] == "Closing every position…"
    report = await world.wait_message(
        ADMIN, lambda m: m["message_id"] == confirm["message_id"] and "Closed" in m["text"]
    )
    assert "Closed 1 of 1 positions" in report["text"] and "P&L:" in report["text"]
    assert await _open_positions(world) == 0
    closed = await world.wait_text(520, "Position closed")
    assert "closed by an admin" in closed["text"]
    assert await audit_lines(world, "admin.closeall")


async def _open_positions(world: World) -> int:
    async with world.db.session() as session:
        return len((await session.scalars(select(Position).where(Position.status == "open"))).all())


async def test_stale_closeall_confirmation_is_refused(world: World) -> None:
    await world.user(ADMIN, "Boss")
    await world.say(ADMIN, "/closeall")
    confirm = await world.wait_message(ADMIN, lambda m: bool(buttons(m)))
    stale = AdminCb(action="closeall", issued=1).pack()
    assert stale not in buttons(confirm)
    runtime = world.rt()
    update = {
        "update_id": 77_001,
        "callback_query": {
            "id": "1",
            "from": {"id": ADMIN, "is_bot": False, "first_name": "Boss"},
            "chat_instance": "x",
            "data": stale,
            "message": confirm,
        },
    }
    await runtime.dispatcher.feed_raw_update(runtime.bot, update)
    assert await audit_lines(world, "admin.closeall") == []


async def test_ops_alerts_and_heartbeat_summary_at_most_once_per_period(world: World) -> None:
    await world.subscribe(530)
    account = await world.account_of(530)
    assert account is not None
    async with world.db.session() as session:
        beat = {
            "lifetime_signals": 7,
            "lifetime_trades": 3,
            "positions_open": 2,
            "equity": {str(account.id): "9950.5"},
        }
        emit(session, HEARTBEAT, at="2026-11-28T10:00:00+00:00", **beat)
        emit(session, HEARTBEAT, at="2026-11-28T10:00:10+00:00", **beat)
        emit(
            session,
            DRAWDOWN_TRIGGERED,
            account_id=account.id,
            equity="7900",
            drawdown_percent="21",
            currency="USD",
            closed=2,
            failed=0,
            pnl="-2100",
        )
        emit(session, ORDER_FAILED, account_id=account.id, side="buy", symbol="EURUSD", reason="broker down")
        emit(session, ENGINE_STARTED, loop_id="x")
        emit(session, BROKER_DISCONNECTED, account_id=account.id, detail="No IPC connection")
        emit(session, BROKER_RECONNECTED, account_id=account.id)
        emit(session, ENGINE_STOPPING)
    world.services.relay.notify()
    await world.wait_text(OPS_CHAT, "Drawdown limit hit on account")
    await world.wait_text(OPS_CHAT, "Order failed after retries: BUY EURUSD")
    await world.wait_text(OPS_CHAT, "Engine stopping.")
    texts = [m["text"] for m in await world.messages(OPS_CHAT)]
    assert "🚀 Engine started." in texts and f"🔌 Broker reconnected (account #{account.id})." in texts
    assert f"🔌 Broker disconnected (account #{account.id}): No IPC connection" in texts
    owner = await world.wait_text(530, "drawdown limit")
    assert "21%" in owner["text"]
    summaries = [m for m in await world.messages(OPS_CHAT) if "Heartbeat" in m["text"]]
    assert len(summaries) == 1
    assert (
        "Signals: 7 · trades: 3" in summaries[0]["text"]
        and f"#{account.id}: 9,950.50" in summaries[0]["text"]
    )
    alert = next(m for m in await world.messages(OPS_CHAT) if "Drawdown limit hit" in m["text"])
    assert "-2,100.00 USD" in alert["text"] and "7,900.00 USD" in alert["text"]
