"""One bot's update queue: ids, offsets that confirm, long polling, allowed_updates, expiry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emulator.errors import conflict

ALL_UPDATE_TYPES = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
)
OPT_IN_ONLY = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
DEFAULT_ALLOWED = frozenset(t for t in ALL_UPDATE_TYPES if t not in OPT_IN_ONLY)
SHORT_LIVED = frozenset({"callback_query", "pre_checkout_query", "shipping_query", "inline_query"})

TERMINATED_BY_POLL = "terminated by other getUpdates request; make sure that only one bot instance is running"
TERMINATED_BY_WEBHOOK = "terminated by setWebhook request"


@dataclass
class Update:
    update_id: int
    kind: str
    payload: dict[str, Any]
    created: float

    def json(self) -> dict[str, Any]:
        return {"update_id": self.update_id, self.kind: self.payload}


class UpdateQueue:
    def __init__(
        self,
        *,
        short_expiry: Callable[[], float],
        long_expiry: Callable[[], float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._items: list[Update] = []
        self._next_id = 1
        self._short_expiry = short_expiry
        self._long_expiry = long_expiry
        self._clock = clock
        self.allowed: frozenset[str] = DEFAULT_ALLOWED
        self.allowed_explicit: list[str] | None = None
        self._changed = asyncio.Event()
        self._poll: asyncio.Future[None] | None = None
        self.closed = False

    # -- producing -------------------------------------------------------------------------------
    def push(self, kind: str, payload: dict[str, Any]) -> Update | None:
        """Queue an update unless the bot's allowed_updates leaves it out (then it is dropped)."""
        if kind not in self.allowed:
            return None
        update = Update(self._next_id, kind, payload, self._clock())
        self._next_id += 1
        self._items.append(update)
        self._wake()
        return update

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def set_allowed(self, raw: list[str] | None) -> None:
        """``None`` keeps the previous setting; ``[]`` means the default set."""
        if raw is None:
            return
        chosen = [t for t in ALL_UPDATE_TYPES if t in raw]
        self.allowed = frozenset(chosen) if chosen else DEFAULT_ALLOWED
        self.allowed_explicit = chosen or None

    # -- consuming -------------------------------------------------------------------------------
    def _drop_expired(self) -> None:
        now = self._clock()
        short, long = self._short_expiry(), self._long_expiry()
        self._items = [u for u in self._items if now - u.created < (short if u.kind in SHORT_LIVED else long)]

    def confirm(self, offset: int) -> None:
        if offset > 0:
            self._items = [u for u in self._items if u.update_id >= offset]
        elif offset < 0:
            keep = -offset
            self._items = self._items[-keep:] if keep else []

    def pending(self, limit: int = 100) -> list[Update]:
        self._drop_expired()
        return self._items[:limit]

    def __len__(self) -> int:
        self._drop_expired()
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()

    async def wait_changed(self) -> None:
        """Return once an update is queued (or the queue closes)."""
        await self._changed.wait()

    async def get(self, offset: int, limit: int, wait_seconds: float) -> list[Update]:
        """getUpdates: confirm below ``offset``, then answer at once or when an update arrives."""
        self.abort_poll(TERMINATED_BY_POLL)
        self.confirm(offset)
        items = self.pending(limit)
        if items or wait_seconds <= 0 or self.closed:
            return items
        loop = asyncio.get_running_loop()
        poll: asyncio.Future[None] = loop.create_future()
        self._poll = poll
        deadline = loop.time() + wait_seconds
        try:
            while not items and not self.closed:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                changed: asyncio.Future[Any] = asyncio.ensure_future(self._changed.wait())
                waiters: set[asyncio.Future[Any]] = {poll, changed}
                try:
                    await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    changed.cancel()
                if poll.done():
                    poll.result()  # raises the conflict that ended this poll
                items = self.pending(limit)
        finally:
            if self._poll is poll:
                self._poll = None
        return items

    @property
    def polling(self) -> bool:
        """Whether a getUpdates call is waiting for updates now."""
        return self._poll is not None

    def abort_poll(self, reason: str) -> None:
        """End the waiting getUpdates (if any) with 409 Conflict."""
        poll, self._poll = self._poll, None
        if poll is not None and not poll.done():
            poll.set_exception(conflict(reason))

    def close(self) -> None:
        """Release every waiter (server shutdown)."""
        self.closed = True
        poll, self._poll = self._poll, None
        if poll is not None and not poll.done():
            poll.set_result(None)
        self._wake()
