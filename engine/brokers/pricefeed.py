"""Where the paper broker gets symbols and prices, and whether that market is real.

A ``PriceSource`` answers ``spec(symbol)`` and ``tick(symbol)`` without blocking (it may answer
``None``: no such symbol, or no fresh price). The composition root picks one: the operator's MT5
terminal (``engine.brokers.mt5_prices``) when one is configured, else the simulated market
(``mt5sim.pricefeed``), and wraps it in a ``PaperMarket`` that says which it is, so the bot, the
status report and the start-up log can tell a subscriber plainly that the market is simulated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from engine.brokers.base import SymbolSpec, Tick


class PriceSource(Protocol):
    def spec(self, symbol: str) -> SymbolSpec | None: ...

    def tick(self, symbol: str) -> Tick | None: ...


@dataclass(frozen=True)
class PaperMarket:
    source: PriceSource
    simulated: bool  # True: a random walk, not a real market; every front end says so
    description: str  # for the log and the operator ("MT5 terminal Demo-Server", "simulated market")
    per_currency: Callable[[str], PriceSource] | None = None  # a source valued in the account's currency

    def prices(self, currency: str) -> PriceSource:
        """The source for a paper account kept in ``currency``."""
        return self.per_currency(currency) if self.per_currency is not None else self.source

    async def start(self) -> None:
        """Start polling when the source polls (a terminal); a computed feed has nothing to start."""
        start = getattr(self.source, "start", None)
        if callable(start):
            await start()

    async def close(self) -> None:
        close = getattr(self.source, "close", None)
        if callable(close):
            await close()
