"""Paper prices from a real MT5 terminal (the operator's, through ``MT5_MODULE``).

``TerminalPrices`` keeps one MT5 session (its own worker thread or child process, like any MT5
account) and polls ``symbol_info`` / ``symbol_info_tick`` for the instruments in play; the paper
broker reads the latest answers without blocking the event loop. A quote older than
``stale_seconds`` is not served (``None``: the paper broker refuses the order as having no price)
rather than filling at a price the market has left.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable

from loguru import logger

from engine.brokers.base import Broker, BrokerError, SymbolSpec, Tick


class TerminalPrices:
    def __init__(
        self,
        broker: Broker,
        symbols: Iterable[str],
        *,
        poll_seconds: float = 0.5,
        stale_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._broker = broker
        self._symbols = {s.upper() for s in symbols}
        self._poll = poll_seconds
        self._stale = stale_seconds
        self._clock = clock
        self._ticks: dict[str, tuple[float, Tick]] = {}
        self._specs: dict[str, SymbolSpec | None] = {}
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ what the paper broker reads

    def tick(self, symbol: str) -> Tick | None:
        name = symbol.upper()
        self._symbols.add(name)  # asked for: watched from the next poll on
        cached = self._ticks.get(name)
        if cached is None or self._clock() - cached[0] > self._stale:
            return None
        return cached[1]

    def spec(self, symbol: str) -> SymbolSpec | None:
        name = symbol.upper()
        self._symbols.add(name)
        return self._specs.get(name)

    # ------------------------------------------------------------------ polling

    async def refresh(self) -> None:
        """Ask the terminal once for every watched symbol's spec and quote."""
        for name in sorted(self._symbols):
            try:
                spec = await self._broker.symbol_spec(name)
                self._specs[name] = spec
                if spec is not None:
                    self._ticks[name] = (self._clock(), await self._broker.tick(name))
            except BrokerError as exc:
                logger.warning("paper prices: terminal did not quote {}: {}", name, exc)

    async def _run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self._poll)

    async def start(self) -> None:
        await self.refresh()  # the first quotes before anything trades
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="paper-prices")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._broker.close()
