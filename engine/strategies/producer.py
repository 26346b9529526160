"""A strategy as a live producer: closed H1 bars from an MT5 terminal in, signed signals out.

Per symbol, the first poll reads ``history_bars`` closed bars (``copy_rates_from_pos`` from
position 1: position 0 is the forming bar) and primes the strategy with them; every later poll
reads the bars closed since, and evaluates each new bar once. Only a setup final at the newest
closed bar is new (the reference): it is placed with ``place_limit`` against the current quote
and posted as a ``limit`` signal whose ``id`` and ``Idempotency-Key`` are the setup id, so a
restart that sees the same bar again is answered by the server with the stored signal, never a
second one. Then the previous setup in that direction (from this run, or the history on start)
is cancelled with a signed ``{"action": "cancel"}`` update, and each posted setup is cancelled
the same way when its expiry (100 h after it was emitted) passes on the bar clock.

A terminal that does not answer skips the poll (the MT5 link reconnects with backoff next time);
a webhook that does not answer is retried with backoff, and what still failed stays queued, with
the same body and key, for the next poll. The MT5 module is only touched from one worker thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from loguru import logger

from engine.api.client import Answer, SignalClient
from engine.brokers.base import BrokerError, Side, SymbolSpec, Tick
from engine.brokers.mt5_link import MT5Config, MT5Link
from engine.observability.metrics import Metrics
from engine.strategies import build
from engine.strategies.base import H1_SECONDS, Bars, Setup, Strategy
from engine.strategies.placement import place_limit

CATCH_UP_BARS = 5  # bars read per poll; more only when a poll finds a gap


class MT5Bars:
    """Bars, quotes and specs from a MetaTrader5-compatible module, on one worker thread."""

    def __init__(self, config: MT5Config) -> None:
        self._link = MT5Link(config)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="strategy-mt5")

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def spec(self, symbol: str) -> SymbolSpec | None:
        return await self._call(self._link.symbol_spec, symbol)

    async def tick(self, symbol: str) -> Tick:
        return await self._call(self._link.tick, symbol)

    async def closed_bars(self, symbol: str, count: int) -> Bars:
        rates = await self._call(self._link.rates_h1, symbol, 1, count)
        return Bars.from_arrays(rates["time"], rates["open"], rates["high"], rates["low"], rates["close"])

    async def close(self) -> None:
        await self._call(self._link.shutdown)
        self._pool.shutdown(wait=True)


@dataclass(frozen=True)
class ProducerConfig:
    strategy: str
    symbols: tuple[str, ...]
    risk_percent: Decimal
    history_bars: int = 1000
    poll_seconds: float = 60.0


@dataclass
class _Delivery:
    """A POST that has not been answered yet; retried with the same body and key."""

    kind: str  # "signal" | "cancel"
    target: str  # setup id (the signal's id)
    body: dict[str, Any]
    key: str
    symbol: str
    side: Side


@dataclass
class _Symbol:
    name: str
    strategy: Strategy | None = None
    spec: SymbolSpec | None = None
    last: dict[Side, str] = field(default_factory=dict)  # previous setup id per direction
    expiries: list[tuple[float, str, Side]] = field(default_factory=list)  # (expires, id, side)


class StrategyProducer:
    def __init__(
        self, config: ProducerConfig, market: Any, client: SignalClient, metrics: Metrics | None = None
    ) -> None:
        self.config = config
        self.market = market  # MT5Bars or anything with spec / tick / closed_bars
        self.client = client
        self.metrics = metrics
        self.symbols = {s: _Symbol(s) for s in config.symbols}
        self.queue: list[_Delivery] = []

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set."""
        logger.info(
            "strategy {} producing for {} every {} s",
            self.config.strategy,
            ",".join(self.config.symbols),
            self.config.poll_seconds,
        )
        while not stop.is_set():
            await self.step()
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.config.poll_seconds)
            except TimeoutError:
                pass

    async def step(self) -> None:
        """One poll: queued deliveries first, then each symbol's new bars."""
        await self._flush()
        for state in self.symbols.values():
            started = time.perf_counter()
            try:
                setups, newest = await self._new_setups(state)
            except BrokerError as exc:
                logger.warning("strategy {}: {}: terminal: {}", self.config.strategy, state.name, exc)
                continue
            if self.metrics is not None:
                self.metrics.strategy_evaluation.labels(self.config.strategy).observe(
                    time.perf_counter() - started
                )
            if newest is None:
                continue
            for setup in setups:
                if setup.bar_time.timestamp() == newest:
                    await self._emit(state, setup)
                else:  # final at a bar missed while down: not new any more, but it is the previous
                    state.last[setup.side] = setup.setup_id
            await self._expire(state, newest + H1_SECONDS)

    async def _new_setups(self, state: _Symbol) -> tuple[list[Setup], int | None]:
        if state.strategy is None:
            spec = await self.market.spec(state.name)
            if spec is None:
                raise BrokerError(f"the terminal does not know {state.name}")
            bars = await self.market.closed_bars(state.name, self.config.history_bars)
            if len(bars) == 0:
                return [], None
            state.spec = spec
            state.strategy = build(self.config.strategy, state.name, spec.tick_size)
            setups = state.strategy.update(bars)
            logger.info(
                "strategy {}: {}: primed with {} bars up to {}",
                self.config.strategy,
                state.name,
                len(bars),
                bars.time[-1],
            )
            return setups, int(bars.time[-1])
        last = state.strategy.last_time
        assert last is not None
        bars = await self.market.closed_bars(state.name, CATCH_UP_BARS)
        if len(bars) and int(bars.time[0]) > last:  # a gap: read back far enough
            bars = await self.market.closed_bars(state.name, self.config.history_bars)
        fresh = bars.slice(int((bars.time <= last).sum()))
        if len(fresh) == 0:
            return [], None
        return state.strategy.update(fresh), int(fresh.time[-1])

    async def _emit(self, state: _Symbol, setup: Setup) -> None:
        assert state.spec is not None
        tick = await self.market.tick(state.name)
        placement = place_limit(setup, tick.bid, tick.ask, state.spec.point, state.spec.tick_size)
        if placement.refused is not None:
            logger.warning(
                "strategy {}: {} not placed: {}", setup.strategy, setup.setup_id, placement.refused
            )
            if self.metrics is not None:
                self.metrics.strategy_refused.labels(state.name, "moved_beyond_stop").inc()
            return
        body = {
            "id": setup.setup_id,
            "instrument": setup.symbol,
            "side": setup.side.value,
            "order_type": "limit",
            "entry": format(placement.entry, "f"),
            "sl": format(setup.sl, "f"),
            "tp": format(setup.tp, "f"),
            "risk_percent": format(self.config.risk_percent, "f"),
            "strategy": setup.strategy,
            "note": setup.note
            + (f"; entry moved to {placement.entry} (beyond the market)" if placement.moved else ""),
        }
        logger.info("strategy {}: {} {} limit {} sl {} tp {}", setup.strategy, setup.setup_id,
                    setup.side.value, placement.entry, setup.sl, setup.tp)  # fmt: skip
        previous = state.last.get(setup.side)
        state.last[setup.side] = setup.setup_id
        state.expiries.append((setup.expires_at.timestamp(), setup.setup_id, setup.side))
        self.queue.append(_Delivery("signal", setup.setup_id, body, setup.setup_id, state.name, setup.side))
        if previous is not None and previous != setup.setup_id:
            self.queue.append(self._cancel(state.name, previous, setup.side))
        await self._flush()

    @staticmethod
    def _cancel(symbol: str, setup_id: str, side: Side) -> _Delivery:
        return _Delivery("cancel", setup_id, {"action": "cancel"}, f"cancel-{setup_id}", symbol, side)

    async def _expire(self, state: _Symbol, bar_close: float) -> None:
        due = [item for item in state.expiries if item[0] <= bar_close]
        if not due:
            return
        state.expiries = [item for item in state.expiries if item[0] > bar_close]
        for _, setup_id, side in due:
            logger.info(
                "strategy {}: {} expired: cancelling its pending orders", self.config.strategy, setup_id
            )
            self.queue.append(self._cancel(state.name, setup_id, side))
        await self._flush()

    async def _flush(self) -> None:
        """Send what is queued, in order; what gets no answer stays queued (a signal first)."""
        waiting: list[_Delivery] = []
        for item in self.queue:
            if any(w.target == item.target for w in waiting):
                waiting.append(item)  # never cancel a signal that has not been delivered yet
                continue
            if item.kind == "signal":
                answer = await self.client.post_signal(item.body, item.key)
            else:
                answer = await self.client.post_update(item.target, item.body, item.key)
            if answer.status == 0 or answer.status >= 500 or answer.status == 429:
                logger.warning("strategy: {} {} not delivered ({}); kept for the next poll",
                               item.kind, item.target, answer.status or answer.error)  # fmt: skip
                waiting.append(item)
                continue
            self._answered(item, answer)
        self.queue = waiting

    def _answered(self, item: _Delivery, answer: Answer) -> None:
        if item.kind == "signal":
            if answer.ok:
                replay = " (already posted)" if answer.status == 200 else ""
                logger.info("strategy: signal {} accepted{}", item.target, replay)
                if self.metrics is not None and answer.status == 201:
                    self.metrics.strategy_setups.labels(item.symbol, item.side.value).inc()
            else:
                logger.error(
                    "strategy: signal {} refused ({}): {}", item.target, answer.status, answer.text[:300]
                )
                if self.metrics is not None:
                    self.metrics.strategy_refused.labels(item.symbol, f"http_{answer.status}").inc()
            return
        if answer.ok:
            logger.info("strategy: cancel of {} accepted ({})", item.target, answer.status)
        elif answer.status == 404:
            logger.info("strategy: cancel of {}: no such signal there, nothing to cancel", item.target)
        else:
            logger.error(
                "strategy: cancel of {} refused ({}): {}", item.target, answer.status, answer.text[:300]
            )
