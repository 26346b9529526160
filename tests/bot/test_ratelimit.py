"""The client-side limiter: never more than the global rate in any second, per-chat spacing, 429 pauses."""

from __future__ import annotations

import asyncio
import time

from aiogram.fsm.storage.memory import MemoryStorage

from bot.app import build_storage
from bot.ratelimit import RateLimits, SendLimiter
from engine.settings import Settings


async def test_global_rate_holds_in_every_sliding_second() -> None:
    limiter = SendLimiter(
        RateLimits(global_per_second=40, headroom=1.0, per_chat_burst=1000, per_chat_per_second=1000)
    )
    stamps = []
    started = time.monotonic()
    for n in range(100):
        await limiter.acquire(n)
        stamps.append(time.monotonic())
    in_a_second = [sum(1 for u in stamps[i:] if u - t < 1.0) for i, t in enumerate(stamps)]
    assert max(in_a_second) <= 40  # paced at the rate, not in bursts
    # 100 sends at 40 a second take over two seconds; far more would mean pacing well below the rate
    # (the upper bound is loose: on a loaded machine every sleep overshoots)
    assert 2.0 <= time.monotonic() - started < 10


async def test_per_chat_and_group_waits() -> None:
    limiter = SendLimiter(RateLimits(per_chat_per_second=2, per_chat_burst=2, group_per_minute=3))
    assert await limiter.chat_wait(7) == 0
    await limiter.acquire(7)
    await limiter.acquire(7)
    assert 0.3 < await limiter.chat_wait(7) <= 0.5  # the burst is used up: one more token in half a second
    assert await limiter.chat_wait(8) == 0  # other chats are not affected
    for _ in range(3):
        while await limiter.chat_wait(-100) > 0:
            await asyncio.sleep(await limiter.chat_wait(-100))
        await limiter.acquire(-100)
    assert await limiter.chat_wait(-100) > 55  # 20-a-minute style group limit (3 here)


async def test_pause_after_429_holds_every_send() -> None:
    limiter = SendLimiter(RateLimits(global_per_second=1000, headroom=1.0))
    await limiter.pause(0.3)
    assert await limiter.paused_for() > 0.2
    began = time.monotonic()
    await limiter.acquire(1)
    assert time.monotonic() - began >= 0.28


def test_fsm_storage_is_redis_when_configured() -> None:
    from aiogram.fsm.storage.redis import RedisStorage

    redis = build_storage(Settings(_env_file=None, redis_url="redis://127.0.0.1:6379/0"))  # type: ignore[call-arg]
    assert isinstance(redis, RedisStorage)
    assert isinstance(build_storage(Settings(_env_file=None)), MemoryStorage)  # type: ignore[call-arg]
