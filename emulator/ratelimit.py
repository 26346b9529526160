"""Telegram's flood limits: per bot per second, per chat (token bucket with bursts), per group per minute.

A refused request consumes nothing; the 429 carries the whole seconds until a retry would pass.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from emulator.config import EmulatorConfig
from emulator.errors import too_many_requests


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class _BotLimits:
    sends: deque[float] = field(default_factory=deque)
    chats: dict[int, _Bucket] = field(default_factory=dict)
    groups: dict[int, deque[float]] = field(default_factory=dict)


class RateLimiter:
    def __init__(self, config: EmulatorConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._bots: dict[int, _BotLimits] = {}

    def check_send(self, bot_id: int, chat_id: int, chat_type: str, *, paid_broadcast: bool = False) -> None:
        """Count one outgoing message, or raise a 429 ApiError (nothing counted)."""
        cfg = self.config
        if not cfg.rate_limits:
            return
        now = self.clock()
        limits = self._bots.setdefault(bot_id, _BotLimits())
        waits: list[tuple[float, str]] = []

        per_second = cfg.paid_broadcast_per_second if paid_broadcast else cfg.global_per_second
        sends = limits.sends
        while sends and sends[0] <= now - 1.0:
            sends.popleft()
        if len(sends) >= per_second:
            index = len(sends) - int(per_second)
            waits.append((sends[index] + 1.0 - now, "bot"))

        bucket = limits.chats.get(chat_id)
        if bucket is None:
            bucket = _Bucket(float(cfg.per_chat_burst), now)
        tokens = min(
            float(cfg.per_chat_burst), bucket.tokens + (now - bucket.stamp) * cfg.per_chat_per_second
        )
        if tokens < 1.0:
            waits.append(((1.0 - tokens) / cfg.per_chat_per_second, "chat"))

        window: deque[float] | None = None
        if chat_type != "private":
            window = limits.groups.setdefault(chat_id, deque())
            while window and window[0] <= now - 60.0:
                window.popleft()
            if len(window) >= cfg.group_per_minute:
                index = len(window) - cfg.group_per_minute
                waits.append((window[index] + 60.0 - now, "group"))

        if waits:
            wait, reason = max(waits)
            raise too_many_requests(math.ceil(wait), reason)

        sends.append(now)
        limits.chats[chat_id] = _Bucket(tokens - 1.0, now)
        if window is not None:
            window.append(now)
