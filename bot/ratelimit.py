"""Client-side flood control for outgoing Telegram calls, kept under Telegram's limits.

Three limits, each configurable: about 30 messages a second for the whole bot, about one a
second per chat (with a short burst), and 20 a minute per group or channel. The global limit
is met by pacing, one send every ``1 / (rate * headroom)`` seconds, and a hard cap of
``rate * headroom`` sends in any sliding second (29 for 30): evenly spaced sends leave the server's sliding window a margin for
network jitter, where a burst of 30 followed by a pause would not. A 429 from Telegram pauses
every send until its ``retry_after`` has passed.

``SendBudget`` is what the senders (``bot.retry.BudgetMiddleware``, ``bot.sender.OutboxSender``)
need of a budget. ``SendLimiter`` is the one-process budget; ``bot.shared_budget.RedisBudget``
keeps the same limits for every instance of the bot in Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol


@dataclass(frozen=True)
class RateLimits:
    global_per_second: float = 30.0
    headroom: float = 0.97  # pace at this fraction of the global limit
    per_chat_per_second: float = 1.0
    per_chat_burst: int = 3
    group_per_minute: int = 20

    def share(self, instances: int) -> RateLimits:
        """A conservative 1/``instances`` part of these limits (each instance alone, not knowing
        what the others send, must keep the bot's total within Telegram's)."""
        n = max(1, instances)
        if n == 1:
            return self
        return replace(
            self,
            global_per_second=self.global_per_second / n,
            per_chat_per_second=self.per_chat_per_second / n,
            per_chat_burst=max(1, self.per_chat_burst // n),
            group_per_minute=max(1, self.group_per_minute // n),
        )


class SendBudget(Protocol):
    """Telegram's send limits as one budget: the global rate, a chat's rate, a group's per-minute
    rate, and the pause after a 429."""

    async def chat_wait(self, chat_id: int) -> float:
        """Seconds until ``chat_id`` may receive another message (0: now)."""
        ...

    async def acquire(self, chat_id: int | None) -> None:
        """Wait for a global slot (in arrival order) and count one send to ``chat_id``."""
        ...

    async def pause(self, seconds: float) -> None:
        """Telegram said ``retry_after``: no send before it has passed."""
        ...

    async def paused_for(self) -> float:
        """Seconds left of a pause (0: none)."""
        ...


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class SendLimiter:
    def __init__(self, limits: RateLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._interval = 1.0 / (limits.global_per_second * limits.headroom)
        # The hard cap stays below Telegram's own count, so jitter on the way cannot add up to it.
        self._cap = max(1, int(limits.global_per_second * limits.headroom))
        self._next_slot = 0.0
        self._window: deque[float] = deque()
        self._chats: dict[int, _Bucket] = {}
        self._groups: dict[int, deque[float]] = {}
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    async def pause(self, seconds: float) -> None:
        """Telegram said ``retry_after``: nothing is sent before it has passed."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    async def paused_for(self) -> float:
        return max(0.0, self._paused_until - self._clock())

    async def chat_wait(self, chat_id: int) -> float:
        """Seconds until ``chat_id`` may receive another message (0 when it may now)."""
        now = self._clock()
        lim = self.limits
        wait = 0.0
        bucket = self._chats.get(chat_id)
        if bucket is not None:
            tokens = min(
                float(lim.per_chat_burst), bucket.tokens + (now - bucket.stamp) * lim.per_chat_per_second
            )
            if tokens < 1.0:
                wait = (1.0 - tokens) / lim.per_chat_per_second
        if chat_id < 0:
            window = self._groups.get(chat_id)
            if window is not None:
                while window and window[0] <= now - 60.0:
                    window.popleft()
                if len(window) >= lim.group_per_minute:
                    wait = max(wait, window[len(window) - lim.group_per_minute] + 60.0 - now)
        return wait

    async def acquire(self, chat_id: int | None) -> None:
        """Wait for a global slot, then count one send to ``chat_id`` (call only when ``chat_wait`` is 0;
        ``None``: a call to no chat in particular, such as a callback answer). Waiters are served
        in arrival order (``asyncio.Lock`` is fair)."""
        async with self._lock:
            while True:
                now = self._clock()
                wait = max(self._paused_until - now, self._next_slot - now)
                window = self._window
                while window and window[0] <= now - 1.0:
                    window.popleft()
                if len(window) >= self._cap:
                    wait = max(wait, window[0] + 1.0 - now)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            # Keep to the schedule when a sleep overshot a little (no drift below the rate); start a
            # fresh one after an idle spell (no burst to "catch up").
            late = now - self._next_slot
            self._next_slot = (self._next_slot if late < self._interval else now) + self._interval
            window.append(now)
            if chat_id is not None:
                self._take(chat_id, now)

    def _take(self, chat_id: int, now: float) -> None:
        lim = self.limits
        bucket = self._chats.get(chat_id)
        if bucket is None:
            tokens = float(lim.per_chat_burst)
        else:
            tokens = min(
                float(lim.per_chat_burst), bucket.tokens + (now - bucket.stamp) * lim.per_chat_per_second
            )
        self._chats[chat_id] = _Bucket(tokens - 1.0, now)
        if chat_id < 0:
            self._groups.setdefault(chat_id, deque()).append(now)
        if len(self._chats) > 50_000:
            self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        full = self.limits.per_chat_burst / self.limits.per_chat_per_second
        self._chats = {k: b for k, b in self._chats.items() if now - b.stamp < full}
