"""Sending, editing and deleting messages; answering callback queries."""

from __future__ import annotations

import mimetypes
from typing import Any

from emulator.errors import NOT_MODIFIED, QUERY_TOO_OLD, bad_request, forbidden
from emulator.files import document_json
from emulator.keyboards import parse_reply_markup
from emulator.methods.base import Call, method
from emulator.params import Upload
from emulator.spec import missing
from emulator.state import Chat, StoredMessage
from emulator.text import Formatted, format_text

CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)


def formatted(call: Call, text: str, *, caption: bool) -> Formatted:
    p = call.params
    world = call.core.world

    def resolve_user(user_id: int) -> dict[str, Any] | None:
        user = world.users.get(user_id)
        return user.json() if user else None

    cfg = call.config
    return format_text(
        text,
        p.string("parse_mode"),
        p.raw("caption_entities" if caption else "entities"),
        max_length=cfg.max_caption_length if caption else cfg.max_text_length,
        is_caption=caption,
        resolve_user=resolve_user,
    )


def markup_for(call: Call, chat: Chat) -> dict[str, Any] | None:
    markup, _ = parse_reply_markup(
        call.params.raw("reply_markup"),
        chat_type=chat.type,
        max_callback_bytes=call.config.max_callback_data_bytes,
        web_app_require_https=call.config.web_app_require_https,
    )
    return markup


def reply_target(call: Call, chat: Chat) -> dict[str, Any] | None:
    p = call.params
    reply = p.json_value("reply_parameters", "reply parameters")
    message_id: int | None
    allow_missing = p.flag("allow_sending_without_reply")
    if isinstance(reply, dict):
        message_id = reply.get("message_id") if isinstance(reply.get("message_id"), int) else None
        allow_missing = bool(reply.get("allow_sending_without_reply", allow_missing))
        if message_id is None:
            raise bad_request('Can\'t parse reply parameters: Field "message_id" must be of type Number')
    elif reply is not None:
        raise bad_request("Object expected as reply parameters")
    else:
        message_id = p.integer("reply_to_message_id")
    if not message_id:
        return None
    stored = call.core.find_message(call.bot, chat.id, message_id)
    if stored is None:
        if allow_missing:
            return None
        raise bad_request("message to be replied not found")
    view = stored.view()
    view.pop("reply_to_message", None)
    return view


def common_fields(call: Call, chat: Chat, fields: dict[str, Any]) -> dict[str, Any]:
    reply = reply_target(call, chat)
    if reply is not None:
        fields["reply_to_message"] = reply
    markup = markup_for(call, chat)
    if markup is not None:
        fields["reply_markup"] = markup
    if call.params.flag("protect_content"):
        fields["has_protected_content"] = True
    return fields


def send(call: Call, chat: Chat, fields: dict[str, Any]) -> dict[str, Any]:
    call.core.check_rate(call.bot, chat, paid_broadcast=call.params.flag("allow_paid_broadcast"))
    return call.core.store_bot_message(call.bot, chat, fields).view()


def caption_fields(call: Call) -> dict[str, Any]:
    caption = call.params.string("caption") or ""
    out: dict[str, Any] = {}
    if caption:
        text = formatted(call, caption, caption=True)
        if text.text:
            out["caption"] = text.text
            if text.entities:
                out["caption_entities"] = text.entities
    return out


@method("sendMessage")
async def send_message(call: Call) -> Any:
    chat = call.core.resolve_chat(call.bot, call.params.raw("chat_id"), for_send=True)
    text = formatted(call, call.params.string("text") or "", caption=False)
    fields: dict[str, Any] = {"text": text.text}
    if text.entities:
        fields["entities"] = text.entities
    return send(call, chat, common_fields(call, chat, fields))


@method("sendPhoto")
async def send_photo(call: Call) -> Any:
    chat = call.core.resolve_chat(call.bot, call.params.raw("chat_id"), for_send=True)
    given = call.params.file("photo")
    files = call.bot.files
    if isinstance(given, Upload):
        sizes = files.photo(given.data, call.config.max_photo_bytes)
    elif given is None:
        raise missing("photo")
    elif given.lower().startswith(("http://", "https://")):
        raise bad_request("Failed to get HTTP URL content")
    else:
        group = files.photo_group(given)
        if group is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        sizes = group
    fields = {"photo": sizes, **caption_fields(call)}
    return send(call, chat, common_fields(call, chat, fields))


@method("sendDocument")
async def send_document(call: Call) -> Any:
    chat = call.core.resolve_chat(call.bot, call.params.raw("chat_id"), for_send=True)
    given = call.params.file("document")
    files = call.bot.files
    if isinstance(given, Upload):
        if not given.data:
            raise bad_request("file must be non-empty")
        if len(given.data) > call.config.max_document_bytes:
            raise bad_request("file is too big")
        guessed = mimetypes.guess_type(given.filename or "")[0]
        part_type = given.content_type if given.content_type != "application/octet-stream" else None
        stored = files.add("document", given.data, file_name=given.filename, mime_type=guessed or part_type)
    elif given is None:
        raise missing("document")
    elif given.lower().startswith(("http://", "https://")):
        raise bad_request("Failed to get HTTP URL content")
    else:
        found = files.get(given)
        if found is None or found.kind != "document":
            raise bad_request("wrong file identifier/HTTP URL specified")
        stored = found
    fields = {"document": document_json(stored), **caption_fields(call)}
    return send(call, chat, common_fields(call, chat, fields))


@method("sendChatAction")
async def send_chat_action(call: Call) -> Any:
    call.core.resolve_chat(call.bot, call.params.raw("chat_id"), for_send=True)
    if call.params.string("action") not in CHAT_ACTIONS:
        raise bad_request("Wrong parameter action in request")
    return True


def editable(call: Call, what: str) -> tuple[Chat, StoredMessage]:
    p = call.params
    if p.has("inline_message_id") and not p.has("chat_id"):
        raise bad_request("MESSAGE_ID_INVALID")
    chat = call.core.resolve_chat(call.bot, p.raw("chat_id"), for_send=False)
    if chat.type == "private" and call.core.world.relation(call.bot, chat.id).blocked:
        raise forbidden("bot was blocked by the user")
    message_id = p.integer("message_id")
    if not message_id:
        raise bad_request("Message identifier is not specified")
    stored = call.core.find_message(call.bot, chat.id, message_id)
    if stored is None:
        raise bad_request(f"message to {what} not found")
    return chat, stored


def apply_edit(call: Call, chat: Chat, stored: StoredMessage, changes: dict[str, Any]) -> dict[str, Any]:
    """Apply ``changes`` (None removes a field); 400 'message is not modified' when nothing changes."""
    data = stored.data
    if all(data.get(key) == value for key, value in changes.items()):
        raise bad_request(NOT_MODIFIED)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    data["edit_date"] = call.core.now()
    call.core.publish_edit(call.bot, chat.id, stored)
    return stored.view()


@method("editMessageText")
async def edit_message_text(call: Call) -> Any:
    text_raw = call.params.string("text") or ""
    if not text_raw:
        raise bad_request("Message text is empty")
    chat, stored = editable(call, "edit")
    if not stored.by_bot:
        raise bad_request("message can't be edited")
    if "text" not in stored.data:
        raise bad_request("there is no text in the message to edit")
    text = formatted(call, text_raw, caption=False)
    changes = {"text": text.text, "entities": text.entities or None, "reply_markup": markup_for(call, chat)}
    return apply_edit(call, chat, stored, changes)


@method("editMessageCaption")
async def edit_message_caption(call: Call) -> Any:
    chat, stored = editable(call, "edit")
    if not stored.by_bot:
        raise bad_request("message can't be edited")
    if not any(key in stored.data for key in ("photo", "document")):
        raise bad_request("there is no caption in the message to edit")
    fields = caption_fields(call)
    changes = {
        "caption": fields.get("caption"),
        "caption_entities": fields.get("caption_entities"),
        "reply_markup": markup_for(call, chat),
    }
    return apply_edit(call, chat, stored, changes)


@method("editMessageReplyMarkup")
async def edit_message_reply_markup(call: Call) -> Any:
    chat, stored = editable(call, "edit")
    if not stored.by_bot:
        raise bad_request("message can't be edited")
    return apply_edit(call, chat, stored, {"reply_markup": markup_for(call, chat)})


@method("deleteMessage")
async def delete_message(call: Call) -> Any:
    chat, stored = editable(call, "delete")
    stored.deleted = True
    call.core.events.publish(
        "message_deleted", {"bot_id": call.bot.id, "chat_id": chat.id, "message_id": stored.message_id}
    )
    return True


@method("answerCallbackQuery")
async def answer_callback_query(call: Call) -> Any:
    p = call.params
    query = call.bot.callback_queries.get(p.string("callback_query_id") or "")
    expired = query is not None and call.core.clock() - query.created > call.config.callback_query_expiry
    if query is None or query.answer is not None or expired:
        raise bad_request(QUERY_TOO_OLD)
    text = p.string("text") or ""
    if len(text) > call.config.max_callback_answer_length:
        raise bad_request("MESSAGE_TOO_LONG")
    query.answer = {
        "text": text,
        "show_alert": p.flag("show_alert"),
        "url": p.string("url"),
        "cache_time": p.integer("cache_time", 0),
        "answered_at": call.core.now(),
    }
    call.core.events.publish(
        "callback_answered",
        {
            "bot_id": call.bot.id,
            "callback_query_id": query.id,
            "user_id": query.user_id,
            "chat_id": query.chat_id,
            "message_id": query.message_id,
            "answer": dict(query.answer),
        },
    )
    return True
