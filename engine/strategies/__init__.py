"""Built-in strategies: each turns closed bars into setups, the same code live and in a backtest.

``STRATEGIES`` names every strategy the CLI, the producer and the backtester know. A new one
implements ``engine.strategies.base.Strategy`` and registers here (see docs/strategies.md).
Nothing here imports numpy or pandas at module level: ``build`` does, when a strategy runs.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.strategies.base import Strategy

STRATEGIES = ("fib-rsi",)


class UnknownStrategy(ValueError):
    pass


def parse_strategies(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """``"fib-rsi:XAUUSD,EURUSD; other:US500"`` -> ``[("fib-rsi", ("XAUUSD", "EURUSD")), ...]``."""
    out: list[tuple[str, tuple[str, ...]]] = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, sep, symbols = part.partition(":")
        name = name.strip().lower()
        if name not in STRATEGIES:
            raise UnknownStrategy(f"unknown strategy {name!r} (known: {', '.join(STRATEGIES)})")
        listed = tuple(dict.fromkeys(s.strip().upper() for s in symbols.split(",") if s.strip()))
        if not sep or not listed:
            raise UnknownStrategy(f"{name}: name its symbols, e.g. {name}:XAUUSD,EURUSD")
        out.append((name, listed))
    return out


def build(name: str, symbol: str, tick_size: Decimal) -> Strategy:
    """A fresh strategy state for one symbol."""
    if name == "fib-rsi":
        from engine.strategies.fib_rsi import FibRsi

        return FibRsi(symbol, tick_size)
    raise UnknownStrategy(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")
