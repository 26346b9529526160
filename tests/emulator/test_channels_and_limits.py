"""Channel posts and their buttons; Telegram's flood limits answered with 429 and retry_after."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramRetryAfter
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from emulator.control import EmulatorClient
from tests.support.emulator_world import CheckedClient, EmulatorFactory, make_bot
from tests.support.telegram import TOKEN

CHANNEL = -1001234567890


async def test_channel_posts_have_sender_chat_and_no_from(bot: Bot, ctl: CheckedClient) -> None:
    await ctl.add_chat(CHANNEL, "channel", "Gold Signals", username="gold_signals")
    post = await bot.send_message("@gold_signals", "<b>XAUUSD</b> buy")
    assert post.chat.id == CHANNEL and post.chat.type == "channel" and post.chat.title == "Gold Signals"
    assert post.from_user is None and post.sender_chat is not None and post.sender_chat.id == CHANNEL
    [stored] = await ctl.messages(CHANNEL)
    assert "from" not in stored and stored["sender_chat"]["id"] == CHANNEL


async def test_many_subscribers_tap_one_channel_post(bot: Bot, ctl: CheckedClient) -> None:
    await ctl.add_chat(CHANNEL, "channel", "Gold Signals")
    await ctl.add_user(11, "Ann")
    await ctl.add_user(12, "Ben")
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Approve", callback_data="ap:7")]]
    )
    post = await bot.send_message(CHANNEL, "Signal 7", reply_markup=markup)
    first = await ctl.tap(11, CHANNEL, post.message_id, "ap:7")
    second = await ctl.tap(12, CHANNEL, post.message_id, "ap:7")
    updates = await bot.get_updates()
    queries = [u.callback_query for u in updates if u.callback_query]
    assert [q.id for q in queries] == [first, second]
    assert [q.from_user.id for q in queries] == [11, 12]
    for query in queries:
        assert query.message is not None and query.message.chat.type == "channel"
        assert query.message.sender_chat is not None and query.message.from_user is None  # type: ignore[union-attr]
    assert queries[0].chat_instance == queries[1].chat_instance


async def test_chat_listing_names_every_chat(ctl: CheckedClient, alice: int) -> None:
    await ctl.add_chat(CHANNEL, "channel", "Gold Signals")
    await ctl.add_chat(-100777, "supergroup", "Traders")
    listed = {c["id"]: c for c in await ctl.chats()}
    assert listed[alice]["type"] == "private" and listed[alice]["title"] == "Alice"
    assert listed[CHANNEL]["title"] == "Gold Signals" and listed[-100777]["type"] == "supergroup"


async def test_a_burst_to_one_chat_gets_429_with_retry_after(make_emulator: EmulatorFactory) -> None:
    emulator = await make_emulator(per_chat_burst=3, per_chat_per_second=1.0)
    bot = make_bot(emulator.base_url)
    async with EmulatorClient(emulator.base_url) as ctl:
        try:
            await bot.get_me()
            await ctl.add_user(21, "Cy")
            await ctl.add_user(22, "Di")
            for n in range(3):
                await bot.send_message(21, f"burst {n}")
            with pytest.raises(TelegramRetryAfter) as caught:
                await bot.send_message(21, "one too many")
            assert caught.value.retry_after == 1
            assert "Too Many Requests: retry after 1" in str(caught.value)
            await bot.send_message(22, "other chats are unaffected")
            await asyncio.sleep(caught.value.retry_after)  # waiting as told is the behaviour under test
            await bot.send_message(21, "after waiting, it passes")
            stats = await ctl.stats()
            assert stats["too_many_requests"] == 1 and stats["rate_limited"] == {"chat": 1}
            assert stats["messages_per_chat"] == {"21": 4, "22": 1}
            assert stats["errors"] == {"429": 1}
        finally:
            await bot.session.close()


async def test_the_429_answer_has_the_retry_after_header(make_emulator: EmulatorFactory) -> None:
    emulator = await make_emulator(per_chat_burst=1, per_chat_per_second=0.2)
    async with EmulatorClient(emulator.base_url) as ctl, aiohttp.ClientSession() as http:
        url = f"{emulator.base_url}/bot{TOKEN}/sendMessage"
        await http.post(f"{emulator.base_url}/bot{TOKEN}/getMe")
        await ctl.add_user(21, "Cy")
        await http.post(url, data={"chat_id": "21", "text": "a"})
        async with http.post(url, data={"chat_id": "21", "text": "b"}) as resp:
            body = await resp.json()
            assert resp.status == 429 and resp.headers["Retry-After"] == "5"
        assert body == {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 5",
            "parameters": {"retry_after": 5},
        }


async def test_about_30_messages_a_second_per_bot(make_emulator: EmulatorFactory) -> None:
    emulator = await make_emulator(global_per_second=5)
    bot = make_bot(emulator.base_url)
    async with EmulatorClient(emulator.base_url) as ctl:
        try:
            await bot.get_me()
            for user in range(1, 8):
                await ctl.add_user(user, f"U{user}")
            for user in range(1, 6):
                await bot.send_message(user, "fan-out")
            with pytest.raises(TelegramRetryAfter) as caught:
                await bot.send_message(6, "sixth in the same second")
            assert caught.value.retry_after == 1
            # paid broadcasts lift the per-bot limit
            await bot.send_message(7, "paid", allow_paid_broadcast=True)
            assert (await ctl.stats())["rate_limited"] == {"bot": 1}
        finally:
            await bot.session.close()


async def test_twenty_messages_a_minute_per_group(make_emulator: EmulatorFactory) -> None:
    emulator = await make_emulator(group_per_minute=2)
    bot = make_bot(emulator.base_url)
    async with EmulatorClient(emulator.base_url) as ctl:
        try:
            await bot.get_me()
            await ctl.add_chat(-100900, "supergroup", "Desk")
            await bot.send_message(-100900, "1")
            await bot.send_message(-100900, "2")
            with pytest.raises(TelegramRetryAfter) as caught:
                await bot.send_message(-100900, "3")
            assert 58 <= caught.value.retry_after <= 60
        finally:
            await bot.session.close()


async def test_limits_can_be_switched_off(make_emulator: EmulatorFactory) -> None:
    emulator = await make_emulator(rate_limits=False, per_chat_burst=1, global_per_second=1)
    bot = make_bot(emulator.base_url)
    async with EmulatorClient(emulator.base_url) as ctl:
        try:
            await bot.get_me()
            await ctl.add_user(21, "Cy")
            for n in range(5):
                await bot.send_message(21, str(n))
            assert (await ctl.stats())["too_many_requests"] == 0
        finally:
            await bot.session.close()
