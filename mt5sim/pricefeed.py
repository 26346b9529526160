"""The simulated market as a price source for the engine's paper broker (``engine.brokers.pricefeed``).

The feed is a pure function of (symbol, time, seed), so a paper account and a simulated MT5
account in another process see the same market. Only the composition root (``tradebot.app``)
wires it in, and only when no real source is configured; the product then says plainly that paper
accounts trade a simulated market.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from engine.brokers.base import FillingMode, SymbolSpec, Tick
from mt5sim import feed
from mt5sim.specs import DEFAULT_SPECS, Spec

_FILLING_BITS = {1: FillingMode.FOK, 2: FillingMode.IOC}


class SimulatedFeed:
    """Symbols and quotes of ``mt5sim``'s random walk, valued in ``account_currency``."""

    def __init__(self, account_currency: str = "USD", seed: int | None = None) -> None:
        self._currency = account_currency
        self._seed = seed

    def _sim_spec(self, symbol: str) -> Spec | None:
        return DEFAULT_SPECS.get(symbol.upper())

    def tick(self, symbol: str) -> Tick | None:
        if self._sim_spec(symbol) is None:
            return None
        now = datetime.now(UTC)
        bid, ask = feed.quote(symbol.upper(), now, self._seed)
        return Tick(symbol.upper(), bid, ask, now)

    def spec(self, symbol: str) -> SymbolSpec | None:
        sim = self._sim_spec(symbol)
        if sim is None:
            return None
        tick_value = self._tick_value(sim.name, sim.tick_size, sim.contract_size, sim.currency_profit)
        if tick_value is None:
            return None
        modes = frozenset(mode for bit, mode in _FILLING_BITS.items() if sim.filling_mode & bit)
        return SymbolSpec(
            name=sim.name,
            digits=sim.digits,
            point=sim.point,
            tick_size=sim.tick_size,
            tick_value=tick_value,
            contract_size=sim.contract_size,
            volume_min=sim.volume_min,
            volume_max=sim.volume_max,
            volume_step=sim.volume_step,
            stops_level=sim.stops_level,
            freeze_level=sim.freeze_level,
            filling_modes=modes | {FillingMode.RETURN},
            trade_allowed=sim.trade_mode != 0,
            currency_profit=sim.currency_profit,
        )

    def _tick_value(
        self, name: str, tick_size: Decimal, contract: Decimal, profit_ccy: str
    ) -> Decimal | None:
        """Account-currency value of one tick for one lot (converting the profit currency if needed)."""
        raw = tick_size * contract
        if profit_ccy == self._currency:
            return raw
        direct = self.tick(f"{self._currency}{profit_ccy}")  # e.g. USDJPY for a JPY-profit symbol
        if direct is not None:
            return raw / direct.bid
        inverse = self.tick(f"{profit_ccy}{self._currency}")
        if inverse is not None:
            return raw * inverse.bid
        return None
