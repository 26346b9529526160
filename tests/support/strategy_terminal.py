"""The simulated terminal for producer tests: a data login, and a clock at a Fib-RSI setup."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import mt5sim
from engine.strategies.base import Bars, Setup
from engine.strategies.fib_rsi import FibRsi
from mt5sim import control

LOGIN, PASSWORD = 7_000_001, "data-login"
SEARCH_FROM = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def make_terminal(path: Path) -> Path:
    control.create_account(LOGIN, PASSWORD, state=path)
    control.ignore_market_hours(True, state=path)
    return path


def latest_setup(path: Path, at: datetime) -> Setup:
    """The newest XAUUSD setup in the 600 closed bars before ``at`` (read as the producer reads)."""
    control.set_time(at, state=path)
    assert mt5sim.initialize(str(path), login=LOGIN, password=PASSWORD)
    rates = mt5sim.copy_rates_from_pos("XAUUSD", mt5sim.TIMEFRAME_H1, 1, 600)
    bars = Bars.from_arrays(rates["time"], rates["open"], rates["high"], rates["low"], rates["close"])
    found = FibRsi("XAUUSD", Decimal("0.01")).update(bars)
    assert found, "the simulated series has setups"
    return found[-1]
