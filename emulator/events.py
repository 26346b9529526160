"""What happens in chats, broadcast to Server-Sent Events subscribers (the sandbox page)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

_CLOSE: dict[str, Any] = {"type": "__close__"}


class EventBus:
    def __init__(self, queue_size: int = 1000) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._queue_size = queue_size

    def publish(self, event: str, data: dict[str, Any]) -> None:
        item = {"type": event, "data": data}
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:  # a stalled reader is dropped, not waited for
                self._subscribers.discard(queue)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers.discard(queue)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def close(self) -> None:
        for queue in list(self._subscribers):
            while True:
                try:
                    queue.put_nowait(_CLOSE)
                    break
                except asyncio.QueueFull:
                    queue.get_nowait()
        self._subscribers.clear()


def is_close(item: dict[str, Any]) -> bool:
    return item is _CLOSE


def sse_frame(item: dict[str, Any], event_id: int) -> bytes:
    data = json.dumps(item["data"], ensure_ascii=False, separators=(",", ":"))
    return f"id: {event_id}\nevent: {item['type']}\ndata: {data}\n\n".encode()
