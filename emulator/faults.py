"""Injected faults and the call statistics of ``/_emulator/faults`` and ``/_emulator/stats``."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from emulator.errors import ApiError, prefixed, too_many_requests


@dataclass
class Fault:
    method: str  # canonical method name, or "*" for any
    status: int | None
    count: int
    retry_after: int | None = None
    delay_ms: int = 0
    description: str | None = None
    bot_id: int | None = None

    def matches(self, method: str, bot_id: int) -> bool:
        return self.count > 0 and self.method in ("*", method) and self.bot_id in (None, bot_id)

    def error(self) -> ApiError | None:
        status = self.status
        if status is None or 200 <= status < 300:
            return None
        if status == 429:
            return too_many_requests(self.retry_after or 1, "fault")
        text = self.description or "emulated fault"
        error = ApiError(status, prefixed(status, text))
        if self.retry_after is not None:
            error.retry_after = self.retry_after
        return error

    def json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "status": self.status,
            "count": self.count,
            "retry_after": self.retry_after,
            "delay_ms": self.delay_ms,
            "description": self.description,
            "bot_id": self.bot_id,
        }


class Faults:
    def __init__(self) -> None:
        self.active: list[Fault] = []

    def add(self, fault: Fault) -> None:
        self.active.append(fault)

    def take(self, method: str, bot_id: int) -> Fault | None:
        for fault in self.active:
            if fault.matches(method, bot_id):
                fault.count -= 1
                if fault.count <= 0:
                    self.active.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        self.active.clear()


class _Counters:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.rate_limited: Counter[str] = Counter()
        self.messages_per_chat: Counter[str] = Counter()
        self.too_many_requests = 0

    def json(self) -> dict[str, Any]:
        return {
            "calls": dict(self.calls),
            "errors": dict(self.errors),
            "too_many_requests": self.too_many_requests,
            "rate_limited": dict(self.rate_limited),
            "messages_per_chat": dict(self.messages_per_chat),
        }


class Stats:
    def __init__(self) -> None:
        self.total = _Counters()
        self.per_bot: defaultdict[int, _Counters] = defaultdict(_Counters)

    def _both(self, bot_id: int) -> tuple[_Counters, _Counters]:
        return self.total, self.per_bot[bot_id]

    def call(self, bot_id: int, method: str) -> None:
        for counters in self._both(bot_id):
            counters.calls[method] += 1

    def error(self, bot_id: int, error: ApiError) -> None:
        for counters in self._both(bot_id):
            counters.errors[str(error.code)] += 1
            if error.code == 429:
                counters.too_many_requests += 1
                counters.rate_limited[error.reason or "other"] += 1

    def message(self, bot_id: int, chat_id: int) -> None:
        for counters in self._both(bot_id):
            counters.messages_per_chat[str(chat_id)] += 1

    def json(self) -> dict[str, Any]:
        out = self.total.json()
        out["bots"] = {str(bot_id): counters.json() for bot_id, counters in self.per_bot.items()}
        return out

    def reset(self) -> None:
        self.total = _Counters()
        self.per_bot.clear()
