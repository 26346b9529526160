"""The Mini App's API end to end: the emulator signs initData, the real aiogram bot runs beside it,
decisions and position controls go through the same services as the chat's buttons."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from engine.store.models import AuditLog, Decision, Order, Position
from tests.support.bot_world import ADMIN, CHANNEL, World, WorldFactory
from tests.support.miniapp import AppUser, open_app
from tests.support.telegram import buttons
from tests.support.waiting import eventually


@pytest.fixture
async def world(world_factory: WorldFactory) -> World:
    return await world_factory(miniapp=True)


async def signal_dm(world: World, uid: int) -> dict[str, Any]:
    return await world.wait_message(uid, lambda m: bool(buttons(m)) and "EURUSD" in (m.get("text") or ""))


async def audit_lines(world: World, action: str) -> list[AuditLog]:
    async with world.db.sessions() as s:
        return list((await s.scalars(select(AuditLog).where(AuditLog.action == action))).all())


async def position_of(world: World, uid: int) -> Position:
    account = await world.account_of(uid)
    assert account is not None

    async def probe() -> Position | None:
        async with world.db.sessions() as s:
            return await s.scalar(select(Position).where(Position.account_id == account.id))

    found: Position = await eventually(probe, 10)
    return found


async def approved_position(world: World, app: AppUser) -> Position:
    await world.accept_signal()
    await signal_dm(world, app.user_id)
    [signal] = (await app.get("signals")).body["signals"]
    assert (await app.post(f"signals/{signal['id']}/decision", {"approve": True})).status == 200
    return await position_of(world, app.user_id)


# ---------------------------------------------------------------------- signing in (CONTRACTS 8)


async def test_valid_init_data_gets_a_session_bound_to_the_user(world: World) -> None:
    await world.subscribe(301)
    await world.user(ADMIN, "Alex")
    opened = await world.client.open_web_app(301)
    assert opened["url"].startswith(f"http://127.0.0.1:{world.http_port}/app/#tgWebAppData=")
    assert "tgWebAppThemeParams=" in opened["url"] and opened["source"] == "menu"
    app = AppUser(world, 301)
    reply = await app.post("session", {"init_data": opened["init_data"]})
    assert reply.status == 200
    assert set(reply.body) == {"token", "expires_at", "user"}
    assert reply.body["user"] == {"id": 301, "is_admin": False}
    admin = AppUser(world, ADMIN)
    signed = await world.client.open_web_app(ADMIN)
    assert (await admin.post("session", {"init_data": signed["init_data"]})).body["user"]["is_admin"] is True
    app.token = reply.body["token"]
    me = await app.get("me")
    assert me.status == 200 and me.body["user"]["id"] == 301 and me.body["user"]["subscribed"] is True
    assert me.body["texts"]["approve"] == "✅ Approve"


async def test_bad_init_data_is_refused_with_a_problem(world: World) -> None:
    await world.subscribe(302)
    app = AppUser(world, 302)
    opened = await world.client.open_web_app(302)
    tampered = opened["init_data"].replace("302", "303")
    stale = await world.client.open_web_app(302, auth_date=int(time.time()) - 86400 - 60)
    for body in ({"init_data": tampered}, {"init_data": stale["init_data"]}, {"init_data": ""}, {}):
        reply = await app.post("session", body)
        assert reply.status == 401 and reply.problem, (body, reply)
        assert reply.body["type"] == "urn:tradebot:problem:invalid_init_data"
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert "expired" in (await app.post("session", {"init_data": stale["init_data"]})).body["detail"]
    bad_json = await app.request(
        "POST", "/app/api/session", raw=b"{", headers={"Content-Type": "application/json"}
    )
    assert bad_json.status == 400 and bad_json.problem


async def test_every_call_needs_a_valid_session(world: World) -> None:
    await world.subscribe(304)
    app = AppUser(world, 304)
    for path in ("me", "signals", "positions", "history", "stats", "settings", "plan", "admin/status"):
        none = await app.get(path)
        assert none.status == 401 and none.problem, path
        forged = await app.get(path, token="v1.eyJ1aWQiOjMwNH0.AAAA")
        assert forged.status == 401 and forged.body["type"] == "urn:tradebot:problem:session_expired"


async def test_someone_who_has_not_subscribed_sees_only_the_invitation(world: World) -> None:
    await world.user(305)
    app, _ = await open_app(world, 305)
    me = await app.get("me")
    assert me.body["user"]["registered"] is False and me.body["user"]["subscribed"] is False
    reply = await app.get("signals")
    assert reply.status == 403 and reply.body["type"] == "urn:tradebot:problem:not_subscribed"


# ---------------------------------------------------------------------- decisions, once across both


async def test_approving_in_the_app_edits_the_dm_and_a_late_chat_tap_is_second(world: World) -> None:
    await world.subscribe(310)
    app, _ = await open_app(world, 310)
    signal_id = await world.accept_signal(note="retest <b>", entry="1.10000")
    dm = await signal_dm(world, 310)
    [signal] = (await app.get("signals")).body["signals"]
    assert signal["id"] == signal_id and signal["note"] == "retest <b>" and signal["rr"] == "2.00"
    assert Decimal(signal["sl"]) == Decimal("1.098") and 0 < signal["seconds_left"] <= 900

    reply = await app.post(f"signals/{signal_id}/decision", {"approve": True})
    assert reply.status == 200 and reply.body["verdict"] == "approved"
    assert reply.body["text"] == "✅ Approved. Sending the order…"
    edited = await world.wait_message(
        310, lambda m: m["message_id"] == dm["message_id"] and "Filled" in (m.get("text") or "")
    )
    # the chat message changed too: no Approve/Reject any more, the filled position's controls instead
    assert "✅ Approved at" in edited["text"]
    assert buttons(edited) and all(b.startswith("pos:") for b in buttons(edited))

    # a tap from a client still showing the old buttons reaches the same service, second
    decision_id = buttons(dm)[0].removeprefix("d:a:")
    late = await world.services.approvals.decide_dm(
        decision_id, telegram_id=310, chat_id=310, message_id=dm["message_id"], approve=True
    )
    assert late.verdict.value == "already_approved"
    again = await app.post(f"signals/{signal_id}/decision", {"approve": False})
    assert again.status == 409 and again.body["type"] == "urn:tradebot:problem:already_approved"
    assert (await app.get("signals")).body["signals"] == []
    async with world.db.sessions() as s:
        [decision] = (await s.scalars(select(Decision))).all()
        orders = (await s.scalars(select(Order))).all()
    assert decision.status == "approved" and decision.message_id == dm["message_id"] and len(orders) == 1
    [line] = await audit_lines(world, "decision.approved")
    assert line.actor == "tg:310" and line.details["source"] == "miniapp"


async def test_a_chat_tap_first_leaves_the_app_nothing_to_decide(world: World) -> None:
    await world.subscribe(311)
    app, _ = await open_app(world, 311)
    signal_id = await world.accept_signal()
    dm = await signal_dm(world, 311)
    assert (await world.tap(311, 311, dm["message_id"], buttons(dm)[1]))["text"] == "❌ Rejected."
    reply = await app.post(f"signals/{signal_id}/decision", {"approve": True})
    assert reply.status == 409 and reply.body["type"] == "urn:tradebot:problem:already_rejected"
    assert reply.body["detail"] == "You already rejected this signal."


async def test_concurrent_app_and_chat_decisions_record_one(world: World) -> None:
    await world.subscribe(312)
    app, _ = await open_app(world, 312)
    signal_id = await world.accept_signal()
    dm = await signal_dm(world, 312)
    approve = buttons(dm)[0]
    taps = [world.client.tap(312, 312, dm["message_id"], approve) for _ in range(3)]
    posts = [app.post(f"signals/{signal_id}/decision", {"approve": True}) for _ in range(3)]
    results = await asyncio.gather(*taps, *posts)
    answers = [await world.client.callback_answer(q, wait=5) for q in results[:3]]
    replies = results[3:]
    recorded = [a for a in answers if a and a["text"] == "✅ Approved. Sending the order…"]
    recorded += [r for r in replies if r.status == 200]
    assert len(recorded) == 1, (answers, replies)
    await eventually(lambda: _orders(world), 10)
    assert len(await _orders(world)) == 1


async def test_in_channel_mode_the_app_decides_the_channel_posts_signal(world_factory: WorldFactory) -> None:
    world = await world_factory(miniapp=True, signal_channel_id=CHANNEL)
    await world.subscribe(314)
    app, _ = await open_app(world, 314)
    signal_id = await world.accept_signal()
    post = await world.wait_message(CHANNEL, lambda m: bool(buttons(m)))

    async def offered() -> list[dict[str, Any]]:
        return list((await app.get("signals")).body["signals"])  # once the post's id is recorded

    [signal] = await eventually(offered, 10)
    assert signal["id"] == signal_id and signal["decision_id"] is None
    reply = await app.post(f"signals/{signal_id}/decision", {"approve": True})
    assert reply.status == 200 and "DM" in reply.body["text"]
    answer = await world.tap(314, CHANNEL, post["message_id"], buttons(post)[0])
    assert answer["text"] == "You already approved this signal."
    await world.wait_text(314, "🟢 Filled:")  # the result by DM, as for a tap on the post
    async with world.db.sessions() as s:
        [decision] = (await s.scalars(select(Decision))).all()
    assert (decision.via, decision.chat_id, decision.message_id) == ("channel", CHANNEL, post["message_id"])
    [line] = await audit_lines(world, "decision.approved")
    assert line.details["source"] == "miniapp" and line.details["via"] == "channel"


async def _orders(world: World) -> list[Order]:
    async with world.db.sessions() as s:
        return list((await s.scalars(select(Order).where(Order.status == "filled"))).all())


async def test_a_decision_body_must_say_approve_or_reject(world: World) -> None:
    await world.subscribe(313)
    app, _ = await open_app(world, 313)
    signal_id = await world.accept_signal()
    await signal_dm(world, 313)
    for body in ({}, {"approve": "yes"}, {"approve": True, "extra": 1}):
        reply = await app.post(f"signals/{signal_id}/decision", body)
        assert reply.status == 422 and reply.body["errors"], body
    assert (await app.post("signals/not-a-signal/decision", {"approve": True})).status == 404
    async with world.db.sessions() as s:
        assert {d.status for d in (await s.scalars(select(Decision))).all()} == {"pending"}


# ---------------------------------------------------------------------- a subscriber sees only their own


async def test_a_subscriber_sees_and_acts_on_their_own_data_only(world: World) -> None:
    await world.subscribe(320)
    await world.subscribe(321)
    ann, _ = await open_app(world, 320)
    bob, _ = await open_app(world, 321)
    position = await approved_position(world, ann)
    await eventually(lambda: world.events_processed(), 10)

    mine = (await ann.get("positions")).body
    assert [p["id"] for p in mine["positions"]] == [position.id]
    assert mine["positions"][0]["live"] is True and mine["positions"][0]["manageable"] is True
    theirs = (await bob.get("positions")).body
    assert theirs["positions"] == [] and all(a["id"] != position.account_id for a in theirs["accounts"])
    assert (await bob.get("signals")).body["signals"]  # Bob's own decision on the same signal

    refused = await bob.act(position.id, "close")
    assert refused.status == 404 and refused.problem
    async with world.db.sessions() as s:
        assert (await s.get(Position, position.id)).status == "open"  # type: ignore[union-attr]

    closed = await ann.act(position.id, "close")
    assert closed.status == 202
    await eventually(lambda: _closed(world, position.id), 10)
    history = (await ann.get("history?period=7d")).body
    assert [t["position_id"] for t in history["trades"]] == [position.id] and history["count"] == 1
    assert (await bob.get("history?period=7d")).body["trades"] == []
    assert (await ann.get("history?period=7d&instrument=eurusd")).body["count"] == 1
    assert (await ann.get("history?period=7d&instrument=XAUUSD")).body["trades"] == []
    wins = (await ann.get("history?period=all&outcome=win")).body["count"]
    losses = (await ann.get("history?period=all&outcome=loss")).body["count"]
    assert wins + losses == history["wins"] + history["losses"] <= 1
    for bad in ("period=13x", "outcome=maybe", "instrument=EUR%20USD"):
        reply = await ann.get(f"history?{bad}")
        assert reply.status == 422 and reply.problem, bad
    assert (await ann.get("stats?period=7d")).body["metrics"]["trades"] == 1
    assert (await bob.get("stats?period=7d")).body["metrics"]["trades"] == 0


async def _closed(world: World, position_id: int) -> bool:
    async with world.db.sessions() as s:
        position = await s.get(Position, position_id)
    return position is not None and position.status == "closed"


async def test_close_half_and_stop_to_entry_go_through_subscriber_updates_once(world: World) -> None:
    await world.subscribe(322)
    app, _ = await open_app(world, 322)
    position = await approved_position(world, app)
    volume = position.volume
    missing_key = await app.post(f"positions/{position.id}/close_half")
    assert missing_key.status == 422 and missing_key.body["errors"][0]["field"] == "Idempotency-Key"
    key = uuid.uuid4().hex
    first = await app.act(position.id, "close_half", key)
    again = await app.act(position.id, "close_half", key)  # a retry of the same intent
    assert first.status == again.status == 202
    assert first.body["replayed"] is False and again.body["replayed"] is True
    assert first.body["update_id"] == again.body["update_id"]

    async def halved() -> bool:
        async with world.db.sessions() as s:
            row = await s.get(Position, position.id)
        return row is not None and row.volume < volume

    await eventually(halved, 10)
    world.prices.set("EURUSD", "1.10200", "1.10210")  # in profit: the entry is a valid stop
    assert (await app.act(position.id, "breakeven")).status == 202

    async def at_entry() -> bool:
        async with world.db.sessions() as s:
            row = await s.get(Position, position.id)
        return row is not None and row.sl is not None and row.sl >= row.open_price

    await eventually(at_entry, 10)
    assert (await app.act(position.id, "close")).status == 202
    await eventually(lambda: _closed(world, position.id), 10)
    late = await app.act(position.id, "close")
    assert late.status == 409 and late.body["type"] == "urn:tradebot:problem:position_closed"
    assert (await app.act(position.id, "explode")).status == 404


# ---------------------------------------------------------------------- settings and plan


async def test_settings_are_checked_whole_before_anything_changes(world: World) -> None:
    await world.subscribe(330)
    app, _ = await open_app(world, 330)
    before = (await app.get("settings")).body
    bad = await app.request(
        "PATCH", "/app/api/settings", {"notifications": False, "auto_risk_percent": "11", "colour": "red"}
    )
    assert bad.status == 422 and {e["field"] for e in bad.body["errors"]} == {"auto_risk_percent", "colour"}
    assert (await app.get("settings")).body == before
    good = await app.request(
        "PATCH", "/app/api/settings", {"notifications": False, "language": "es", "auto_risk_percent": 0.5}
    )
    assert good.status == 200
    assert good.body["notifications"] is False and good.body["language"] == "es"
    assert good.body["auto"]["risk_percent"] == "0.5"
    me = await app.get("me")
    assert me.body["locale"] == "es" and me.body["texts"]["approve"] == "✅ Aprobar"
    plan = (await app.get("plan")).body
    assert plan["billing"] is False and plan["plan"]["state"] == "none"
    assert plan["referral"]["link"].endswith(plan["referral"]["code"])


# ---------------------------------------------------------------------- admin


async def test_turning_auto_execution_on_needs_a_plan_that_has_it(world_factory: WorldFactory) -> None:
    world = await world_factory(miniapp=True, billing="on")
    await world.subscribe(331)
    app, _ = await open_app(world, 331)
    before = (await app.get("settings")).body
    assert before["auto"]["entitled"] is False
    reply = await app.request("PATCH", "/app/api/settings", {"auto_enabled": True, "notifications": False})
    assert reply.status == 403 and reply.body["type"] == "urn:tradebot:problem:plan_required"
    assert reply.body["detail"] == "Your plan does not include automatic execution."
    assert (await app.get("settings")).body == before  # the notifications stayed as they were


async def test_the_admin_api_is_for_admins_only(world: World) -> None:
    await world.subscribe(340)
    await world.user(ADMIN, "Alex")
    app, _ = await open_app(world, 340)
    for method, path, body in (
        ("GET", "admin/status", None),
        ("POST", "admin/pause", {}),
        ("POST", "admin/closeall", {"confirm": True}),
    ):
        reply = await app.request(method, "/app/api/" + path, body)
        assert reply.status == 403 and reply.problem, path
    refusals = await audit_lines(world, "admin.refused")
    assert len(refusals) == 3 and {r.actor for r in refusals} == {"tg:340"}
    assert (await world.services.control.is_paused()) is False

    admin, _ = await open_app(world, ADMIN)
    status = await admin.get("admin/status")
    assert status.status == 200 and status.body["paused"] is False and status.body["accounts_total"] >= 1
    assert (await admin.post("admin/closeall", {})).status == 422  # needs confirm: true
    paused = await admin.post("admin/pause", {})
    assert paused.status == 200 and paused.body["changed"] is True
    assert await world.services.control.is_paused()
    [line] = await audit_lines(world, "admin.pause")
    assert line.actor == f"tg:{ADMIN}"
    assert (await app.get("me")).body["paused"] is True
    resumed = await admin.post("admin/resume", None)
    assert resumed.status == 200 and not await world.services.control.is_paused()
    account = await world.account_of(340)
    assert account is not None
    one = await admin.post("admin/pause", {"account": account.id})
    assert one.status == 200 and one.body["accounts"][0]["trading_state"] == "reducing"
    assert (await admin.post("admin/pause", {"account": 999999})).status == 404
    assert (await admin.post("admin/pause", {"account": "1", "extra": 1})).status == 422


# ---------------------------------------------------------------------- live, page, bot


async def test_the_page_hears_of_a_new_signal_as_it_arrives(world: World) -> None:
    await world.subscribe(350)
    app, _ = await open_app(world, 350)
    assert world.miniapp is not None
    world.miniapp.keepalive_seconds = 0.2  # a page that went away is noticed at the next keep-alive
    url = f"{app.base}/app/api/events"
    timeout = aiohttp.ClientTimeout(total=15)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.get(url, headers={"Authorization": f"Bearer {app.token}"}) as stream,
    ):
        assert stream.status == 200 and stream.content_type == "text/event-stream"
        await stream.content.readuntil(b": connected\n\n")
        await eventually(lambda: _connected(world), 5)
        await world.accept_signal()
        hints = []
        while not any("signals" in h["topics"] for h in hints):
            frame = (await stream.content.readuntil(b"\n\n")).decode()
            if frame.startswith("event: update"):
                hints.append(json.loads(frame.split("data: ", 1)[1]))
        assert hints[0]["type"] == "signal.accepted"
    await eventually(lambda: _disconnected(world), 5)


async def _connected(world: World) -> bool:
    return world.miniapp is not None and world.miniapp.hub.clients == 1


async def _disconnected(world: World) -> bool:
    return world.miniapp is not None and world.miniapp.hub.clients == 0


async def test_the_page_loads_telegrams_script_locally_under_a_strict_policy(world: World) -> None:
    app = AppUser(world, 0)
    redirect = await app.request("GET", "/app", headers={})
    assert redirect.status == 200  # followed: /app -> /app/
    page = await app.request("GET", "/app/")
    assert page.status == 200 and '<script src="/app/static/telegram-web-app.js"></script>' in page.body
    assert "script-src 'self';" in page.headers["Content-Security-Policy"]
    script = await app.request("GET", "/app/static/telegram-web-app.js")
    assert script.status == 200 and "tgWebAppData" in script.body
    assert (await app.request("GET", "/app/static/../page.html")).status == 404


async def test_the_page_loads_telegrams_own_script_by_default(world_factory: WorldFactory) -> None:
    world = await world_factory(miniapp=True, miniapp_script="telegram")
    page = await AppUser(world, 0).request("GET", "/app/")
    assert '<script src="https://telegram.org/js/telegram-web-app.js"></script>' in page.body
    assert "script-src 'self' https://telegram.org;" in page.headers["Content-Security-Policy"]


async def test_app_command_and_menu_button_open_the_mini_app(world: World) -> None:
    await world.subscribe(360, "es")
    url = world.settings.miniapp_public_url()
    assert (await world.client.menu_button(360)) == {
        "type": "web_app",
        "text": "📱 App",
        "web_app": {"url": url},
    }
    await world.say(360, "/app")
    message = await world.wait_message(360, lambda m: "web_app" in json.dumps(m.get("reply_markup") or {}))
    [[button]] = message["reply_markup"]["inline_keyboard"]
    assert button == {"text": "📱 Abrir la app", "web_app": {"url": url}}
    assert (await world.client.menu_button(360))["text"] == "📱 App"
    opened = await world.client.open_web_app(360, message_id=message["message_id"])
    assert opened["source"] == "button" and opened["init_data_unsafe"]["user"]["language_code"] == "es"
    app = AppUser(world, 360)
    assert (await app.post("session", {"init_data": opened["init_data"]})).status == 200


async def test_without_a_public_url_there_is_no_mini_app_button(world_factory: WorldFactory) -> None:
    world = await world_factory()
    await world.subscribe(361)
    assert (await world.client.menu_button(361)) == {"type": "default"}
    await world.say(361, "/app")
    await world.wait_text(361, "MINIAPP_URL")
