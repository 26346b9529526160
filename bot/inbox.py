"""The durable Telegram inbox: every update is a row before Telegram is told it arrived.

Telegram forgets an update once it is confirmed: by the next ``getUpdates`` offset in polling
mode, by a 2xx answer in webhook mode. So ``InboxStore.store`` writes each delivery (a polling
batch, or one webhook POST) in one transaction first, and only then is it confirmed; a crash at
any moment loses nothing, and a redelivery inserts nothing (unique bot id + update id).

``InboxWorker`` handles the rows through the dispatcher: one chat's updates one at a time in
arrival order, different chats in parallel (up to ``concurrency``). A row is claimed by pushing
its ``lease_until`` forward (a conditional update, so two instances never take the same row) and
settled ``done`` (or ``failed``, with the error) after its handler returns. A handler that died
with its process leaves the row claimed; it is taken again once the lease has passed, so the
update is handled to the end (the handlers are idempotent: a second tap decides nothing twice).
A handler that meets a 429 longer than it may wait (``TelegramRetryAfter`` reaching the inbox)
hands its row back: pending again, due after ``retry_after``, the chat's later rows behind it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from loguru import logger
from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from engine.store.db import Database, utcnow
from engine.store.models import InboxUpdate

PENDING = "pending"
DONE = "done"
FAILED = "failed"


@dataclass(frozen=True)
class InboxConfig:
    concurrency: int = 32  # chats handled at the same time
    batch: int = 100
    poll_seconds: float = 1.0  # look for due rows at least this often (other instances' rows)
    lease_seconds: float = 60.0  # a claimed row is taken again after this (its handler died)
    hold_seconds: float = 0.0  # diagnostics and tests: rows wait this long before handling


def chat_key(raw: dict[str, Any]) -> int:
    """The chat an update belongs to (its handling order is per chat); 0 when it names none."""
    for kind, body in raw.items():
        if kind == "update_id" or not isinstance(body, dict):
            continue
        chat = body.get("chat")
        if chat is None and isinstance(body.get("message"), dict):
            chat = body["message"].get("chat")  # a callback query on a message
        if isinstance(chat, dict) and isinstance(chat.get("id"), int):
            return int(chat["id"])
        for who in ("from", "user"):
            sender = body.get(who)
            if isinstance(sender, dict) and isinstance(sender.get("id"), int):
                return int(sender["id"])
    return 0


def raw_update(update: Update) -> dict[str, Any]:
    """An aiogram ``Update`` as the JSON Telegram sent (field aliases, no unset fields)."""
    return update.model_dump(mode="json", by_alias=True, exclude_none=True)


class InboxStore:
    def __init__(self, db: Database, bot_id: int) -> None:
        self._db = db
        self.bot_id = bot_id

    async def store(self, updates: Sequence[dict[str, Any]]) -> None:
        """Write a delivery in one transaction; updates already stored are skipped."""
        rows = [
            {
                "bot_id": self.bot_id,
                "update_id": int(raw["update_id"]),
                "chat_key": chat_key(raw),
                "payload": raw,
                "status": PENDING,
                "attempts": 0,
                "received_at": utcnow(),
            }
            for raw in updates
        ]
        if not rows:
            return
        async with self._db.session() as session:
            insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
            statement = insert(InboxUpdate).on_conflict_do_nothing(index_elements=["bot_id", "update_id"])
            await session.execute(statement, rows)

    async def pending(self) -> int:
        async with self._db.session() as session:
            count = await session.scalar(
                select(func.count(InboxUpdate.id)).where(
                    InboxUpdate.bot_id == self.bot_id, InboxUpdate.status == PENDING
                )
            )
        return int(count or 0)


@dataclass
class _Row:
    id: int
    update_id: int
    chat_key: int
    payload: dict[str, Any]
    attempts: int
    received_at: float  # unix seconds


class InboxWorker:
    def __init__(
        self, store: InboxStore, db: Database, dispatcher: Dispatcher, bot: Bot, config: InboxConfig
    ) -> None:
        self._store = store
        self._db = db
        self._dispatcher = dispatcher
        self._bot = bot
        self.config = config
        self._wake = asyncio.Event()
        self._inflight: dict[int, asyncio.Task[None]] = {}  # chat key -> its handler
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.handled = 0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="inbox-worker")

    async def stop(self, seconds: float) -> None:
        """Take no new rows; let handlers in flight finish (their rows stay claimed if they do not)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        inflight = list(self._inflight.values())
        if inflight:
            _done, late = await asyncio.wait(inflight, timeout=seconds)
            for task in late:
                task.cancel()

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                idle = await self._tick()
                failures = 0
            except Exception as exc:
                failures += 1
                logger.opt(exception=exc).error("inbox worker failed; retrying")
                idle = min(30.0, self.config.poll_seconds * 2**failures)
            if idle > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=idle)
                except TimeoutError:
                    pass
            self._wake.clear()

    async def _tick(self) -> float:
        free = self.config.concurrency - len(self._inflight)
        if free <= 0:
            return self.config.poll_seconds
        rows, hold = await self._due(free)
        started = 0
        for row in rows:
            if row.chat_key in self._inflight or not await self._claim(row):
                continue
            row.attempts += 1
            task = asyncio.create_task(self._handle(row), name=f"inbox:{row.update_id}")
            self._inflight[row.chat_key] = task
            task.add_done_callback(self._finished(row.chat_key))
            started += 1
        if started:
            return 0.0
        return min(self.config.poll_seconds, hold) if hold is not None else self.config.poll_seconds

    def _finished(self, key: int) -> Any:
        def done(_task: asyncio.Task[None]) -> None:
            self._inflight.pop(key, None)
            self._wake.set()

        return done

    async def _due(self, limit: int) -> tuple[list[_Row], float | None]:
        """The oldest unhandled row of each chat that is not held elsewhere, oldest first."""
        now = utcnow()
        received_before = now - timedelta(seconds=self.config.hold_seconds)
        heads = (
            select(func.min(InboxUpdate.id))
            .where(InboxUpdate.bot_id == self._store.bot_id, InboxUpdate.status == PENDING)
            .group_by(InboxUpdate.chat_key)
        )
        async with self._db.session() as session:
            found = (
                await session.scalars(
                    select(InboxUpdate)
                    .where(
                        InboxUpdate.id.in_(heads),
                        or_(InboxUpdate.lease_until.is_(None), InboxUpdate.lease_until <= now),
                    )
                    .order_by(InboxUpdate.id)
                    .limit(limit + len(self._inflight))
                )
            ).all()
        rows: list[_Row] = []
        hold: float | None = None
        for r in found:
            if r.received_at > received_before:  # held back (hold_seconds)
                wait = (r.received_at - received_before).total_seconds()
                hold = wait if hold is None else min(hold, wait)
                continue
            rows.append(
                _Row(
                    r.id,
                    r.update_id,
                    r.chat_key,
                    dict(r.payload or {}),
                    r.attempts,
                    r.received_at.timestamp(),
                )
            )
        return rows, hold

    async def _claim(self, row: _Row) -> bool:
        now = utcnow()
        async with self._db.session() as session:
            result = await session.execute(
                update(InboxUpdate)
                .where(
                    InboxUpdate.id == row.id,
                    InboxUpdate.status == PENDING,
                    or_(InboxUpdate.lease_until.is_(None), InboxUpdate.lease_until <= now),
                )
                .values(
                    lease_until=now + timedelta(seconds=self.config.lease_seconds),
                    attempts=InboxUpdate.attempts + 1,
                )
            )
            return bool(getattr(result, "rowcount", 0))

    async def _handle(self, first: _Row) -> None:
        """Handle ``first``, then the chat's next rows in order while there are any."""
        row: _Row | None = first
        while row is not None:
            try:
                error = await self._feed(row)
            except TelegramRetryAfter as exc:
                await self._postpone(row, float(exc.retry_after))
                return
            row = await self._settle(row, error, take_next=not self._stopping)

    async def _postpone(self, row: _Row, seconds: float) -> None:
        """Flood control outlasted the handler's wait: the row is due again after ``seconds``."""
        logger.info("update {}: Telegram asked to wait {} s; handling it again then", row.update_id, seconds)
        async with self._db.session() as session:
            await session.execute(
                update(InboxUpdate)
                .where(InboxUpdate.id == row.id, InboxUpdate.status == PENDING)
                # Not a handler that died: the next attempt is not counted as a redelivery.
                .values(lease_until=utcnow() + timedelta(seconds=seconds), attempts=InboxUpdate.attempts - 1)
            )

    async def _feed(self, row: _Row) -> str | None:
        """Handle one row; returns the error that failed it, if any (``TelegramRetryAfter`` is raised)."""
        if row.attempts > 1:
            logger.warning(
                "update {} was being handled when a handler died: handling it again", row.update_id
            )
        try:
            parsed = Update.model_validate(row.payload, context={"bot": self._bot})
            result = await self._dispatcher.feed_update(self._bot, parsed, received_at=row.received_at)
            if isinstance(result, TelegramMethod):  # a handler's webhook-style reply
                await self._dispatcher.silent_call_request(bot=self._bot, result=result)
        except (asyncio.CancelledError, TelegramRetryAfter):
            raise  # stopping: the row stays claimed and is handled again after its lease
        except Exception as exc:  # the dispatcher's error handler missed it, or the update is garbage
            logger.opt(exception=exc).error("update {} could not be handled", row.update_id)
            return f"{type(exc).__name__}: {exc}"[:500]
        return None

    async def _settle(self, row: _Row, error: str | None, *, take_next: bool) -> _Row | None:
        """Mark ``row`` handled and, in the same transaction, claim the chat's next due row."""
        now = utcnow()
        async with self._db.session() as session:
            await session.execute(
                update(InboxUpdate)
                .where(InboxUpdate.id == row.id)
                .values(
                    status=FAILED if error else DONE,
                    last_error=error,
                    lease_until=None,
                    handled_at=now,
                )
            )
            self.handled += 1
            if not take_next:
                return None
            found = await session.scalar(
                select(InboxUpdate)
                .where(
                    InboxUpdate.bot_id == self._store.bot_id,
                    InboxUpdate.chat_key == row.chat_key,
                    InboxUpdate.status == PENDING,
                )
                .order_by(InboxUpdate.id)
                .limit(1)
            )
            held = now - timedelta(seconds=self.config.hold_seconds)
            if found is None or found.received_at > held:
                return None
            if found.lease_until is not None and found.lease_until > now:
                return None  # another instance holds it
            claimed = await session.execute(
                update(InboxUpdate)
                .where(InboxUpdate.id == found.id, InboxUpdate.status == PENDING)
                .where(or_(InboxUpdate.lease_until.is_(None), InboxUpdate.lease_until <= now))
                .values(
                    lease_until=now + timedelta(seconds=self.config.lease_seconds),
                    attempts=InboxUpdate.attempts + 1,
                )
            )
            if not getattr(claimed, "rowcount", 0):
                return None
            return _Row(
                found.id,
                found.update_id,
                found.chat_key,
                dict(found.payload or {}),
                found.attempts + 1,
                found.received_at.timestamp(),
            )
