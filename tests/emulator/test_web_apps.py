"""Mini Apps in the emulator: web_app buttons, the menu button, and the signed initData a user's
client opens the Web App with (checked here with Telegram's recipe and with aiogram's own check)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    MenuButtonCommands,
    MenuButtonDefault,
    MenuButtonWebApp,
    WebAppInfo,
)
from aiogram.utils.web_app import safe_parse_webapp_init_data

from emulator.control import EmulatorControlError
from tests.support.emulator_world import CheckedClient, EmulatorFactory, make_bot
from tests.support.telegram import TOKEN

APP = "https://app.example.org/app/"


def web_app_keyboard(url: str = APP, text: str = "Open") -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=text, web_app=WebAppInfo(url=url))]]
    )


def telegram_hash_ok(init_data: str, token: str = TOKEN) -> bool:
    fields = dict(parse_qsl(init_data, keep_blank_values=True))
    given = fields.pop("hash")
    check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    return hmac.compare_digest(hmac.new(secret, check.encode(), hashlib.sha256).hexdigest(), given)


async def test_the_menu_button_is_set_per_chat_or_by_default(
    bot: Bot, ctl: CheckedClient, alice: int
) -> None:
    assert isinstance(await bot.get_chat_menu_button(), MenuButtonCommands)
    assert isinstance(await bot.get_chat_menu_button(chat_id=alice), MenuButtonDefault)
    assert (await ctl.menu_button(alice)) == {"type": "default"}
    await bot.set_chat_menu_button(menu_button=MenuButtonWebApp(text="App", web_app=WebAppInfo(url=APP)))
    assert (await ctl.menu_button(alice)) == {"type": "web_app", "text": "App", "web_app": {"url": APP}}
    mine = f"{APP}?mine=1"
    await bot.set_chat_menu_button(
        chat_id=alice, menu_button=MenuButtonWebApp(text="Mine", web_app=WebAppInfo(url=mine))
    )
    got = await bot.get_chat_menu_button(chat_id=alice)
    assert isinstance(got, MenuButtonWebApp) and got.text == "Mine" and got.web_app.url == mine
    await bot.set_chat_menu_button(chat_id=alice, menu_button=MenuButtonDefault())
    assert (await ctl.menu_button(alice))["text"] == "App"  # back to the bot's default
    await bot.set_chat_menu_button(menu_button=MenuButtonCommands())
    assert (await ctl.menu_button(alice)) == {"type": "commands"}


async def test_bad_menu_buttons_are_refused(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    await ctl.add_chat(-1001000000001, "channel", "News")
    with pytest.raises(TelegramBadRequest, match="private chat"):
        await bot.set_chat_menu_button(
            chat_id=-1001000000001, menu_button=MenuButtonWebApp(text="App", web_app=WebAppInfo(url=APP))
        )
    with pytest.raises(TelegramBadRequest, match="Only HTTPS links are allowed"):
        await bot.set_chat_menu_button(
            menu_button=MenuButtonWebApp(text="App", web_app=WebAppInfo(url="ftp://x"))
        )
    with pytest.raises(TelegramBadRequest, match="text is empty"):
        await bot.set_chat_menu_button(menu_button=MenuButtonWebApp(text=" ", web_app=WebAppInfo(url=APP)))


async def test_web_app_buttons_only_in_private_chats_and_https_when_telegram_would(
    make_emulator: EmulatorFactory, ctl: CheckedClient, bot: Bot, alice: int
) -> None:
    sent = await bot.send_message(alice, "console", reply_markup=web_app_keyboard())
    assert sent.reply_markup is not None and sent.reply_markup.inline_keyboard[0][0].web_app.url == APP
    await ctl.add_chat(-1001000000002, "channel", "News")
    with pytest.raises(TelegramBadRequest, match="BUTTON_TYPE_INVALID"):
        await bot.send_message(-1001000000002, "x", reply_markup=web_app_keyboard())
    await bot.send_message(alice, "loopback", reply_markup=web_app_keyboard("http://127.0.0.1:8080/app/"))

    strict = await make_emulator(web_app_require_https=True)
    strict_bot = make_bot(strict.base_url)
    try:
        await strict_bot.get_me()
        async with CheckedClient(strict.base_url, ctl.spec) as strict_ctl:
            await strict_ctl.add_user(1001, "Alice")
        with pytest.raises(
            TelegramBadRequest, match=re.escape("Web App URL 'http://127.0.0.1:8080/app/' is invalid")
        ):
            await strict_bot.send_message(
                1001, "x", reply_markup=web_app_keyboard("http://127.0.0.1:8080/app/")
            )
    finally:
        await strict_bot.session.close()


async def test_opening_the_menu_button_gives_initdata_signed_as_telegram_signs(
    bot: Bot, ctl: CheckedClient, alice: int
) -> None:
    with pytest.raises(EmulatorControlError, match="does not open a Web App"):
        await ctl.open_web_app(alice)
    await bot.set_chat_menu_button(menu_button=MenuButtonWebApp(text="App", web_app=WebAppInfo(url=APP)))
    before = int(time.time())
    opened = await ctl.open_web_app(alice, theme="dark")
    assert opened["source"] == "menu" and opened["web_app_url"] == APP
    init_data = opened["init_data"]
    assert telegram_hash_ok(init_data)
    parsed = safe_parse_webapp_init_data(TOKEN, init_data)  # aiogram agrees
    assert parsed.user is not None and parsed.user.id == alice and parsed.user.language_code == "en"
    assert parsed.query_id and before <= int(parsed.auth_date.timestamp()) <= int(time.time())
    assert not telegram_hash_ok(init_data, token="987654321:" + "x" * 35)

    url = urlsplit(opened["url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == APP
    fragment = dict(part.split("=", 1) for part in url.fragment.split("&"))
    assert unquote(fragment["tgWebAppData"]) == init_data
    assert fragment["tgWebAppPlatform"] == "web" and fragment["tgWebAppVersion"]
    theme = json.loads(unquote(fragment["tgWebAppThemeParams"]))
    assert theme == opened["theme_params"] and theme["bg_color"] == "#212121"


async def test_opening_a_web_app_button_under_a_message(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    plain = await bot.send_message(alice, "no buttons")
    with pytest.raises(EmulatorControlError, match="name one web_app button"):
        await ctl.open_web_app(alice, message_id=plain.message_id)
    sent = await bot.send_message(alice, "console", reply_markup=web_app_keyboard(f"{APP}#old", "Console"))
    stale = int(time.time()) - 3 * 86400
    opened = await ctl.open_web_app(alice, message_id=sent.message_id, button="Console", auth_date=stale)
    assert opened["source"] == "button" and opened["url"].startswith(APP + "#tgWebAppData=")
    assert dict(parse_qsl(opened["init_data"]))["auth_date"] == str(stale) and telegram_hash_ok(
        opened["init_data"]
    )
    with pytest.raises(EmulatorControlError, match="no bot message"):
        await ctl.open_web_app(alice, message_id=9999)
    with pytest.raises(EmulatorControlError, match="theme must be one of"):
        await ctl.open_web_app(alice, message_id=sent.message_id, theme="sepia")
    await ctl.block(alice)
    with pytest.raises(EmulatorControlError, match="blocked"):
        await ctl.open_web_app(alice, message_id=sent.message_id)
