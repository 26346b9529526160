"""One Telegram send budget for several instances, in the real local Redis (127.0.0.1:6379, or
``TEST_REDIS_URL``): the global rate, a chat's and a group's limits and a 429's pause are shared;
a Redis outage falls back to a local 1/N share, says so, and ends when Redis is back.

Each test uses a bot id of its own (far above any real bot's), so its keys never meet another's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from loguru import logger

from bot.ratelimit import RateLimits, SendLimiter
from bot.retry import BudgetMiddleware
from bot.shared_budget import LOCAL, SHARED, RedisBudget, SharedBudgetConfig, redis_client
from emulator import BotAPIEmulator, EmulatorClient, EmulatorConfig
from engine.observability.readiness import Readiness
from tests.support.bot_world import World
from tests.support.emulator_world import make_bot
from tests.support.gateway import Proxy
from tests.support.redis import REDIS_URL, fresh_bot_id
from tests.support.telegram import TOKEN
from tests.support.waiting import until

FAST_PRESENCE = SharedBudgetConfig(presence_seconds=0.2, timeout_seconds=0.3)


@pytest.fixture
async def budgets() -> AsyncIterator[Callable[..., RedisBudget]]:
    """Makes started budgets (instances) on one bot id; all are closed after the test."""
    made: list[RedisBudget] = []
    bot_id = fresh_bot_id()

    async def make(limits: RateLimits, url: str = REDIS_URL, name: str | None = None) -> RedisBudget:
        budget = RedisBudget(
            redis_client(url, FAST_PRESENCE.timeout_seconds),
            limits,
            bot_id=bot_id,
            instance=name or f"test-{len(made) + 1}",
            config=FAST_PRESENCE,
        )
        await budget.start()
        made.append(budget)
        return budget

    yield make  # type: ignore[misc]
    for budget in made:
        await budget.close()


def most_in_a_second(stamps: list[float]) -> int:
    stamps = sorted(stamps)
    return max(sum(1 for u in stamps[i:] if u - t < 1.0) for i, t in enumerate(stamps))


async def test_two_instances_keep_one_global_rate(budgets: Callable[..., RedisBudget]) -> None:
    limits = RateLimits(global_per_second=20, headroom=1.0, per_chat_per_second=1000, per_chat_burst=1000)
    a, b = await budgets(limits), await budgets(limits)
    stamps: list[float] = []

    async def send(budget: RedisBudget, chats: range) -> None:
        for chat in chats:
            await budget.acquire(chat)
            stamps.append(time.monotonic())

    started = time.monotonic()
    await asyncio.gather(send(a, range(1, 31)), send(b, range(101, 131)))
    elapsed = time.monotonic() - started
    # 60 sends at 20 a second for the two of them: about 3 s (each alone would pace itself at 20 a
    # second and finish in 1.5 s). Stamps are taken after the grant, so a stalled task can bunch a
    # few together; the budget itself never grants more than 20 in a second.
    assert elapsed >= 2.5, elapsed
    assert most_in_a_second(stamps) <= 22
    assert a.state == b.state == SHARED and a.instances == b.instances == 2


async def test_a_429_on_one_instance_pauses_the_other(budgets: Callable[..., RedisBudget]) -> None:
    limits = RateLimits(global_per_second=1000, headroom=1.0)
    a, b = await budgets(limits), await budgets(limits)
    await a.pause(1.0)
    began = time.monotonic()
    await b.acquire(5)
    assert time.monotonic() - began >= 0.9
    assert await b.paused_for() == 0.0


async def test_chat_and_group_limits_are_shared(budgets: Callable[..., RedisBudget]) -> None:
    limits = RateLimits(
        global_per_second=1000, headroom=1.0, per_chat_per_second=2, per_chat_burst=2, group_per_minute=3
    )
    a, b = await budgets(limits), await budgets(limits)
    await a.acquire(7)
    await a.acquire(7)
    assert 0.3 < await b.chat_wait(7) <= 0.5  # a used the chat's burst; b sees it
    assert await b.chat_wait(8) == 0
    for budget in (a, b, a):
        while (wait := await budget.chat_wait(-100)) > 0:
            await asyncio.sleep(wait)
        await budget.acquire(-100)
    assert await b.chat_wait(-100) > 55  # three sends to the group this minute, from both


async def test_a_redis_outage_falls_back_to_a_local_share_and_back(
    budgets: Callable[..., RedisBudget],
) -> None:
    proxy = Proxy(int(REDIS_URL.rsplit(":", 1)[1].split("/")[0])).start()
    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(str(m)), level="WARNING")
    try:
        limits = RateLimits(
            global_per_second=30, per_chat_per_second=1, per_chat_burst=3, group_per_minute=20
        )
        a = await budgets(limits, url=f"redis://{proxy.url_host}/0")
        b = await budgets(limits)
        await until(lambda: a.instances == 2 and b.instances == 2, timeout=5)
        readiness = Readiness()
        readiness.register("telegram_budget", a.probe, required=False)
        assert [(r.ok, r.required) for r in await readiness.run()] == [(True, False)]

        proxy.cut()
        await a.acquire(1)  # served all the same, from the local share
        assert a.state == LOCAL
        assert "local share 1/2" in a.describe() and "Redis unreachable" in a.describe()
        [check] = await readiness.run()
        assert not check.ok and not check.required and "local share 1/2" in check.detail
        assert any("local share (1/2)" in w for w in warnings)
        local = a._local
        assert isinstance(local, SendLimiter) and local.limits.global_per_second == 15
        assert local.limits.group_per_minute == 10 and local.limits.per_chat_burst == 1

        proxy.restore()
        await until(lambda: a.state == SHARED, timeout=5)
        assert any("Redis is back" in w for w in warnings)
        await a.acquire(2)
        assert (await readiness.run())[0].ok
    finally:
        logger.remove(sink)
        proxy.cut()


async def test_never_reached_redis_takes_the_hint_for_its_share() -> None:
    async def three() -> int:
        return 3

    budget = RedisBudget(
        redis_client("redis://127.0.0.1:9/0", 0.2),  # nothing listens on the discard port
        RateLimits(global_per_second=30),
        bot_id=fresh_bot_id(),
        instance="lonely",
        config=FAST_PRESENCE,
        instances_hint=three,
    )
    await budget.start()
    try:
        assert budget.state == LOCAL and "local share 1/3" in budget.describe()
        await budget.acquire(1)
    finally:
        await budget.close()


async def _fan_out(budgets: list[object], emulator: BotAPIEmulator, users: list[int]) -> int:
    """Every budget a bot (an instance) sending to its half of ``users`` at once; 429s seen."""
    client = EmulatorClient(emulator.base_url)
    await asyncio.gather(*(client.add_user(uid, f"U{uid}") for uid in users))
    await client.reset_stats()
    bots = [make_bot(emulator.base_url, TOKEN) for _ in budgets]
    try:
        for bot, budget in zip(bots, budgets, strict=True):
            bot.session.middleware(BudgetMiddleware(budget))  # type: ignore[arg-type]
        share = len(users) // len(bots)
        await asyncio.gather(
            *(
                bot.send_message(uid, "signal")
                for n, bot in enumerate(bots)
                for uid in users[n * share : (n + 1) * share]
            )
        )
        return int((await client.stats())["too_many_requests"])
    finally:
        for bot in bots:
            await bot.session.close()
        await client.close()


async def test_two_instances_fan_out_to_telegram_without_a_429(budgets: Callable[..., RedisBudget]) -> None:
    """Against the emulator with Telegram's limits: two instances sharing the budget draw no 429;
    two with a budget each (30 a second apiece) do."""
    emulator = BotAPIEmulator(EmulatorConfig())
    await emulator.start()
    try:
        shared = [await budgets(RateLimits()), await budgets(RateLimits())]
        assert await _fan_out(shared, emulator, list(range(8_100_001, 8_100_091))) == 0
        apart = [SendLimiter(RateLimits()), SendLimiter(RateLimits())]
        assert await _fan_out(apart, emulator, list(range(8_200_001, 8_200_091))) > 0
    finally:
        await emulator.stop()


async def test_the_bot_shares_its_budget_when_redis_is_configured(world_factory: Any) -> None:
    """REDIS_URL: the running bot's budget is the shared one, and the instance shows its state;
    TELEGRAM_LEASE_SECONDS: how soon another instance takes over a dead one's updates and sends."""
    world: World = await world_factory(redis_url=REDIS_URL, telegram_lease_seconds=15)
    runtime = world.rt()
    assert (
        isinstance(runtime.limiter, RedisBudget)
        and runtime.limiter.instance == world.services.cluster.instance_id
    )
    assert runtime.inbox_worker.config.lease_seconds == 15 and runtime.sender.config.lease_seconds == 15
    details = world.services.cluster.details
    assert details["redis"] == "up" and details["telegram_budget"].startswith("shared through Redis")
    await world.subscribe(7301, "en")  # and it sends through it

    plain: World = await world_factory()
    assert isinstance(plain.rt().limiter, SendLimiter) and plain.rt().inbox_worker.config.lease_seconds == 60
    assert plain.services.cluster.details["redis"] == "not configured"
