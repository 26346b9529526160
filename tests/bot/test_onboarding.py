"""/start, consent, /help, /settings, /stop through the real bot against the emulator."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from bot.callbacks import ConsentCb, SettingsCb, version_digest
from engine.store.models import AuditLog, User
from tests.support.bot_world import ADMIN, World
from tests.support.factories import CONSENT
from tests.support.telegram import buttons
from tests.support.waiting import eventually


async def user_row(world: World, uid: int) -> User | None:
    async with world.db.session() as session:
        return await session.scalar(select(User).where(User.telegram_id == uid))


async def test_start_registers_asks_consent_and_opens_a_paper_account(world: World) -> None:
    await world.user(101, "Ann", "en")
    await world.say(101, "/start ref_NOPE")
    consent = ConsentCb(digest=version_digest(CONSENT)).pack()
    disclaimer = await world.wait_message(101, lambda m: consent in buttons(m))
    assert f"version {CONSENT}" in disclaimer["text"]
    user = await user_row(world, 101)
    assert user is not None and user.consent_version is None and user.start_payload == "ref_NOPE"
    assert len(user.referral_code) == 8
    assert await world.account_of(101) is None  # nothing before consent

    answer = await world.tap(101, 101, disclaimer["message_id"], consent)
    assert answer["text"] == "Thank you!"
    welcome = await world.wait_text(101, "paper account starts with 10,000.00 USD")
    assert "/help" in welcome["text"]
    edited = next(m for m in await world.messages(101) if m["message_id"] == disclaimer["message_id"])
    assert "Accepted on" in edited["text"] and buttons(edited) == []
    user = await user_row(world, 101)
    assert user is not None and user.consent_version == CONSENT and user.consented_at is not None
    account = await world.account_of(101)
    assert account is not None and account.kind == "paper" and account.balance == Decimal("10000")


async def test_referral_payload_links_the_referrer(world: World) -> None:
    await world.subscribe(102)
    referrer = await user_row(world, 102)
    assert referrer is not None
    await world.user(103)
    await world.say(103, f"/start ref_{referrer.referral_code}")
    await eventually(lambda: user_row(world, 103))
    new = await user_row(world, 103)
    assert new is not None and new.referred_by_id == referrer.id


async def test_spanish_user_gets_spanish_text_and_can_switch_language(world: World) -> None:
    welcome = await world.subscribe(110, lang="es-AR")
    assert "cuenta de papel" in welcome["text"]  # Spanish from Telegram's language_code
    await world.say(110, "/settings")
    panel = await world.wait_text(110, "Idioma")
    english = SettingsCb(field="lang", value="en").pack()
    answer = await world.tap(110, 110, panel["message_id"], english)
    assert answer["text"] == "Saved."
    panel = next(m for m in await world.messages(110) if m["message_id"] == panel["message_id"])
    assert "Language: English" in panel["text"]
    user = await user_row(world, 110)
    assert user is not None and user.language == "en"
    await world.say(110, "/help")
    await world.wait_text(110, "<b>Commands</b>".replace("<b>", "").replace("</b>", ""))


async def test_notifications_toggle(world: World) -> None:
    await world.subscribe(111)
    await world.say(111, "/settings")
    panel = await world.wait_text(111, "Notifications: on")
    await world.tap(111, 111, panel["message_id"], SettingsCb(field="notify", value="off").pack())
    await eventually(lambda: _notifications_off(world, 111))


async def _notifications_off(world: World, uid: int) -> bool:
    user = await user_row(world, uid)
    return user is not None and not user.notifications


async def test_stop_then_start_reactivates(world: World) -> None:
    await world.subscribe(120)
    await world.say(120, "/stop")
    await world.wait_text(120, "You are unsubscribed")
    user = await user_row(world, 120)
    assert user is not None and user.status == "left"
    await world.say(120, "/start")
    await world.wait_text(120, "Welcome back")
    user = await user_row(world, 120)
    assert user is not None and user.status == "active"


async def test_changed_consent_version_asks_again(world: World) -> None:
    await world.subscribe(130)
    world.settings.consent_version = "2027-01"
    await world.say(130, "/start")
    await world.wait_text(130, "The risk disclaimer has changed")
    consent = ConsentCb(digest=version_digest("2027-01")).pack()
    disclaimer = await world.wait_message(130, lambda m: consent in buttons(m))
    assert "version 2027-01" in disclaimer["text"]
    old = ConsentCb(digest=version_digest(CONSENT)).pack()
    first = await world.wait_message(130, lambda m: "version 2026-11" in (m.get("text") or ""))
    assert old not in buttons(first)  # the accepted one lost its button
    await world.tap(130, 130, disclaimer["message_id"], consent)
    user = await eventually(lambda: _consented(world, 130, "2027-01"))
    assert user


async def _consented(world: World, uid: int, version: str) -> bool:
    user = await user_row(world, uid)
    return user is not None and user.consent_version == version


async def test_help_lists_admin_commands_only_for_admins(world: World) -> None:
    await world.user(ADMIN, "Boss")
    await world.say(ADMIN, "/help")
    await world.wait_text(ADMIN, "/closeall")
    await world.user(140)
    await world.say(140, "/help")
    text = (await world.wait_text(140, "/account"))["text"]
    assert "/closeall" not in text


async def test_blocking_marks_the_user_blocked(world: World) -> None:
    await world.subscribe(150)
    await world.client.block(150)

    async def blocked() -> bool:
        user = await user_row(world, 150)
        return user is not None and user.status == "blocked"

    await eventually(blocked)
    async with world.db.session() as session:
        actions = (await session.scalars(select(AuditLog.action))).all()
    assert "user.blocked" in actions


async def test_command_menus_are_set_in_both_languages(world: World) -> None:
    bot = world.rt().bot
    english = {c.command: c.description for c in await bot.get_my_commands()}
    spanish = {c.command: c.description for c in await bot.get_my_commands(language_code="es")}
    assert (
        set(english)
        == set(spanish)
        == {
            "start",
            "account",
            "positions",
            "app",
            "settings",
            "stats",
            "export",
            "subscribe",
            "auto",
            "invite",
            "referrals",
            "help",
            "stop",
        }
    )
    assert spanish["stats"] == "Rendimiento y gráfico de capital"
    assert english["stop"] == "Stop receiving signals" and spanish["stop"] == "Dejar de recibir señales"


async def test_every_update_runs_under_its_own_correlation_id(world: World) -> None:
    await world.subscribe(160)
    async with world.db.session() as session:
        lines = (await session.scalars(select(AuditLog).where(AuditLog.actor == "tg:160"))).all()
    ids = {line.correlation_id for line in lines}
    assert {line.action for line in lines} >= {"user.registered", "user.consented"}
    assert len(ids) == 2 and all(i and i.startswith("tg-") for i in ids)  # /start and the consent tap
