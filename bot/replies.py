"""Small helpers for answering in handlers."""

from __future__ import annotations

from aiogram.exceptions import TelegramBadRequest
from aiogram.types import InlineKeyboardMarkup, Message


async def edit_or_keep(message: Message, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    """Edit a message; an edit that changes nothing ("message is not modified") is not an error."""
    try:
        await message.edit_text(text, reply_markup=markup)
    except TelegramBadRequest as exc:
        if "message is not modified" not in exc.message:
            raise
