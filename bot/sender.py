"""The outbox sender: makes the Telegram calls the outbox rows describe, under Telegram's limits.

It takes, per chat, only the oldest pending row (so each chat sees its messages in order), paces
calls in the send budget (``bot.ratelimit.SendBudget``), and settles each row:

- success: ``sent``, with the message id kept in ``result`` (later edits refer to it);
- 429: not an error, the row waits ``retry_after`` and every send pauses as long;
- 403: the chat blocked the bot: the row and every pending row of that chat fail, and the
  subscriber is marked blocked;
- 5xx, network errors, timeouts: retried with jittered exponential backoff, the next attempt
  time persisted in ``next_attempt_at``, for as long as it takes (an outage delays, never drops);
- any other 4xx: the request itself is wrong; the row fails with the error kept.

Rows are claimed before their calls by pushing ``next_attempt_at`` past a lease (a conditional
update, so two instances never send the same row); pending rows are simply picked up again by
the next sender after a restart.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import Message
from loguru import logger
from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.outbox import FAILED, METHODS, PENDING, SENT
from bot.ratelimit import SendBudget
from bot.retry import outbox_call
from engine.store.audit import audit
from engine.store.db import Database, utcnow
from engine.store.models import OutboxMessage

_NOT_MODIFIED = "message is not modified"


@dataclass(frozen=True)
class OutboxConfig:
    batch: int = 50
    concurrency: int = 16
    poll_seconds: float = 1.0
    lease_seconds: float = 60.0
    retry_initial_seconds: float = 1.0
    retry_max_seconds: float = 60.0
    request_timeout_seconds: float = 30.0
    stop_timeout_seconds: float = 10.0


@dataclass
class _Row:
    id: int
    chat_id: int
    method: str
    payload: dict[str, Any]
    attempts: int
    in_doubt: bool = False  # claimed before by a sender that never settled it (it died mid-call)


# Called inside the transaction that marks a row sent: (session, meta, message id or None).
SentHook = Callable[[AsyncSession, dict[str, Any], int | None], Awaitable[None]]
BlockedHook = Callable[[int], Awaitable[None]]


@dataclass
class SenderStats:
    sent: int = 0
    retried: int = 0
    rate_limited: int = 0
    failed: int = 0
    blocked_chats: set[int] = field(default_factory=set)


class OutboxSender:
    def __init__(
        self,
        db: Database,
        bot: Bot,
        limiter: SendBudget,
        config: OutboxConfig | None = None,
        *,
        on_sent: SentHook | None = None,
        on_blocked: BlockedHook | None = None,
    ) -> None:
        self._db = db
        self._bot = bot
        self._limiter = limiter
        self.config = config or OutboxConfig()
        self._on_sent = on_sent
        self._on_blocked = on_blocked
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._inflight: dict[int, asyncio.Task[None]] = {}  # chat id -> its send
        self._slots = asyncio.Semaphore(self.config.concurrency)
        self.stats = SenderStats()

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="outbox-sender")

    async def stop(self, drain_seconds: float = 0.0) -> None:
        """Take no new rows; let calls in flight finish (their results are committed).

        With ``drain_seconds``, first keep sending for up to that long while rows are due (so a
        last alert such as "engine stopping" goes out); rows waiting for a retry stay for later.
        """
        if self._task is not None and drain_seconds > 0:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + drain_seconds
            while loop.time() < deadline and not await self._idle():
                self._wake.set()
                await asyncio.sleep(0.05)
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._inflight:
            await asyncio.wait(list(self._inflight.values()), timeout=self.config.stop_timeout_seconds)

    async def _idle(self) -> bool:
        """Nothing in flight and nothing due now."""
        if self._inflight:
            return False
        async with self._db.session() as session:
            due = await session.scalar(
                select(OutboxMessage.id)
                .where(OutboxMessage.status == PENDING, OutboxMessage.next_attempt_at <= utcnow())
                .limit(1)
            )
        return due is None

    # ------------------------------------------------------------------ loop

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                idle = await self._tick()
                failures = 0
            except Exception as exc:
                failures += 1
                logger.opt(exception=exc).error("outbox sender failed; retrying")
                idle = min(30.0, self.config.poll_seconds * 2**failures)
            if idle > 0 and not self._stopping:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=idle)
                except TimeoutError:
                    pass
            self._wake.clear()

    async def _tick(self) -> float:
        """Start sends for due rows; returns how long to idle (0: look again at once)."""
        rows, next_due = await self._due()
        chat_wait = self.config.poll_seconds
        ready: list[_Row] = []
        for row in rows:
            if row.chat_id in self._inflight:
                continue
            wait = await self._limiter.chat_wait(row.chat_id)
            if wait > 0:
                chat_wait = min(chat_wait, wait)
                continue
            ready.append(row)
        claimed = await self._claim([r.id for r in ready]) if ready else set()
        unsent = [r.id for r in ready if r.id in claimed]
        started = 0
        try:
            for row in ready:
                if row.id not in claimed:
                    continue
                if self._stopping or await self._limiter.paused_for() > 0:
                    break  # claimed rows go back below; a 429 pause must not outlive their lease
                await self._slots.acquire()
                try:
                    await self._limiter.acquire(row.chat_id)
                except BaseException:
                    self._slots.release()
                    raise
                task = asyncio.create_task(self._deliver(row), name=f"outbox:{row.id}")
                self._inflight[row.chat_id] = task
                task.add_done_callback(self._done_callback(row.chat_id))
                unsent.remove(row.id)
                started += 1
        finally:
            if unsent:
                await self._release(unsent)
        if started:
            return 0.0
        paused = await self._limiter.paused_for()
        if paused > 0:
            return paused
        if rows:
            return min(chat_wait, self.config.poll_seconds)
        if next_due is not None:
            return max(0.0, min(self.config.poll_seconds, (next_due - utcnow()).total_seconds()))
        return self.config.poll_seconds

    def _done_callback(self, chat_id: int) -> Callable[[asyncio.Task[None]], None]:
        def done(_task: asyncio.Task[None]) -> None:
            self._inflight.pop(chat_id, None)
            self._slots.release()
            self._wake.set()

        return done

    async def _due(self) -> tuple[list[_Row], datetime | None]:
        now = utcnow()
        heads = (
            select(func.min(OutboxMessage.id))
            .where(OutboxMessage.status == PENDING)
            .group_by(OutboxMessage.chat_id)
        )
        interactive_first = case((OutboxMessage.method == "sendMessage", 1), else_=0)
        async with self._db.session() as session:
            found = (
                await session.scalars(
                    select(OutboxMessage)
                    .where(OutboxMessage.id.in_(heads), OutboxMessage.next_attempt_at <= now)
                    .order_by(interactive_first, OutboxMessage.id)
                    .limit(self.config.batch)
                )
            ).all()
            rows = [
                _Row(r.id, r.chat_id, r.method, dict(r.payload or {}), r.attempts, r.claimed_at is not None)
                for r in found
            ]
            next_due = None
            if not rows:
                next_due = await session.scalar(
                    select(func.min(OutboxMessage.next_attempt_at)).where(OutboxMessage.status == PENDING)
                )
        return rows, next_due

    async def _claim(self, ids: list[int]) -> set[int]:
        """Claim due rows for this sender (one statement): their retry time moves past a lease, so no
        other sender takes them; returns the ids actually claimed."""
        now = utcnow()
        async with self._db.session() as session:
            result = await session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id.in_(ids),
                    OutboxMessage.status == PENDING,
                    OutboxMessage.next_attempt_at <= now,
                )
                .values(next_attempt_at=now + timedelta(seconds=self.config.lease_seconds), claimed_at=now)
                .returning(OutboxMessage.id)
            )
            return set(result.scalars().all())

    async def _release(self, ids: list[int]) -> None:
        """Claimed rows this tick did not send are due again at once."""
        async with self._db.session() as session:
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids), OutboxMessage.status == PENDING)
                .values(next_attempt_at=utcnow(), claimed_at=None)
            )

    # ------------------------------------------------------------------ one call

    async def _deliver(self, row: _Row) -> None:
        try:
            await self._call(row)
        except Exception as exc:  # a bug, or the database went away: try again later
            logger.opt(exception=exc).error("outbox row {} could not be settled", row.id)
            try:
                await self._retry_later(row, f"internal: {exc!r}", self.config.retry_max_seconds)
            except Exception as inner:
                logger.error("outbox row {} stays claimed until its lease ends: {!r}", row.id, inner)

    async def _call(self, row: _Row) -> None:
        payload = dict(row.payload)
        meta: dict[str, Any] = payload.pop("_meta", None) or {}
        ref = meta.get("ref")
        if ref:
            state, message_id = await self._resolve_ref(str(ref))
            if state == FAILED:
                await self._settle(row, FAILED, error=f"the message it refers to ({ref}) was never sent")
                return
            if state == PENDING:
                await self._retry_later(row, f"waiting for {ref}", 1.0, count=False)
                return
            payload["message_id"] = message_id
        reply_to = meta.get("reply_to")
        if reply_to:
            state, message_id = await self._resolve_ref(str(reply_to))
            if state == PENDING:
                await self._retry_later(row, f"waiting for {reply_to}", 1.0, count=False)
                return
            if message_id is not None:  # the signal message was never sent: a plain message
                payload["reply_parameters"] = {"message_id": message_id, "allow_sending_without_reply": True}
        if row.in_doubt:
            await self._record_in_doubt(row)
        try:
            method = METHODS[row.method].model_validate(payload)
            token = outbox_call.set(True)  # the sender handles 429 itself (pauses every send)
            try:
                result = await self._bot(method, request_timeout=int(self.config.request_timeout_seconds))
            finally:
                outbox_call.reset(token)
        except TelegramRetryAfter as exc:
            self.stats.rate_limited += 1
            await self._limiter.pause(exc.retry_after)
            await self._retry_later(
                row, f"429 retry after {exc.retry_after}", float(exc.retry_after), count=False
            )
        except TelegramForbiddenError as exc:
            await self._blocked(row, exc.message)
        except TelegramBadRequest as exc:
            if _NOT_MODIFIED in exc.message:
                await self._settle(row, SENT, meta=meta)
            else:
                logger.warning("outbox row {} ({}) refused: {}", row.id, row.method, exc.message)
                await self._settle(row, FAILED, error=f"400 {exc.message}")
        except (
            TelegramServerError,
            TelegramNetworkError,
            TelegramUnauthorizedError,
            TimeoutError,
            OSError,
        ) as exc:
            self.stats.retried += 1
            await self._retry_later(row, f"{type(exc).__name__}: {exc}", self._backoff(row.attempts + 1))
        except TelegramAPIError as exc:
            logger.warning("outbox row {} ({}) failed: {}", row.id, row.method, exc.message)
            await self._settle(row, FAILED, error=f"{type(exc).__name__}: {exc.message}")
        except ValueError as exc:  # the payload does not make a valid call
            await self._settle(row, FAILED, error=f"invalid payload: {exc}")
        else:
            message_id = result.message_id if isinstance(result, Message) else None
            await self._settle(row, SENT, meta=meta, message_id=message_id)

    async def _record_in_doubt(self, row: _Row) -> None:
        """A sender died between its call and recording the answer. Telegram cannot be asked whether
        the message arrived, so it is sent again (never lost, possibly twice): say so, once per row."""
        logger.warning(
            "outbox row {} ({} to chat {}) was in flight when a sender died: resending",
            row.id,
            row.method,
            row.chat_id,
        )
        async with self._db.session() as session:
            audit(
                session,
                "outbox",
                "outbox.resend_in_doubt",
                f"chat:{row.chat_id}",
                row=row.id,
                method=row.method,
            )

    def _backoff(self, attempt: int) -> float:
        """Exponential with full jitter on top (tenacity's ``wait_exponential_jitter``), capped."""
        cfg = self.config
        base = min(cfg.retry_max_seconds, cfg.retry_initial_seconds * 2 ** max(0, attempt - 1))
        return min(cfg.retry_max_seconds, base + random.uniform(0, cfg.retry_initial_seconds))

    async def _resolve_ref(self, ref: str) -> tuple[str, int | None]:
        async with self._db.session() as session:
            target = await session.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == ref))
        if target is None:
            return FAILED, None
        if target.status == SENT:
            message_id = (target.result or {}).get("message_id")
            return (SENT, int(message_id)) if message_id is not None else (FAILED, None)
        return target.status, None

    async def _settle(
        self,
        row: _Row,
        status: str,
        *,
        meta: dict[str, Any] | None = None,
        message_id: int | None = None,
        error: str | None = None,
    ) -> None:
        now = utcnow()
        async with self._db.session() as session:
            values: dict[str, Any] = {"status": status, "attempts": row.attempts + 1, "claimed_at": None}
            if status == SENT:
                values["sent_at"] = now
                values["result"] = {"message_id": message_id} if message_id is not None else {}
            if error is not None:
                values["last_error"] = error[:500]
            await session.execute(update(OutboxMessage).where(OutboxMessage.id == row.id).values(**values))
            if status == SENT and self._on_sent is not None and meta:
                await self._on_sent(session, meta, message_id)
        if status == SENT:
            self.stats.sent += 1
        else:
            self.stats.failed += 1

    async def _retry_later(self, row: _Row, error: str, seconds: float, *, count: bool = True) -> None:
        async with self._db.session() as session:
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row.id, OutboxMessage.status == PENDING)
                .values(
                    attempts=row.attempts + (1 if count else 0),
                    next_attempt_at=utcnow() + timedelta(seconds=seconds),
                    last_error=error[:500],
                    claimed_at=None,
                )
            )

    async def _blocked(self, row: _Row, message: str) -> None:
        """403: this chat takes nothing more from the bot; its pending rows fail with the reason."""
        error = f"403 {message}"[:500]
        async with self._db.session() as session:
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.chat_id == row.chat_id, OutboxMessage.status == PENDING)
                .values(status=FAILED, last_error=error)
            )
        self.stats.failed += 1
        self.stats.blocked_chats.add(row.chat_id)
        logger.info("chat {} blocked the bot ({}): its pending messages are dropped", row.chat_id, message)
        if self._on_blocked is not None:
            await self._on_blocked(row.chat_id)
