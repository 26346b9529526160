"""Issue 19, the subscriber's and the admin's first hour in Telegram: both clocks on a signal (2),
refusals with their numbers (4), /help and the menus list every command (7), /stats in one message
with the equity now (8), the ops chat hears of close-all, refusals (one per signal) and names the
admin (9), money with its currency and Spanish formatted as Spanish (10)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aiogram.types import BotCommandScopeChat

from bot.callbacks import AdminCb, SettingsCb
from tests.support.bot_world import ADMIN, OPS_CHAT, World, WorldFactory
from tests.support.telegram import buttons

ROOT = Path(__file__).resolve().parents[2]


async def signal_dm(world: World, uid: int, symbol: str = "EURUSD") -> dict[str, Any]:
    return await world.wait_message(uid, lambda m: bool(buttons(m)) and symbol in (m.get("text") or ""))


def text_of(message: dict[str, Any]) -> str:
    return str(message.get("text") or message.get("caption") or "")


# ---------------------------------------------------------------------------------------- item 2


async def test_a_limit_signal_shows_the_approval_window_and_the_orders_life(world: World) -> None:
    await world.subscribe(501)
    body = {"instrument": "EURUSD", "side": "buy", "order_type": "limit", "entry": "1.09900"}
    await world.post_signal({**body, "sl": "1.09700", "tp": "1.10400", "ttl_seconds": 60})
    dm = await signal_dm(world, 501)
    assert re.search(r"Approve within 1 minute \(until \d+ \w+ \d{4}, \d\d:\d\d UTC\)", dm["text"]), dm[
        "text"
    ]
    assert "If approved, the limit order stays open up to 100 hours unless filled" in dm["text"]
    approve = buttons(dm)[0]
    await world.tap(501, 501, dm["message_id"], approve)
    placed = await world.wait_message(
        501, lambda m: m["message_id"] == dm["message_id"] and "Order placed" in m["text"]
    )
    assert re.search(r"It is cancelled if not filled by \d+ \w+ \d{4}, \d\d:\d\d UTC", placed["text"]), (
        placed["text"]
    )


async def test_a_market_signal_has_no_order_life_line(world: World) -> None:
    await world.subscribe(502)
    await world.accept_signal(ttl=900)
    dm = await signal_dm(world, 502)
    assert "Approve within 15 minutes" in dm["text"] and "stays open" not in dm["text"]


# ---------------------------------------------------------------------------------------- item 4


async def test_a_refusal_tells_the_subscriber_the_numbers_in_their_language(world: World) -> None:
    await world.subscribe(511, "en")
    await world.subscribe(512, "es")
    await world.accept_signal(sl="1.09800", tp="1.10300")  # at the ask 1.10010: R:R 1.38 < MIN_RR 1.5
    for uid, expected in (
        (511, "the reward-to-risk ratio at the market is 1.38, below the minimum 1.5"),
        (512, "la relación beneficio/riesgo al precio de mercado es 1,38, por debajo del mínimo 1,5"),
    ):
        dm = await signal_dm(world, uid)
        await world.tap(uid, uid, dm["message_id"], buttons(dm)[0])
        done = await world.wait_message(
            uid, lambda m, d=dm: m["message_id"] == d["message_id"] and "⚠️" in m["text"]
        )
        assert expected in done["text"], done["text"]


# ---------------------------------------------------------------------------------------- item 7


def registered_commands() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "bot" / "routers").glob("*.py"):
        for args in re.findall(r"Command\(([^)]*)\)", path.read_text()):
            found |= set(re.findall(r'"(\w+)"', args))
    found.add("start")  # registered with CommandStart()
    return found - {"cancel", "plans"}  # /cancel ends a dialogue; /plans is /subscribe's alias


# /positions is everyone's (a subscriber's own positions), an admin's is wider
ADMIN_ONLY = {"status", "pause", "resume", "closeall", "refund", "payout", "leaderboard"}


async def test_help_and_menus_list_every_command_grouped(world_factory: WorldFactory) -> None:
    world = await world_factory(start=False)
    await world.user(ADMIN, "Boss")  # known to Telegram before the menus are set
    await world.start_bot()
    everything = registered_commands()
    assert {"stats", "export", "subscribe", "auto", "invite", "referrals", "refund", "payout"} <= everything
    await world.user(521)
    await world.say(521, "/help")
    text = (await world.wait_text(521, "Getting started"))["text"]
    assert all(f"/{c}" in text for c in everything - ADMIN_ONLY), text
    assert not any(f"/{c}:" in text for c in ADMIN_ONLY)
    assert "Trading" in text and "Plans and referrals" in text
    await world.say(ADMIN, "/help")
    admin_text = (await world.wait_text(ADMIN, "Admin"))["text"]
    assert all(f"/{c}" in admin_text for c in everything), admin_text

    bot = world.rt().bot
    chips = {c.command for c in await bot.get_my_commands()}
    assert chips == everything - ADMIN_ONLY
    admin_chips = {c.command for c in await bot.get_my_commands(scope=BotCommandScopeChat(chat_id=ADMIN))}
    assert admin_chips == everything
    spanish = {c.command for c in await bot.get_my_commands(language_code="es")}
    assert spanish == chips


async def test_the_readme_lists_every_command() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [c for c in registered_commands() if f"`/{c}" not in readme]
    assert not missing, missing


# ---------------------------------------------------------------------------------------- item 8


async def test_stats_is_one_photo_with_the_numbers_and_the_equity_now(world: World) -> None:
    await world.subscribe(531)
    await world.say(531, "/stats")
    photo = await world.wait_message(531, lambda m: "photo" in m)
    caption = photo.get("caption", "")
    assert "Performance: My accounts" in caption and "Equity now: 10,000.00 USD" in caption, caption
    later = [m for m in await world.messages(531) if m["message_id"] > photo["message_id"]]
    assert later == []  # one message, not text then chart


# ---------------------------------------------------------------------------------------- item 9


async def test_ops_hears_of_pause_by_name_and_of_closeall(world: World) -> None:
    await world.user(ADMIN, "Boss", username="boss_alex")
    await world.say(ADMIN, "/start")
    await world.say(ADMIN, "/pause")
    paused = await world.wait_text(OPS_CHAT, "Trading paused by")
    assert "@boss_alex" in paused["text"] and "tg:" not in paused["text"]
    await world.say(ADMIN, "/closeall")
    prompt = await world.wait_message(ADMIN, lambda m: any(b.startswith("adm:") for b in buttons(m)))
    yes = next(b for b in buttons(prompt) if AdminCb.unpack(b).action == "closeall")
    await world.tap(ADMIN, ADMIN, prompt["message_id"], yes)
    report = await world.wait_text(OPS_CHAT, "Close-all by")
    assert "@boss_alex" in report["text"] and "closed 0 of 0 positions" in report["text"]


async def test_ops_gets_one_refusal_summary_per_signal(world: World) -> None:
    for uid in (541, 542, 543):
        await world.subscribe(uid)
    await world.accept_signal(sl="1.09800", tp="1.10300")  # refused for everyone: R:R 1.38
    for uid in (541, 542, 543):
        dm = await signal_dm(world, uid)
        await world.tap(uid, uid, dm["message_id"], buttons(dm)[0])
    summary = await world.wait_text(OPS_CHAT, "3 orders refused", timeout=10)
    assert "3 × the reward-to-risk ratio is below the minimum" in summary["text"]
    refusals = [m for m in await world.messages(OPS_CHAT) if "orders refused" in (m.get("text") or "")]
    assert len(refusals) == 1  # one message, edited as refusals came in


# ---------------------------------------------------------------------------------------- item 10


async def test_spanish_settings_dates_and_numbers(world: World) -> None:
    await world.subscribe(551, "es")
    await world.say(551, "/settings")
    panel = await world.wait_text(551, "Idioma")
    assert "Notificaciones: activadas" in panel["text"]
    english = SettingsCb(field="lang", value="en").pack()
    assert (await world.tap(551, 551, panel["message_id"], english))["text"] == "Saved."
    spanish = SettingsCb(field="lang", value="es").pack()
    assert (await world.tap(551, 551, panel["message_id"], spanish))["text"] == "Guardado."

    await world.accept_signal(sl="1.09800", tp="1.10600")
    dm = await signal_dm(world, 551)
    await world.tap(551, 551, dm["message_id"], buttons(dm)[0])
    done = await world.wait_message(
        551, lambda m: m["message_id"] == dm["message_id"] and "Ejecutada" in m["text"]
    )
    assert re.search(r"Aprobada el \d+ \w+ \d{4}, \d\d:\d\d UTC", done["text"]), done["text"]
    assert "a las" not in done["text"]
    assert "a 1,1001" in done["text"] and "1.1001" not in done["text"]  # one decimal separator


async def test_money_always_has_its_currency(world: World) -> None:
    await world.subscribe(561)
    await world.accept_signal(sl="1.09800", tp="1.10600")
    dm = await signal_dm(world, 561)
    await world.tap(561, 561, dm["message_id"], buttons(dm)[0])
    await world.wait_message(561, lambda m: m["message_id"] == dm["message_id"] and "Filled" in m["text"])
    await world.user(ADMIN, "Boss")
    await world.say(ADMIN, "/closeall")
    prompt = await world.wait_message(ADMIN, lambda m: any(b.startswith("adm:") for b in buttons(m)))
    yes = next(b for b in buttons(prompt) if AdminCb.unpack(b).action == "closeall")
    await world.tap(ADMIN, ADMIN, prompt["message_id"], yes)
    report = await world.wait_text(ADMIN, "Closed 1 of 1 positions")
    assert re.search(r"P&L: [+-]?[\d,]+\.\d\d USD\.", report["text"]), report["text"]
    closed = await world.wait_text(561, "Position closed")
    assert re.search(r"Result: <b>[+-]?[\d,]+\.\d\d USD</b>|Result: [+-]?[\d,]+\.\d\d USD", closed["text"])
