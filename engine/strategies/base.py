"""What every strategy speaks: closed bars in, setups out.

A strategy is fed closed bars in time order, in chunks of any size (one bar at a time live, the
whole file at once in a backtest), and answers with the setups that became final at each bar.
Feeding the same bars in other chunk sizes gives the same setups (tests prove it for Fib-RSI):
that is what makes the backtest run exactly what the live producer runs.

Bars are numpy arrays (indicators are vectorised over them); times are Unix seconds of each bar's
open, UTC. Setups carry ``Decimal`` prices already on the symbol's tick grid and aware UTC times.
numpy is imported here, so import this package only where a strategy actually runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Protocol

import numpy as np

from engine.brokers.base import Side

H1_SECONDS = 3600


class BarsError(ValueError):
    """Bars that cannot be used (unsorted, duplicated, missing values); one clear line."""


@dataclass(frozen=True)
class Bars:
    """Closed bars of one symbol: ``time`` (int64 Unix seconds of the bar's open, UTC) and prices."""

    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.time)
        for name in ("open", "high", "low", "close"):
            if len(getattr(self, name)) != n:
                raise BarsError(f"bars: {name} has {len(getattr(self, name))} values for {n} times")

    def __len__(self) -> int:
        return len(self.time)

    @classmethod
    def from_arrays(
        cls,
        time: np.ndarray | list[int],
        open_: np.ndarray | list[float],
        high: np.ndarray | list[float],
        low: np.ndarray | list[float],
        close: np.ndarray | list[float],
    ) -> Bars:
        return cls(
            np.asarray(time, dtype=np.int64),
            np.asarray(open_, dtype=np.float64),
            np.asarray(high, dtype=np.float64),
            np.asarray(low, dtype=np.float64),
            np.asarray(close, dtype=np.float64),
        )

    def slice(self, start: int, stop: int | None = None) -> Bars:
        s = slice(start, stop)
        return Bars(self.time[s], self.open[s], self.high[s], self.low[s], self.close[s])

    def check(self) -> None:
        """Refuse NaN or non-positive prices and times that are not strictly increasing."""
        for name in ("open", "high", "low", "close"):
            values = getattr(self, name)
            bad = np.flatnonzero(~np.isfinite(values) | (values <= 0))
            if bad.size:
                raise BarsError(f"bar {bad[0] + 1}: {name} is missing, not a number or not positive")
        steps = np.diff(self.time)
        bad = np.flatnonzero(steps <= 0)
        if bad.size:
            k = int(bad[0]) + 1
            what = "duplicate time" if steps[k - 1] == 0 else "time is before the previous bar's"
            raise BarsError(f"bar {k + 1}: {what} ({iso(int(self.time[k]))}); bars must be sorted by time")


def utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(int(seconds), tz=UTC)


def iso(seconds: int) -> str:
    return utc(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def decimal_price(value: float) -> Decimal:
    """The decimal a bar price was written as (float's shortest repr round-trips it exactly)."""
    return Decimal(repr(float(value)))


@dataclass(frozen=True)
class Setup:
    """A trade idea, final at the close of bar ``bar_time``: a limit order at ``entry``."""

    setup_id: str  # stable: the signal's id, so it is never posted twice
    strategy: str
    symbol: str
    side: Side
    entry: Decimal  # on the tick grid
    sl: Decimal
    tp: Decimal
    bar_time: datetime  # open time of the bar at whose close the setup became final
    expires_at: datetime
    note: str = ""

    @property
    def placed_at(self) -> datetime:
        """When the order is placed: the close of the final bar."""
        return self.bar_time + timedelta(seconds=H1_SECONDS)


class Strategy(Protocol):
    """One symbol's strategy state. ``update`` returns the setups final at the bars it was given."""

    name: str
    symbol: str

    def update(self, bars: Bars) -> list[Setup]: ...

    @property
    def last_time(self) -> int | None:
        """Open time of the newest bar seen (Unix seconds), None before the first."""
        ...
