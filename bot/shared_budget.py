"""One Telegram send budget for every instance of the bot, kept in Redis (``REDIS_URL``).

Telegram counts a bot's messages per bot token, not per process: three instances pacing
themselves at 30 a second each would send 90 and be throttled. ``RedisBudget`` keeps the limits
of ``bot.ratelimit.RateLimits`` once, in Redis, for all of them:

- the global rate: a shared schedule (the next free slot) and a hard cap of ``rate * headroom``
  sends (29 for 30) in any sliding window of one second plus ``jitter_seconds``, slots spaced
  evenly over that window. A send is granted here and reaches Telegram a little later, by a
  different amount from each instance (scheduling on a busy machine, the network): the margin
  keeps any 30 arrivals more than a second apart even when the first of them was late and the
  last one early. It costs a few per cent of the rate (27.9 a second for 30 with 40 ms); one
  429 would cost a whole second of every instance's sends;
- a chat's token bucket (rate, burst) and a group's or channel's sends in the last minute;
- a 429's ``retry_after``: one instance's pause holds every instance's sends.

Each check and each take is one atomic Lua script (``SCRIPT``), timed by Redis's own clock, so
instances on machines with different clocks agree. Within an instance, waiters for a global slot
are served in arrival order (a fair local lock) and one of them at a time asks Redis.

**Redis outage.** A Redis error (or no answer within ``timeout_seconds``) switches the instance
to a local ``SendLimiter`` with a conservative share of the limits: ``1/N`` of each, N being the
instances last seen in Redis (or the hint given at start when Redis was never reached). It says
so once in the log (warning) and in ``describe()`` (``/readyz``, ``/status``). A background task
keeps announcing the instance (``presence_seconds``) and notices when Redis is back: the shared
budget is used again and the log says so.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from bot.ratelimit import RateLimits, SendLimiter

SHARED = "shared"
LOCAL = "local"

# KEYS: 1 pause-until, 2 next global slot, 3 global window (zset), 4 chat bucket (hash), 5 group window
# ARGV: 1 mode (check | take | pause), 2 slot interval (us), 3 sends in any window, 4 chat tokens a
#       second, 5 chat burst, 6 group sends a minute (0: not a group), 7 "1" when a chat is named,
#       8 a member name unique to this send, 9 pause seconds (mode pause), 10 the window (us)
# Answers {wait in microseconds, pause left in microseconds, what waits: 0 nothing, 1 global, 2 chat}.
SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local mode = ARGV[1]
local function num(x) return string.format('%.0f', x) end
local pause_until = tonumber(redis.call('GET', KEYS[1]) or '0')
if mode == 'pause' then
  local until_ = now + math.floor(tonumber(ARGV[9]) * 1000000)
  if until_ > pause_until then
    redis.call('SET', KEYS[1], num(until_), 'PX', math.ceil((until_ - now) / 1000) + 1000)
    pause_until = until_
  end
  return {0, math.max(0, pause_until - now), 1}
end
local paused = math.max(0, pause_until - now)
local has_chat = ARGV[7] == '1'
local rate = tonumber(ARGV[4])
local burst = tonumber(ARGV[5])
local gcap = tonumber(ARGV[6])
local tokens = burst
local chat_wait = 0
if has_chat then
  local b = redis.call('HMGET', KEYS[4], 'tokens', 'stamp')
  if b[1] then
    tokens = math.min(burst, tonumber(b[1]) + (now - tonumber(b[2])) * rate / 1000000)
  end
  if tokens < 1 then chat_wait = math.ceil((1 - tokens) / rate * 1000000) end
  if gcap > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', num(now - 60000000))
    local n = redis.call('ZCARD', KEYS[5])
    if n >= gcap then
      local oldest = redis.call('ZRANGE', KEYS[5], n - gcap, n - gcap, 'WITHSCORES')
      chat_wait = math.max(chat_wait, math.ceil(tonumber(oldest[2]) + 60000000 - now))
    end
  end
end
if mode == 'check' then
  return {math.max(paused, chat_wait), paused, 0}
end
if paused > 0 then return {paused, paused, 1} end
if chat_wait > 0 then return {chat_wait, 0, 2} end
local cap = tonumber(ARGV[3])
local interval = tonumber(ARGV[2])
local window = tonumber(ARGV[10])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', num(now - window))
local n = redis.call('ZCARD', KEYS[3])
local wait = 0
if n >= cap then
  local oldest = redis.call('ZRANGE', KEYS[3], n - cap, n - cap, 'WITHSCORES')
  wait = math.ceil(tonumber(oldest[2]) + window - now)
end
local slot = tonumber(redis.call('GET', KEYS[2]) or '0')
wait = math.max(wait, slot - now)
if wait > 0 then return {wait, 0, 1} end
-- keep to the schedule when a little late (no drift below the rate), start afresh after idling
local nxt
if now - slot < interval then nxt = slot + interval else nxt = now + interval end
redis.call('SET', KEYS[2], num(nxt), 'PX', 2000)
redis.call('ZADD', KEYS[3], num(now), ARGV[8])
redis.call('PEXPIRE', KEYS[3], 2000)
if has_chat then
  redis.call('HSET', KEYS[4], 'tokens', string.format('%.6f', tokens - 1), 'stamp', num(now))
  redis.call('PEXPIRE', KEYS[4], math.ceil(burst / rate * 1000) + 1000)
  if gcap > 0 then
    redis.call('ZADD', KEYS[5], num(now), ARGV[8])
    redis.call('PEXPIRE', KEYS[5], 61000)
  end
end
return {0, 0, 0}
"""

# KEYS: 1 instances (zset). ARGV: 1 member, 2 seen within (ms), 3 "1" to join, "0" to leave.
# Answers how many instances were seen within the window.
PRESENCE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[1])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - tonumber(ARGV[2])))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return redis.call('ZCARD', KEYS[1])
"""

_US = 1_000_000
_OUTAGE = (RedisError, OSError, TimeoutError)


@dataclass(frozen=True)
class SharedBudgetConfig:
    presence_seconds: float = 2.0  # how often an instance announces itself (and probes Redis when down)
    timeout_seconds: float = 0.5  # a Redis call slower than this counts as an outage
    jitter_seconds: float = 0.04  # how much later one instance's send may arrive than another's


def redis_client(url: str, timeout_seconds: float) -> Redis:
    """A client that fails fast: an outage must switch to the local share, not stall every send."""
    return Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        retry=Retry(NoBackoff(), 0),
    )


class RedisBudget:
    """``bot.ratelimit.SendBudget`` shared by every instance through Redis (see the module doc)."""

    def __init__(
        self,
        client: Redis,
        limits: RateLimits,
        *,
        bot_id: int,
        instance: str,
        config: SharedBudgetConfig | None = None,
        instances_hint: Callable[[], Awaitable[int]] | None = None,
        report: Callable[[dict[str, str]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``instances_hint``: how many instances run, when Redis was never reached (the local
        share's N); ``report``: told the state on every change ({"redis", "telegram_budget"})."""
        self.limits = limits
        self.instance = instance
        self.config = config or SharedBudgetConfig()
        self._redis = client
        self._script = client.register_script(SCRIPT)
        self._presence = client.register_script(PRESENCE)
        self._hint = instances_hint
        self._report = report
        self._clock = clock
        prefix = f"tradebot:telegram:{bot_id}:"
        self._prefix = prefix
        self._keys = [prefix + "pause", prefix + "slot", prefix + "window"]
        self._members = itertools.count()
        self._cap = max(1, int(limits.global_per_second * limits.headroom))
        self._window_us = int(_US * (1.0 + self.config.jitter_seconds))
        self._interval_us = self._window_us // self._cap
        self._order = asyncio.Lock()  # waiters for a global slot, in arrival order
        self._paused_until = 0.0  # local clock; refreshed from every answer
        self.state = SHARED
        self.instances = 0  # seen in Redis (0: not yet)
        self._local: SendLimiter | None = None
        self._since = 0.0
        self._reason = ""
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Announce this instance and keep doing so (and watching Redis) until ``close``."""
        await self._announce()
        self._task = asyncio.create_task(self._keep_present(), name="telegram-budget-presence")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        try:
            await self._presence(keys=[self._prefix + "instances"], args=[self.instance, self._stale_ms, "0"])
        except _OUTAGE:
            pass  # it drops out of the window by itself
        await self._redis.aclose()

    @property
    def _stale_ms(self) -> int:
        return int(self.config.presence_seconds * 3 * 1000)

    async def _keep_present(self) -> None:
        while True:
            await asyncio.sleep(self.config.presence_seconds)
            await self._announce()

    async def _announce(self) -> None:
        try:
            seen = await self._presence(
                keys=[self._prefix + "instances"], args=[self.instance, self._stale_ms, "1"]
            )
        except _OUTAGE as exc:
            await self._fall_back(exc)
            return
        changed = int(seen) != self.instances or self.state == LOCAL
        self.instances = int(seen)
        if changed:
            self._tell()
        if self.state == LOCAL:
            down = self._clock() - self._since
            self.state, self._local = SHARED, None
            self._tell()
            logger.warning(
                "Redis is back after {:.1f} s: the Telegram budget is shared by {} instances again",
                down,
                self.instances,
            )

    async def _fall_back(self, exc: BaseException) -> None:
        if self.state == LOCAL:
            return
        share = self.instances
        if share <= 0 and self._hint is not None:
            try:
                share = await self._hint()
            except Exception as hint_exc:
                logger.debug("no instance count for the local share: {!r}", hint_exc)
        share = max(1, share)
        self.state = LOCAL
        self._since = self._clock()
        self._reason = f"{type(exc).__name__}: {exc}"[:200]
        self._local = SendLimiter(self.limits.share(share), clock=self._clock)
        left = self._paused_until - self._clock()
        if left > 0:
            await self._local.pause(left)
        self._tell()
        logger.warning(
            "Redis unreachable ({}): sending at a local share (1/{}) of Telegram's limits until it is back",
            self._reason,
            share,
        )

    def _tell(self) -> None:
        if self._report is not None:
            self._report(
                {"redis": "up" if self.state == SHARED else "down", "telegram_budget": self.describe()}
            )

    def describe(self) -> str:
        """One line for /readyz and /status: shared, or the local share and why."""
        if self.state == SHARED:
            return f"shared through Redis ({max(self.instances, 1)} instances)"
        assert self._local is not None
        share = round(self.limits.global_per_second / self._local.limits.global_per_second)
        return f"local share 1/{share}: Redis unreachable ({self._reason})"

    async def probe(self) -> bool | str:
        """Readiness: True while shared, else what is wrong (the instance still sends, slower)."""
        return True if self.state == SHARED else self.describe()

    # ------------------------------------------------------------------ SendBudget

    def _chat_args(self, chat_id: int | None) -> tuple[list[str], list[Any]]:
        keys = [*self._keys, self._prefix + f"chat:{chat_id}", self._prefix + f"group:{chat_id}"]
        lim = self.limits
        group = lim.group_per_minute if chat_id is not None and chat_id < 0 else 0
        args = [
            self._interval_us,
            self._cap,
            lim.per_chat_per_second,
            lim.per_chat_burst,
            group,
            "1" if chat_id is not None else "0",
            f"{self.instance}:{next(self._members)}",
        ]
        return keys, args

    def _seen(self, paused_us: int) -> None:
        if paused_us > 0:
            self._paused_until = max(self._paused_until, self._clock() + paused_us / _US)

    async def _run(self, mode: str, chat_id: int | None, pause: float = 0.0) -> tuple[float, int] | None:
        """One script call: (wait seconds, what waits), or None when Redis is out (now local)."""
        keys, args = self._chat_args(chat_id)
        try:
            wait_us, paused_us, kind = await self._script(
                keys=keys, args=[mode, *args, pause, self._window_us]
            )
        except _OUTAGE as exc:
            await self._fall_back(exc)
            return None
        self._seen(int(paused_us))
        return int(wait_us) / _US, int(kind)

    async def chat_wait(self, chat_id: int) -> float:
        if self._local is not None:
            return await self._local.chat_wait(chat_id)
        answer = await self._run("check", chat_id)
        if answer is None:
            return await self.chat_wait(chat_id)
        return answer[0]

    async def acquire(self, chat_id: int | None) -> None:
        while True:
            async with self._order:
                while True:
                    if self._local is not None:
                        await self._local.acquire(chat_id)
                        return
                    answer = await self._run("take", chat_id)
                    if answer is None:
                        continue  # Redis went away: the local share from now on
                    wait, kind = answer
                    if wait <= 0:
                        return
                    if kind == 2:
                        break  # the chat is not ready (another instance just sent to it): let others by
                    await asyncio.sleep(wait)
            await asyncio.sleep(wait)

    async def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self._clock() + seconds)
        if self._local is not None:
            await self._local.pause(seconds)
            return
        if await self._run("pause", None, seconds) is None and self._local is not None:
            await self._local.pause(seconds)

    async def paused_for(self) -> float:
        if self._local is not None:
            return await self._local.paused_for()
        return max(0.0, self._paused_until - self._clock())
