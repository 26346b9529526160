"""getMe, logOut/close, the bot's command lists and menu button, getChat and getFile."""

from __future__ import annotations

import json
import re
from typing import Any

from emulator.errors import bad_request
from emulator.methods.base import Call, method
from emulator.state import Chat
from emulator.webapp import parse_menu_button

_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_SCOPES = {
    "default": (),
    "all_private_chats": (),
    "all_group_chats": (),
    "all_chat_administrators": (),
    "chat": ("chat_id",),
    "chat_administrators": ("chat_id",),
    "chat_member": ("chat_id", "user_id"),
}


@method("getMe")
async def get_me(call: Call) -> Any:
    return {
        **call.bot.user_json(),
        "can_join_groups": True,
        "can_read_all_group_messages": not call.config.privacy_mode,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


@method("logOut")
async def log_out(call: Call) -> Any:
    return True


@method("close")
async def close(call: Call) -> Any:
    return True


def _scope_key(call: Call) -> tuple[str, str]:
    p = call.params
    scope = p.json_value("scope", "BotCommandScope")
    if scope is None:
        scope = {"type": "default"}
    if not isinstance(scope, dict):
        raise bad_request("Can't parse BotCommandScope: BotCommandScope must be an Object")
    kind = scope.get("type")
    if kind not in _SCOPES:
        raise bad_request("Can't parse BotCommandScope: Unsupported type specified")
    for name in _SCOPES[kind]:
        if scope.get(name) in (None, ""):
            raise bad_request(f"Can't parse BotCommandScope: Empty {name} specified")
    if "chat_id" in scope:
        call.core.resolve_chat(call.bot, scope["chat_id"], for_send=False)
    clean = {"type": kind, **{name: scope[name] for name in _SCOPES[kind]}}
    language = p.string("language_code") or ""
    if language and not re.fullmatch(r"[a-z]{2}", language):
        raise bad_request("LANG_CODE_INVALID")
    return json.dumps(clean, sort_keys=True), language


@method("setMyCommands")
async def set_my_commands(call: Call) -> Any:
    commands = call.params.json_value("commands", "commands")
    if not isinstance(commands, list):
        raise bad_request("Expected an Array of BotCommand")
    if len(commands) > 100:
        raise bad_request("BOT_COMMANDS_TOO_MUCH")
    clean: list[dict[str, Any]] = []
    for item in commands:
        if not isinstance(item, dict):
            raise bad_request("Can't parse BotCommand: expected an Object")
        command, description = item.get("command"), item.get("description")
        if not isinstance(command, str) or not isinstance(description, str):
            raise bad_request('Can\'t parse BotCommand: Field "command" must be of type String')
        command = command.lstrip("/")
        if not _COMMAND_RE.match(command):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(description) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        clean.append({"command": command, "description": description})
    key = _scope_key(call)
    if clean:
        call.bot.commands[key] = clean
    else:
        call.bot.commands.pop(key, None)
    return True


@method("deleteMyCommands")
async def delete_my_commands(call: Call) -> Any:
    call.bot.commands.pop(_scope_key(call), None)
    return True


@method("getMyCommands")
async def get_my_commands(call: Call) -> Any:
    return [dict(c) for c in call.bot.commands.get(_scope_key(call), [])]


def _menu_chat(call: Call) -> Chat | None:
    """The private chat a menu-button call names, or None for the bot's default button."""
    raw = call.params.raw("chat_id")
    if raw in (None, ""):
        return None
    chat = call.core.resolve_chat(call.bot, raw, for_send=False)
    if chat.type != "private":
        raise bad_request("chat_id must be a private chat")
    return chat


@method("setChatMenuButton")
async def set_chat_menu_button(call: Call) -> Any:
    chat = _menu_chat(call)
    button = parse_menu_button(
        call.params.json_value("menu_button", "MenuButton"),
        require_https=call.config.web_app_require_https,
    )
    key = None if chat is None else chat.id
    if button["type"] == "default":
        call.bot.menu_buttons.pop(key, None)
    else:
        call.bot.menu_buttons[key] = button
    return True


@method("getChatMenuButton")
async def get_chat_menu_button(call: Call) -> Any:
    chat = _menu_chat(call)
    if chat is None:
        return dict(call.bot.menu_buttons.get(None, {"type": "commands"}))
    return dict(call.bot.menu_buttons.get(chat.id, {"type": "default"}))


@method("getChat")
async def get_chat(call: Call) -> Any:
    chat = call.core.resolve_chat(call.bot, call.params.raw("chat_id"), for_send=False)
    return {
        **chat.json(),
        "accent_color_id": 0,
        "max_reaction_count": 11,
        "accepted_gift_types": {
            "unlimited_gifts": False,
            "limited_gifts": False,
            "unique_gifts": False,
            "premium_subscription": False,
            "gifts_from_channels": False,
        },
    }


@method("getFile")
async def get_file(call: Call) -> Any:
    stored = call.bot.files.get(call.params.string("file_id") or "")
    if stored is None:
        raise bad_request("invalid file_id")
    if len(stored.data) > call.config.max_download_bytes:
        raise bad_request("file is too big")
    return stored.file_json()
