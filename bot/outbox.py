"""The persistent outbox: every notification to Telegram is a row first, then a call.

Writers add ``OutboxMessage`` rows with ``enqueue`` inside the transaction that causes them,
keyed by a ``dedupe_key`` (a replayed event or a second fan-out inserts nothing); the sender
(``bot.sender``) makes the calls. Payload keys are aiogram's method fields; ``_meta`` holds
instructions for the sender: ``ref`` (the dedupe key of the message an edit applies to: its
message id is filled in at send time), ``reply_to`` (the same, for a message sent as a reply to
it), ``decision_id`` / ``channel_signal_id`` (record the
delivered message id there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiogram.methods import (
    DeleteMessage,
    EditMessageReplyMarkup,
    EditMessageText,
    SendMessage,
    TelegramMethod,
)
from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from engine.store.db import utcnow
from engine.store.models import OutboxMessage

PENDING = "pending"
SENT = "sent"
FAILED = "failed"

METHODS: dict[str, type[TelegramMethod[Any]]] = {
    "sendMessage": SendMessage,
    "editMessageText": EditMessageText,
    "editMessageReplyMarkup": EditMessageReplyMarkup,
    "deleteMessage": DeleteMessage,
}


@dataclass(frozen=True, slots=True)
class Outgoing:
    dedupe_key: str
    chat_id: int
    method: str
    payload: dict[str, Any]


async def enqueue(session: AsyncSession, messages: Sequence[Outgoing]) -> None:
    """Add rows in the caller's transaction; a row whose ``dedupe_key`` exists is skipped."""
    if messages:
        statement, rows = _insert(session.get_bind().dialect.name, messages)
        await session.execute(statement, rows)  # executemany: one compiled statement, batched


def enqueue_on(conn: Connection, messages: Sequence[Outgoing]) -> None:
    """``enqueue`` on a synchronous connection (``TxWriter.call``: a fan-out off the event loop)."""
    if messages:
        statement, rows = _insert(conn.dialect.name, messages)
        conn.execute(statement, rows)


def _insert(dialect: str, messages: Sequence[Outgoing]) -> tuple[Any, list[dict[str, Any]]]:
    for m in messages:
        if m.method not in METHODS:
            raise ValueError(f"outbox: unsupported method {m.method}")
    now = utcnow()
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(OutboxMessage).on_conflict_do_nothing(index_elements=["dedupe_key"])
    rows = [
        {
            "dedupe_key": m.dedupe_key[:128],
            "chat_id": m.chat_id,
            "method": m.method,
            "payload": m.payload,
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for m in messages
    ]
    return statement, rows


async def pending_count(session: AsyncSession) -> int:
    return int(
        await session.scalar(select(func.count(OutboxMessage.id)).where(OutboxMessage.status == PENDING)) or 0
    )
