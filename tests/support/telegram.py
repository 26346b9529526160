"""Telegram identities and emulator settings shared by the bot, emulator and loop tests."""

from __future__ import annotations

from typing import Any

from emulator import EmulatorConfig

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
OTHER_TOKEN = "987654321:BBHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw2"
BOT_ID = 123456789
BOT_USERNAME = "bot123456789_bot"

# Telegram's limits loosened, for tests that are not about limits (those build their own).
LOOSE_EMULATOR = EmulatorConfig(
    per_chat_burst=1000,
    per_chat_per_second=1000.0,
    global_per_second=1000.0,
    group_per_minute=1000,
    set_webhook_min_interval=0.0,
    webhook_retry_initial=0.05,
    webhook_retry_max=0.2,
    webhook_timeout=5.0,
)


def buttons(message: dict[str, Any]) -> list[str]:
    """The callback data of a message's inline buttons."""
    rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
    return [b["callback_data"] for row in rows for b in row if "callback_data" in b]


def url_buttons(message: dict[str, Any]) -> list[str]:
    """The URLs of a message's inline URL buttons."""
    rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
    return [b["url"] for row in rows for b in row if "url" in b]
