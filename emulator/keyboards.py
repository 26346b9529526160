"""``reply_markup`` as Telegram checks it: inline buttons need exactly one action, callback data
1-64 bytes, at most 100 buttons; only inline keyboards are echoed back in the Message."""

from __future__ import annotations

import json
from typing import Any

from emulator.errors import bad_request
from emulator.html_entities import checked_url
from emulator.webapp import check_web_app_url

_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
MAX_BUTTONS = 100


def parse_reply_markup(
    raw: Any, *, chat_type: str, max_callback_bytes: int = 64, web_app_require_https: bool = False
) -> tuple[dict[str, Any] | None, bool]:
    """Check ``raw`` and return (inline keyboard to store in the Message or None, whether it was given)."""
    if raw in (None, ""):
        return None, False
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise bad_request("Can't parse reply keyboard markup JSON object") from None
    if not isinstance(raw, dict):
        raise bad_request("Object expected as reply markup")
    if "keyboard" in raw:
        rows = raw["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request('Field "keyboard" must be an Array of Arrays')
        for row in rows:
            for button in row:
                if not isinstance(button, str | dict) or (isinstance(button, dict) and "text" not in button):
                    raise bad_request(
                        "Can't parse keyboard button: KeyboardButton must be a String or an Object"
                    )
        return None, True
    if "inline_keyboard" not in raw:
        return None, True
    rows = raw["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request('Field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays')
    out_rows: list[list[dict[str, Any]]] = []
    count = 0
    for row in rows:
        out_row: list[dict[str, Any]] = []
        for button in row:
            out_row.append(_inline_button(button, chat_type, max_callback_bytes, web_app_require_https))
            count += 1
        if out_row:
            out_rows.append(out_row)
    if count > MAX_BUTTONS:
        raise bad_request("reply markup is too long")
    if not out_rows:
        return None, True
    return {"inline_keyboard": out_rows}, True


def _inline_button(
    button: Any, chat_type: str, max_callback_bytes: int, web_app_require_https: bool
) -> dict[str, Any]:
    def fail(text: str) -> Exception:
        return bad_request(f"Can't parse inline keyboard button: {text}")

    if not isinstance(button, dict):
        raise fail("InlineKeyboardButton must be an Object")
    if "text" not in button:
        raise fail('Can\'t find field "text"')
    if not isinstance(button["text"], str):
        raise fail('Field "text" must be of type String')
    out: dict[str, Any] = {"text": button["text"]}
    for optional in ("icon_custom_emoji_id", "style"):
        if optional in button:
            out[optional] = button[optional]
    actions = [a for a in _ACTIONS if a in button and button[a] not in (None, "", False)]
    if not actions:
        raise fail("Text buttons are unallowed in the inline keyboard")
    action = actions[0]
    value = button[action]
    if action == "callback_data":
        if not isinstance(value, str):
            raise fail('Field "callback_data" must be of type String')
        if len(value.encode("utf-8")) > max_callback_bytes:
            raise bad_request("BUTTON_DATA_INVALID")
    elif action == "url":
        if not isinstance(value, str) or checked_url(value) is None:
            raise bad_request("BUTTON_URL_INVALID")
    elif action == "web_app":
        if chat_type != "private":
            raise bad_request("BUTTON_TYPE_INVALID")
        value = {
            "url": check_web_app_url(
                value, require_https=web_app_require_https, where="inline keyboard button"
            )
        }
    out[action] = value
    return out


def callback_buttons(markup: dict[str, Any] | None) -> list[str]:
    """Every callback_data in an inline keyboard."""
    if not markup:
        return []
    return [
        b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row if "callback_data" in b
    ]


def first_button_is_pay(markup: dict[str, Any] | None) -> bool:
    rows = (markup or {}).get("inline_keyboard") or []
    return bool(rows and rows[0] and rows[0][0].get("pay"))
