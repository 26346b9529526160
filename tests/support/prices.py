"""Price sources for tests: a market that moves only when the test says so."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from engine.brokers.base import SymbolSpec, Tick
from tests.support.symbols import EURUSD


@dataclass
class FixedPrices:
    """Quotes and specs held where the test puts them (EURUSD 1.10000/1.10010 by default)."""

    quotes: dict[str, tuple[Decimal, Decimal]] = field(
        default_factory=lambda: {"EURUSD": (Decimal("1.10000"), Decimal("1.10010"))}
    )
    specs: dict[str, SymbolSpec] = field(default_factory=lambda: {"EURUSD": EURUSD})

    def set(self, symbol: str, bid: str, ask: str) -> None:
        self.quotes[symbol] = (Decimal(bid), Decimal(ask))

    def spec(self, symbol: str) -> SymbolSpec | None:
        return self.specs.get(symbol.upper())

    def tick(self, symbol: str) -> Tick | None:
        q = self.quotes.get(symbol.upper())
        return None if q is None else Tick(symbol.upper(), q[0], q[1], datetime.now(UTC))
