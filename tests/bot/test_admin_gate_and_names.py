"""Every admin command is refused and audited alike; names shown to others cannot reorder a line."""

from __future__ import annotations

from sqlalchemy import select, update

from bot.admin_gate import ADMIN_COMMANDS, command_name
from engine.accounts.names import clean_name, display_name
from engine.store.models import AuditLog, User
from tests.support.bot_world import ADMIN, World
from tests.support.telegram import buttons
from tests.support.waiting import eventually

BIDI_AND_INVISIBLE = (
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200b\u200c\u200d\u200e\u200f\u2060\ufeff"
)


async def _refusals(world: World) -> list[AuditLog]:
    async with world.db.session() as session:
        query = select(AuditLog).where(AuditLog.action == "admin.refused")
        return list((await session.scalars(query)).all())


async def test_every_admin_command_from_a_non_admin_is_refused_and_audited(world: World) -> None:
    await world.subscribe(531)
    for name in sorted(ADMIN_COMMANDS):
        await world.say(531, f"/{name} 1 2")
    await world.say(531, "/Leaderboard@bot123456789_bot")

    async def all_audited() -> bool:
        return len(await _refusals(world)) >= len(ADMIN_COMMANDS) + 1

    await eventually(all_audited)
    lines = await _refusals(world)
    assert sorted(line.target or "" for line in lines) == sorted(
        [f"/{n}" for n in ADMIN_COMMANDS] + ["/leaderboard"]
    )
    assert {line.actor for line in lines} == {"tg:531"}
    refused = [m for m in await world.messages(531) if "admins only" in (m.get("text") or "")]
    assert len(refused) == len(ADMIN_COMMANDS) + 1
    assert {"refund", "payout", "leaderboard"} <= ADMIN_COMMANDS


async def test_admins_still_reach_their_commands(world: World) -> None:
    await world.user(ADMIN, "Boss")
    await world.say(ADMIN, "/leaderboard")
    await world.wait_text(ADMIN, "Nobody has invited anyone yet")
    assert await _refusals(world) == []


def test_command_names_are_parsed_like_telegram() -> None:
    assert command_name("/PAUSE@some_bot now") == "pause"
    assert command_name("pause") is None
    assert command_name("/") is None


def test_clean_name_strips_bidi_zero_width_and_control_characters() -> None:
    assert clean_name(f"Ev{BIDI_AND_INVISIBLE}il\x07 Name") == "Evil Name"
    assert clean_name(BIDI_AND_INVISIBLE) == ""
    assert clean_name("José 🙂") == "José 🙂"


class _Who:
    def __init__(self, username: str | None, first_name: str | None) -> None:
        self.telegram_id, self.username, self.first_name = 77, username, first_name


def test_display_name_falls_back_when_nothing_visible_is_left() -> None:
    assert display_name(_Who(None, "\u202eabc")) == "abc"
    assert display_name(_Who("\u200b", "\u202e")) == "#77"
    assert display_name(_Who("ok\u200bname", "x")) == "@okname"


async def test_admin_views_show_names_without_bidi_or_invisible_characters(world: World) -> None:
    await world.subscribe(532)
    await world.user(ADMIN, "Boss")
    async with world.db.session() as session:
        await session.execute(
            update(User)
            .where(User.telegram_id == 532)
            .values(username=None, first_name=f"\u202eAlice{BIDI_AND_INVISIBLE}Smith")
        )
    await world.accept_signal()
    dm = await world.wait_message(532, lambda m: bool(buttons(m)) and "EURUSD" in (m.get("text") or ""))
    await world.tap(532, 532, dm["message_id"], buttons(dm)[0])
    await world.wait_message(532, lambda m: m["message_id"] == dm["message_id"] and "Filled" in m["text"])

    await world.say(ADMIN, "/status")
    status = await world.wait_text(ADMIN, "Engine status")
    await world.say(ADMIN, "/positions")
    positions = await world.wait_text(ADMIN, "Open positions (1)")
    for text in (status["text"], positions["text"]):
        assert "AliceSmith" in text
        assert not set(BIDI_AND_INVISIBLE) & set(text)
