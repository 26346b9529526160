"""What users do: send messages and commands, tap inline buttons, block the bot, pay invoices."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from emulator.core import EmulatorCore
from emulator.errors import ControlError
from emulator.keyboards import callback_buttons
from emulator.payments import expire_checkout, find_link, payments_of, start_checkout
from emulator.state import BotState, CallbackQuery, Chat, User
from emulator.text import plain_text
from emulator.webapp import launch, web_app_buttons


def user_of(core: EmulatorCore, user_id: Any) -> User:
    try:
        user = core.world.users.get(int(user_id))
    except (TypeError, ValueError):
        user = None
    if user is None:
        raise ControlError(404, f"unknown user {user_id!r}; add it with POST /_emulator/users")
    return user


def chat_of(core: EmulatorCore, chat_id: Any) -> Chat:
    try:
        chat = core.world.chats.get(int(chat_id))
    except (TypeError, ValueError):
        chat = None
    if chat is None:
        raise ControlError(404, f"unknown chat {chat_id!r}")
    return chat


def _member_update(core: EmulatorCore, bot: BotState, user: User, old: str, new: str) -> None:
    def member(status: str) -> dict[str, Any]:
        out: dict[str, Any] = {"status": status, "user": bot.user_json()}
        if status == "kicked":
            out["until_date"] = 0
        return out

    payload = {
        "chat": core.world.chats[user.id].json(),
        "from": user.json(),
        "date": core.now(),
        "old_chat_member": member(old),
        "new_chat_member": member(new),
    }
    core.push_update(bot, "my_chat_member", payload)


def set_blocked(core: EmulatorCore, bot: BotState, user: User, blocked: bool) -> None:
    relation = core.world.relation(bot, user.id)
    if relation.blocked == blocked:
        return
    relation.blocked = blocked
    if blocked:
        _member_update(core, bot, user, "member", "kicked")
    else:
        relation.started = True
        _member_update(core, bot, user, "kicked", "member")
    core.events.publish(
        "user_blocked" if blocked else "user_unblocked", {"bot_id": bot.id, "user_id": user.id}
    )


def user_send(core: EmulatorCore, bot: BotState, user: User, chat: Chat, text: str) -> dict[str, Any]:
    """The user writes ``text``; the bot gets a ``message`` update (groups: subject to privacy mode)."""
    if not text:
        raise ControlError(400, "text is empty")
    if chat.type == "channel":
        raise ControlError(400, "users cannot post in a channel")
    if chat.type == "private":
        if chat.id != user.id:
            raise ControlError(400, "a user writes in their own private chat (chat_id = user_id)")
        relation = core.world.relation(bot, user.id)
        if relation.blocked:
            set_blocked(core, bot, user, False)  # "Restart bot"
        relation.started = True
    formatted = plain_text(text)
    fields: dict[str, Any] = {"text": formatted.text}
    if formatted.entities:
        fields["entities"] = formatted.entities
    stored = core.store_user_message(bot, user, chat, fields)
    message = stored.view()
    update_id = None
    if chat.type == "private" or _bot_sees(core, bot, message):
        update_id = core.push_update(bot, "message", message)
    return {"message": message, "update_id": update_id}


def _bot_sees(core: EmulatorCore, bot: BotState, message: dict[str, Any]) -> bool:
    if not core.config.privacy_mode:
        return True
    text = message.get("text", "")
    for entity in message.get("entities", []):
        part = text[entity["offset"] : entity["offset"] + entity["length"]]
        if entity["type"] == "bot_command" and ("@" not in part or part.endswith("@" + bot.username)):
            return True
        if entity["type"] == "mention" and part[1:].lower() == bot.username.lower():
            return True
    return False


def tap(
    core: EmulatorCore, bot: BotState, user: User, chat: Chat, message_id: Any, data: Any
) -> dict[str, Any]:
    """The user taps the inline button carrying ``data`` under a bot message: a ``callback_query``."""
    if chat.type == "private" and chat.id != user.id:
        raise ControlError(400, "a user only sees their own private chat with the bot")
    try:
        stored = core.find_message(bot, chat.id, int(message_id))
    except (TypeError, ValueError):
        stored = None
    if stored is None or not stored.by_bot:
        raise ControlError(404, f"no bot message {message_id!r} in chat {chat.id}")
    buttons = callback_buttons(stored.data.get("reply_markup"))
    if not isinstance(data, str) or data not in buttons:
        raise ControlError(400, f"the message has no button with callback_data {data!r}; it has {buttons}")
    query = CallbackQuery(
        id=str(secrets.randbits(63)),
        user_id=user.id,
        chat_id=chat.id,
        message_id=stored.message_id,
        data=data,
        created=core.clock(),
    )
    bot.callback_queries[query.id] = query
    payload = {
        "id": query.id,
        "from": user.json(),
        "message": stored.view(),
        "chat_instance": bot.chat_instance(chat.id),
        "data": data,
    }
    update_id = core.push_update(bot, "callback_query", payload)
    core.events.publish(
        "tapped", {"bot_id": bot.id, "callback_query_id": query.id, "user_id": user.id, "chat_id": chat.id}
    )
    return {"callback_query_id": query.id, "update_id": update_id}


def open_web_app(core: EmulatorCore, bot: BotState, user: User, body: dict[str, Any]) -> dict[str, Any]:
    """The user opens the bot's Mini App: from a ``web_app`` button under a bot message in their
    chat (``message_id``, and ``button`` text when there are several), else from the menu button."""
    relation = core.world.relation(bot, user.id)
    if relation.blocked:
        raise ControlError(403, "the user has blocked the bot")
    raw_auth = body.get("auth_date")
    if raw_auth is None:
        auth_date = core.now()
    elif isinstance(raw_auth, int) and not isinstance(raw_auth, bool) and raw_auth > 0:
        auth_date = raw_auth
    else:
        raise ControlError(400, "auth_date must be a unix time (seconds)")
    theme = str(body.get("theme") or "light")
    if body.get("message_id") is not None:
        try:
            stored = core.find_message(bot, user.id, int(body["message_id"]))
        except (TypeError, ValueError):
            stored = None
        if stored is None or not stored.by_bot:
            raise ControlError(404, f"no bot message {body.get('message_id')!r} in chat {user.id}")
        buttons = web_app_buttons(stored.data.get("reply_markup"))
        wanted = body.get("button")
        if wanted is not None:
            buttons = [b for b in buttons if b["text"] == wanted]
        if len(buttons) != 1:
            names = [b["text"] for b in web_app_buttons(stored.data.get("reply_markup"))]
            raise ControlError(400, f"name one web_app button of the message (button=...); it has {names}")
        url, source = buttons[0]["web_app"]["url"], "button"
    else:
        menu = bot.menu_button(user.id)
        if menu.get("type") != "web_app":
            raise ControlError(400, "the bot's menu button in this chat does not open a Web App")
        url, source = menu["web_app"]["url"], "menu"
    opened = launch(bot, user, url, auth_date=auth_date, theme=theme)
    core.events.publish(
        "web_app_opened",
        {"bot_id": bot.id, "user_id": user.id, "source": source, "url": opened["web_app_url"]},
    )
    return {**opened, "source": source}


async def pay(core: EmulatorCore, bot: BotState, user: User, body: dict[str, Any]) -> dict[str, Any]:
    """The user pays an invoice message or link; waits (by default) for the bot's pre-checkout answer."""
    state = payments_of(bot)
    if body.get("link"):
        invoice = find_link(bot, str(body["link"]))
        if invoice is None:
            raise ControlError(404, "no invoice link like that for this bot")
        result_chat = user.id
    else:
        chat = chat_of(core, body.get("chat_id", user.id))
        try:
            key = (chat.id, int(body.get("message_id")))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ControlError(400, "pass message_id (an invoice message) or link") from None
        found = state.invoices.get(key)
        if found is None or core.find_message(bot, key[0], key[1]) is None:
            raise ControlError(404, f"no invoice message {key[1]} in chat {chat.id}")
        invoice = found
        result_chat = chat.id if chat.type in ("private", "group", "supergroup") else user.id
        if chat.type == "private" and chat.id != user.id:
            raise ControlError(400, "a user only sees their own private chat with the bot")
    checkout = start_checkout(core, bot, user, invoice, result_chat)
    if body.get("wait", True) is False:
        return {"status": "pending", "pre_checkout_query_id": checkout.id}
    try:
        return await asyncio.wait_for(asyncio.shield(checkout.outcome), core.config.pre_checkout_timeout)
    except TimeoutError:
        return expire_checkout(checkout)
