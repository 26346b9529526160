"""sendMessage, edits, deletes, keyboards and the errors Telegram gives for them, through aiogram."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters, WebAppInfo

from tests.support.emulator_world import CheckedClient
from tests.support.telegram import BOT_ID


def keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=d, callback_data=d) for d in data]]
    )


async def test_send_message_returns_telegrams_message(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    sent = await bot.send_message(alice, "<b>EURUSD</b> buy @ 1.0850 — /status", reply_markup=keyboard("ok"))
    assert sent.message_id == 1 and sent.chat.id == alice and sent.chat.type == "private"
    assert sent.from_user is not None and sent.from_user.id == BOT_ID and sent.sender_chat is None
    assert sent.text == "EURUSD buy @ 1.0850 — /status"
    assert [(e.type, e.offset, e.length) for e in sent.entities or []] == [
        ("bold", 0, 6),
        ("bot_command", 22, 7),
    ]
    stored = await ctl.messages(alice)
    assert [m["message_id"] for m in stored] == [1]
    assert stored[0]["reply_markup"] == {"inline_keyboard": [[{"text": "ok", "callback_data": "ok"}]]}


async def test_text_longer_than_4096_characters_is_refused(bot: Bot, alice: int) -> None:
    await bot.send_message(alice, "x" * 4096)
    with pytest.raises(TelegramBadRequest, match="Bad Request: message is too long"):
        await bot.send_message(alice, "x" * 4097)
    # the limit counts characters after entity parsing
    await bot.send_message(alice, "<b>" + "y" * 4096 + "</b>")


async def test_empty_text_after_parsing_is_refused(bot: Bot, alice: int) -> None:
    with pytest.raises(TelegramBadRequest, match="Bad Request: message text is empty"):
        await bot.send_message(alice, "<b> </b>")


async def test_callback_data_over_64_bytes_is_refused(bot: Bot, alice: int) -> None:
    await bot.send_message(alice, "ok", reply_markup=keyboard("é" * 32))  # 64 bytes
    with pytest.raises(TelegramBadRequest, match="Bad Request: BUTTON_DATA_INVALID"):
        await bot.send_message(alice, "too long", reply_markup=keyboard("é" * 32 + "x"))


async def test_inline_buttons_need_an_action_and_web_apps_stay_private(
    bot: Bot, ctl: CheckedClient, alice: int
) -> None:
    with pytest.raises(TelegramBadRequest, match="Text buttons are unallowed in the inline keyboard"):
        await bot.send_message(
            alice,
            "x",
            reply_markup=InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="bare")]]),
        )
    await ctl.add_chat(-1001, "channel", "Signals")
    app = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="app", web_app=WebAppInfo(url="https://127.0.0.1/app"))]]
    )
    await bot.send_message(alice, "private chats may have web apps", reply_markup=app)
    with pytest.raises(TelegramBadRequest, match="BUTTON_TYPE_INVALID"):
        await bot.send_message(-1001, "channels may not", reply_markup=app)


async def test_unknown_chats_blocked_users_and_strangers(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    with pytest.raises(TelegramBadRequest, match="Bad Request: chat not found"):
        await bot.send_message(5555, "hello?")
    await ctl.add_user(2002, "Stranger", started=False)
    with pytest.raises(
        TelegramForbiddenError, match="Forbidden: bot can't initiate conversation with a user"
    ):
        await bot.send_message(2002, "hi")
    await ctl.send(2002, "/start")
    await bot.send_message(2002, "now we can talk")
    await ctl.block(alice)
    with pytest.raises(TelegramForbiddenError, match="Forbidden: bot was blocked by the user"):
        await bot.send_message(alice, "still there?")
    await ctl.unblock(alice)
    await bot.send_message(alice, "welcome back")


async def test_edit_text_applies_and_drops_the_keyboard_unless_resent(
    bot: Bot, ctl: CheckedClient, alice: int
) -> None:
    sent = await bot.send_message(alice, "Signal #1", reply_markup=keyboard("approve", "reject"))
    edited = await bot.edit_message_text(
        "Signal #1 <i>approved</i>", chat_id=alice, message_id=sent.message_id
    )
    assert isinstance(edited, type(sent)) and edited.edit_date is not None
    assert edited.text == "Signal #1 approved" and edited.reply_markup is None
    [stored] = await ctl.messages(alice)
    assert stored["text"] == "Signal #1 approved" and "reply_markup" not in stored
    assert stored["entities"] == [{"type": "italic", "offset": 10, "length": 8}]


async def test_an_edit_that_changes_nothing_is_refused(bot: Bot, alice: int) -> None:
    sent = await bot.send_message(alice, "same", reply_markup=keyboard("a"))
    with pytest.raises(
        TelegramBadRequest, match="Bad Request: message is not modified: specified new message"
    ):
        await bot.edit_message_text(
            "same", chat_id=alice, message_id=sent.message_id, reply_markup=keyboard("a")
        )
    await bot.edit_message_reply_markup(chat_id=alice, message_id=sent.message_id, reply_markup=keyboard("b"))
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(
            chat_id=alice, message_id=sent.message_id, reply_markup=keyboard("b")
        )
    removed = await bot.edit_message_reply_markup(chat_id=alice, message_id=sent.message_id)
    assert not isinstance(removed, bool) and removed.reply_markup is None


async def test_edits_of_missing_or_foreign_messages_fail(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    with pytest.raises(TelegramBadRequest, match="Bad Request: message to edit not found"):
        await bot.edit_message_text("x", chat_id=alice, message_id=99)
    typed = await ctl.send(alice, "a user message")
    with pytest.raises(TelegramBadRequest, match="Bad Request: message can't be edited"):
        await bot.edit_message_text("x", chat_id=alice, message_id=typed["message"]["message_id"])


async def test_delete_message_once(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    sent = await bot.send_message(alice, "short-lived")
    assert await bot.delete_message(alice, sent.message_id) is True
    assert await ctl.messages(alice) == []
    with pytest.raises(TelegramBadRequest, match="Bad Request: message to delete not found"):
        await bot.delete_message(alice, sent.message_id)


async def test_replies_and_protected_content(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    asked = await ctl.send(alice, "/status")
    reply = await bot.send_message(
        alice,
        "all good",
        reply_parameters=ReplyParameters(message_id=asked["message"]["message_id"]),
        protect_content=True,
    )
    assert reply.reply_to_message is not None and reply.reply_to_message.text == "/status"
    assert reply.has_protected_content is True
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(alice, "?", reply_parameters=ReplyParameters(message_id=999))
    await bot.send_message(
        alice, "fine", reply_parameters=ReplyParameters(message_id=999, allow_sending_without_reply=True)
    )


async def test_parse_errors_come_back_as_telegram_words_them(bot: Bot, alice: int) -> None:
    with pytest.raises(TelegramBadRequest) as caught:
        await bot.send_message(alice, "price <b>1.0850 < 1.0900</b>")
    assert 'Bad Request: can\'t parse entities: Unsupported start tag "" at byte offset 16' in str(
        caught.value
    )
    with pytest.raises(TelegramBadRequest, match='Can\'t find end tag corresponding to start tag "b"'):
        await bot.send_message(alice, "<b>unclosed")
    with pytest.raises(TelegramBadRequest, match=r"Character '\.' is reserved"):
        await bot.send_message(alice, "1.0850", parse_mode="MarkdownV2")
    with pytest.raises(TelegramBadRequest, match="Bad Request: unsupported parse_mode"):
        await bot.send_message(alice, "x", parse_mode="BBCode")
    sent = await bot.send_message(alice, "*bold* 1\\.0850", parse_mode="MarkdownV2")
    assert sent.text == "bold 1.0850" and sent.entities is not None and sent.entities[0].type == "bold"


async def test_chat_actions_and_get_chat(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    assert await bot.send_chat_action(alice, "typing") is True
    with pytest.raises(TelegramBadRequest, match="wrong parameter action in request"):
        await bot.send_chat_action(alice, "dancing")
    chat = await bot.get_chat(alice)
    assert chat.id == alice and chat.type == "private" and chat.first_name == "Alice"


async def test_commands_per_scope_and_language(bot: Bot) -> None:
    from aiogram.types import BotCommand, BotCommandScopeAllPrivateChats

    commands = [
        BotCommand(command="start", description="Start"),
        BotCommand(command="status", description="S"),
    ]
    assert await bot.set_my_commands(commands) is True
    assert await bot.set_my_commands(commands[:1], scope=BotCommandScopeAllPrivateChats(), language_code="de")
    assert [c.command for c in await bot.get_my_commands()] == ["start", "status"]
    private = await bot.get_my_commands(scope=BotCommandScopeAllPrivateChats(), language_code="de")
    assert [c.command for c in private] == ["start"]
    assert await bot.get_my_commands(scope=BotCommandScopeAllPrivateChats()) == []
    assert await bot.delete_my_commands() is True
    assert await bot.get_my_commands() == []
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Bad-Name", description="x")])


async def test_close_and_log_out_are_harmless(bot: Bot) -> None:
    assert await bot.close() is True
    assert await bot.log_out() is True
    assert (await bot.get_me()).is_bot


async def test_explicit_entities_instead_of_parse_mode(bot: Bot, alice: int) -> None:
    from aiogram.types import MessageEntity

    sent = await bot.send_message(
        alice,
        "<b>literal</b> tags",
        parse_mode=None,
        entities=[
            MessageEntity(type="italic", offset=0, length=3),
            MessageEntity(type="url", offset=0, length=1),
        ],
    )
    assert sent.text == "<b>literal</b> tags"
    assert [(e.type, e.offset, e.length) for e in sent.entities or []] == [("italic", 0, 3)]
