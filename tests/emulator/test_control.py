"""The control API: faults, stats, live events, waiting for messages and answers, input checks."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter, TelegramServerError
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from emulator import BotAPIEmulator
from emulator.control import EmulatorClient, EmulatorControlError
from tests.support.emulator_world import CheckedClient
from tests.support.telegram import BOT_ID
from tests.support.waiting import until


async def test_faults_fail_the_next_calls_then_clear(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    await ctl.faults("sendMessage", 500, count=2)
    for _ in range(2):
        with pytest.raises(TelegramServerError, match="Internal Server Error: emulated fault"):
            await bot.send_message(alice, "x")
    await bot.send_message(alice, "third call passes")
    await ctl.faults("sendMessage", 429, retry_after=7)
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(alice, "x")
    assert caught.value.retry_after == 7
    await ctl.faults("*", 400, description="chat is being archived")
    with pytest.raises(TelegramBadRequest, match="Bad Request: chat is being archived"):
        await bot.get_me()
    stats = await ctl.stats()
    assert stats["errors"] == {"500": 2, "429": 1, "400": 1}
    assert stats["rate_limited"] == {"fault": 1} and stats["too_many_requests"] == 1
    assert stats["calls"]["sendMessage"] == 4 and stats["bots"][str(BOT_ID)]["calls"]["sendMessage"] == 4


async def test_delay_faults_slow_a_call_down(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    await ctl.faults("sendMessage", delay_ms=300)
    started = time.monotonic()
    await bot.send_message(alice, "slow")
    assert time.monotonic() - started >= 0.3
    assert await ctl.list_faults() == []  # used up: the next call is not delayed


async def test_faults_can_be_listed_and_cleared(ctl: CheckedClient, bot: Bot, alice: int) -> None:
    await ctl.faults("getMe", 502, count=3)
    listed = await ctl.list_faults()
    assert listed[0]["method"] == "getMe" and listed[0]["count"] == 3
    await ctl.clear_faults()
    assert (await bot.get_me()).id == BOT_ID
    with pytest.raises(EmulatorControlError, match="unknown method"):
        await ctl.faults("sendSmokeSignal", 500)


async def test_stats_reset(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    await bot.send_message(alice, "x")
    assert (await ctl.stats())["messages_per_chat"] == {str(alice): 1}
    await ctl.reset_stats()
    stats = await ctl.stats()
    assert stats["calls"] == {} and stats["messages_per_chat"] == {}


async def test_live_events(bot: Bot, ctl: CheckedClient, alice: int, emulator: BotAPIEmulator) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    async def listen() -> None:
        async with EmulatorClient(ctl.base_url) as watcher:
            async for event, data in watcher.events():
                seen.append((event, data))
                if event == "message_deleted":
                    return

    listener = asyncio.create_task(listen())
    await until(lambda: emulator.core.events.subscriber_count == 1)
    markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="Ok", callback_data="ok")]])
    await ctl.send(alice, "/start")
    sent = await bot.send_message(alice, "hello", reply_markup=markup)
    query_id = await ctl.tap(alice, alice, sent.message_id, "ok")
    await bot.answer_callback_query(query_id, text="noted")
    await bot.edit_message_text("hello again", chat_id=alice, message_id=sent.message_id)
    await bot.delete_message(alice, sent.message_id)
    await asyncio.wait_for(listener, 3)
    kinds = [event for event, _ in seen]
    assert kinds == ["user_message", "message_sent", "tapped", "callback_answered", "message_edited",
                     "message_deleted"]  # fmt: skip
    assert seen[1][1]["message"]["text"] == "hello" and seen[1][1]["chat_id"] == alice
    assert seen[3][1]["answer"]["text"] == "noted"
    assert seen[4][1]["message"]["text"] == "hello again"


async def test_stopping_ends_event_streams(emulator: BotAPIEmulator) -> None:
    async with EmulatorClient(emulator.base_url) as watcher:
        stream = watcher.events()
        reader = asyncio.create_task(anext(stream, None))
        await until(lambda: emulator.core.events.subscriber_count == 1)
        await emulator.stop()
        with contextlib.suppress(aiohttp.ClientError):
            assert await asyncio.wait_for(reader, 3) is None


async def test_waiting_for_messages_and_answers(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    first = await bot.send_message(alice, "first")

    async def later() -> None:
        await asyncio.sleep(0.2)
        await bot.send_message(alice, "second")

    task = asyncio.create_task(later())
    started = time.monotonic()
    newer = await ctl.messages(alice, after=first.message_id, wait=30)
    # woken by the message, not at the end of the wait (loose bound: a loaded machine)
    assert [m["text"] for m in newer] == ["second"] and time.monotonic() - started < 15
    await task
    assert await ctl.messages(alice, after=99, wait=0.2) == []
    markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="Ok", callback_data="ok")]])
    sent = await bot.send_message(alice, "tap me", reply_markup=markup)
    query_id = await ctl.tap(alice, alice, sent.message_id, "ok")
    answering = asyncio.create_task(bot.answer_callback_query(query_id, text="done"))
    answer = await ctl.callback_answer(query_id, wait=3)
    await answering
    assert answer is not None and answer["text"] == "done"
    assert await ctl.callback_answer("404404") is None


async def test_the_control_api_checks_its_input(ctl: CheckedClient, bot: Bot, alice: int) -> None:
    with pytest.raises(EmulatorControlError, match="ids are negative"):
        await ctl.add_chat(5, "channel", "Wrong id")
    with pytest.raises(EmulatorControlError, match="type must be one of"):
        await ctl.add_chat(-5, "forum", "Nope")
    with pytest.raises(EmulatorControlError, match="unknown user"):
        await ctl.send(999, "hi")
    with pytest.raises(EmulatorControlError, match="unknown chat"):
        await ctl.send(alice, "hi", chat_id=-404)
    with pytest.raises(EmulatorControlError, match="no bot message"):
        await ctl.tap(alice, alice, 77, "x")
    await ctl.add_chat(-1009, "channel", "News")
    with pytest.raises(EmulatorControlError, match="cannot post in a channel"):
        await ctl.send(alice, "hi", chat_id=-1009)
    await ctl.add_user(1002, "Bob")
    with pytest.raises(EmulatorControlError, match="own private chat"):
        await ctl.send(alice, "hi", chat_id=1002)


async def test_the_bot_must_be_known_or_named(emulator: BotAPIEmulator) -> None:
    async with EmulatorClient(emulator.base_url) as ctl:
        await ctl.add_user(1, "A")
        with pytest.raises(EmulatorControlError, match="no bot has called the API yet") as caught:
            await ctl.send(1, "hi")
        assert caught.value.status == 409
        sent = await ctl.send(1, "hi", bot_id=42)  # a bot named by id is created on demand
        assert sent["update_id"] == 1


async def test_cors_for_the_sandbox_page(emulator: BotAPIEmulator) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.options(emulator.base_url + "/_emulator/send") as resp:
            assert resp.status == 204 and resp.headers["Access-Control-Allow-Origin"] == "*"
        async with http.get(emulator.base_url + "/_emulator/chats") as resp:
            assert resp.headers["Access-Control-Allow-Origin"] == "*" and await resp.json() == []
