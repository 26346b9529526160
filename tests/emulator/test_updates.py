"""getUpdates: long polling, offsets, limits, allowed_updates, conflicts; callback queries and expiry."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramConflictError
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from emulator import BotAPIEmulator
from tests.support.emulator_world import CheckedClient, EmulatorFactory, make_bot
from tests.support.telegram import BOT_ID
from tests.support.waiting import until


async def test_long_poll_blocks_until_an_update_arrives(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    started = time.monotonic()
    # a long timeout, so an answer well before it can only be the update waking the poll (the
    # bound is loose: on a loaded machine a wake-up may take seconds, never thirty)
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await asyncio.sleep(0.2)  # the poll is given time to return early; it must not
    assert not poll.done()
    await ctl.send(alice, "/start")
    updates = await asyncio.wait_for(poll, 25)
    assert time.monotonic() - started < 15
    [update] = updates
    assert update.message is not None and update.message.text == "/start"
    assert update.message.from_user is not None and update.message.from_user.id == alice
    assert [(e.type, e.offset, e.length) for e in update.message.entities or []] == [("bot_command", 0, 6)]


async def test_long_poll_returns_empty_at_its_timeout(bot: Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == []
    assert 0.9 <= time.monotonic() - started < 10  # at its timeout (loosely: a loaded machine)


async def test_timeout_is_capped(make_emulator: EmulatorFactory) -> None:
    emulator = await make_emulator(long_poll_max_timeout=0.3)
    bot = make_bot(emulator.base_url)
    try:
        started = time.monotonic()
        assert await bot.get_updates(timeout=50) == []
        assert time.monotonic() - started < 15  # at the 0.3 s cap, nowhere near the 50 s asked for
    finally:
        await bot.session.close()


async def test_offsets_confirm_and_limit_caps(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    for text in ("one", "two", "three"):
        await ctl.send(alice, text)
    first = await bot.get_updates(limit=2)
    assert [u.message.text for u in first if u.message] == ["one", "two"]
    again = await bot.get_updates()
    assert [u.update_id for u in again] == [u.update_id for u in first] + [first[-1].update_id + 1]
    rest = await bot.get_updates(offset=first[-1].update_id + 1)
    assert [u.message.text for u in rest if u.message] == ["three"]
    assert await bot.get_updates(offset=rest[-1].update_id + 1) == []
    for text in ("four", "five", "six"):
        await ctl.send(alice, text)
    last_only = await bot.get_updates(offset=-1)
    assert [u.message.text for u in last_only if u.message] == ["six"]


async def test_allowed_updates_filters_what_is_queued(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    await bot.get_updates(allowed_updates=["callback_query"])
    await ctl.send(alice, "ignored")
    assert await bot.get_updates() == []
    await bot.get_updates(allowed_updates=[])
    await ctl.send(alice, "seen")
    assert [u.message.text for u in await bot.get_updates() if u.message] == ["seen"]


async def test_a_second_poller_terminates_the_first(bot: Bot, emulator: BotAPIEmulator) -> None:
    other = make_bot(emulator.base_url)
    try:
        first = asyncio.create_task(bot.get_updates(timeout=5))
        await until(
            lambda: BOT_ID in emulator.core.world.bots and emulator.core.world.bots[BOT_ID].updates.polling
        )
        second = asyncio.create_task(other.get_updates(timeout=0))
        with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
            await asyncio.wait_for(first, 2)
        assert await second == []
    finally:
        await other.session.close()


async def test_group_privacy_mode(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    await ctl.add_chat(-100500, "supergroup", "Traders")
    await ctl.send(alice, "just chatting", chat_id=-100500)
    await ctl.send(alice, f"/status@bot{BOT_ID}_bot", chat_id=-100500)
    await ctl.send(alice, "/status@other_bot", chat_id=-100500)
    [update] = await bot.get_updates()
    assert update.message is not None and update.message.chat.type == "supergroup"
    assert update.message.text == f"/status@bot{BOT_ID}_bot"
    everything = await ctl.messages(-100500, include_users=True)
    assert len(everything) == 3


async def test_callback_query_from_a_private_chat(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Approve", callback_data="ap:1")]]
    )
    sent = await bot.send_message(alice, "Signal", reply_markup=markup)
    query_id = await ctl.tap(alice, alice, sent.message_id, "ap:1")
    [update] = await bot.get_updates()
    query = update.callback_query
    assert query is not None and query.id == query_id and query.data == "ap:1"
    assert query.from_user.id == alice and query.chat_instance
    assert query.message is not None and query.message.message_id == sent.message_id
    assert await ctl.callback_answer(query_id) is None
    assert await bot.answer_callback_query(query_id, text="Approved", show_alert=True) is True
    answer = await ctl.callback_answer(query_id)
    assert answer is not None and answer["text"] == "Approved" and answer["show_alert"] is True
    with pytest.raises(TelegramBadRequest, match="query is too old and response timeout expired"):
        await bot.answer_callback_query(query_id)


async def test_taps_must_match_a_button(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    from emulator.control import EmulatorControlError

    sent = await bot.send_message(alice, "no buttons")
    with pytest.raises(EmulatorControlError, match="no button with callback_data"):
        await ctl.tap(alice, alice, sent.message_id, "x")


async def test_callback_queries_expire(make_emulator: EmulatorFactory, spec: object) -> None:
    from tests.support.emulator_world import CheckedClient as Client

    emulator = await make_emulator(callback_query_expiry=0.3)
    bot = make_bot(emulator.base_url)
    ctl = Client(emulator.base_url, spec)  # type: ignore[arg-type]
    try:
        await bot.get_me()
        await ctl.add_user(5, "Eve")
        markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="Go", callback_data="go")]])
        sent = await bot.send_message(5, "x", reply_markup=markup)
        late = await ctl.tap(5, 5, sent.message_id, "go")
        await asyncio.sleep(0.4)
        assert await bot.get_updates() == []  # the expired query left the queue
        with pytest.raises(TelegramBadRequest, match="query is too old"):
            await bot.answer_callback_query(late)
        with pytest.raises(TelegramBadRequest, match="query is too old"):
            await bot.answer_callback_query("12345")
    finally:
        await ctl.close()
        await bot.session.close()


async def test_blocking_the_bot_sends_my_chat_member(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    await ctl.block(alice)
    [update] = await bot.get_updates()
    member = update.my_chat_member
    assert member is not None and member.chat.id == alice and member.from_user.id == alice
    assert member.old_chat_member.status == "member" and member.new_chat_member.status == "kicked"
    assert member.new_chat_member.user.id == BOT_ID


async def test_an_aiogram_dispatcher_polls_answers_and_handles_taps(
    bot: Bot, ctl: CheckedClient, alice: int
) -> None:
    from aiogram import Dispatcher, F, Router
    from aiogram.filters import CommandStart
    from aiogram.types import CallbackQuery, Message

    router = Router()

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        markup = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Agree", callback_data="agree")]]
        )
        await message.answer("Terms: <i>trading is risky</i>", reply_markup=markup)

    @router.callback_query(F.data == "agree")
    async def agree(query: CallbackQuery) -> None:
        await query.answer("Thanks")
        if query.message is not None:
            await bot.edit_message_text(
                "Agreed ✅", chat_id=query.message.chat.id, message_id=query.message.message_id
            )

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    polling = asyncio.create_task(dispatcher.start_polling(bot, polling_timeout=1, handle_signals=False))
    try:
        await ctl.send(alice, "/start")
        [terms] = await ctl.messages(alice, wait=5)
        assert terms["text"] == "Terms: trading is risky"
        query_id = await ctl.tap(alice, alice, terms["message_id"], "agree")
        answer = await ctl.callback_answer(query_id, wait=5)
        assert answer is not None and answer["text"] == "Thanks"
        [edited] = await ctl.messages(alice, wait=5)
        for _ in range(50):
            if edited["text"] == "Agreed ✅":
                break
            await asyncio.sleep(0.05)
            [edited] = await ctl.messages(alice)
        assert edited["text"] == "Agreed ✅" and "reply_markup" not in edited
    finally:
        await dispatcher.stop_polling()
        await asyncio.wait_for(polling, 5)
