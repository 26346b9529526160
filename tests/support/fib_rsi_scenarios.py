"""Hand-made H1 bar series for the Fib-RSI golden tests.

Closes follow segments of equal steps; each bar opens at the previous close, with wicks of 0.1
above and below unless a test sets a bar's high or low; bars are an hour apart from
2024-01-01T00:00Z unless a test inserts a gap. ``WARMUP`` (31 bars alternating +-1) leaves the RSI
near 50 before a pattern starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from engine.strategies.base import Bars

T0 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
HOUR = 3600
WARMUP: list[tuple[int, float]] = [(1, 1.0)] + [(1, -1.0), (1, 1.0)] * 15

# The RSI of SHORT_A (checked in the tests against the reference formula): trigger at 34 (72.86
# after 69.10), above 70 through 37, first <= 40 at 43, the oversold run 43..46, 47 back above 40.
SHORT_A = [(6, 2.0), (8, -2.0), (2, -0.5), (1, 3.0)]
# Two triggers (34 and 43, the RSI dipping to 56.74 between) completing at 50; run 50..54; e = 55.
SHORT_TWO = [(6, 2.0), (3, -2.0), (4, 2.0), (10, -2.0), (1, -0.5), (1, 8.0)]
# Long: trigger at 32 (38.17 after 44.22), below 40 through 37, first >= 70 at 43, the
# overbought run 43..48, 49 back below 70.
LONG_A = [(1, -2.0), (5, -2.0), (10, 3.0), (1, 0.5), (1, -3.0), (1, -0.5)]


@dataclass
class Series:
    segments: list[tuple[int, float]]
    start: float = 100.0
    highs: dict[int, float] = field(default_factory=dict)
    lows: dict[int, float] = field(default_factory=dict)
    gaps: dict[int, int] = field(default_factory=dict)  # bar index -> hours added before it
    extra: list[tuple[float, float, float, float]] = field(default_factory=list)  # (o, h, l, c) after

    def bars(self) -> Bars:
        closes: list[float] = []
        last = self.start
        for n, step in self.segments:
            for _ in range(n):
                last = round(last + step, 6)
                closes.append(last)
        opens = [self.start, *closes[:-1]]
        highs = [round(max(o, c) + 0.1, 6) for o, c in zip(opens, closes, strict=True)]
        lows = [round(min(o, c) - 0.1, 6) for o, c in zip(opens, closes, strict=True)]
        for k, v in self.highs.items():
            highs[k] = v
        for k, v in self.lows.items():
            lows[k] = v
        for o, h, lo, c in self.extra:
            opens.append(o)
            highs.append(h)
            lows.append(lo)
            closes.append(c)
        times, t = [], T0
        for k in range(len(closes)):
            t += self.gaps.get(k, 0) * HOUR
            times.append(t)
            t += HOUR
        return Bars.from_arrays(np.array(times), opens, highs, lows, closes)


def at(hours: int) -> datetime:
    """The time ``hours`` after T0."""
    return datetime.fromtimestamp(T0 + hours * HOUR, tz=UTC)


def reference_rsi(close: np.ndarray) -> np.ndarray:
    """The ``ta`` library's RSIIndicator(window=14), written out as that library computes it."""
    import pandas as pd

    diff = pd.Series(close).diff(1)
    up = diff.where(diff > 0, 0.0)
    down = -diff.where(diff < 0, 0.0)
    up_avg = up.ewm(alpha=1 / 14, min_periods=14, adjust=False).mean()
    down_avg = down.ewm(alpha=1 / 14, min_periods=14, adjust=False).mean()
    return np.where(down_avg == 0, 100, 100 - (100 / (1 + up_avg / down_avg)))


FLAT = (99.0, 99.5, 98.5, 99.0)  # a bar that touches nothing (RSI stays near where it is)


def pattern_bars(start: float, scale: float, jump: float) -> list[tuple[float, float, float, float]]:
    """SHORT_A's shape again, ``scale`` times smaller, after its warm-up, ending with ``jump``."""
    segments = [(1, scale)] + [(1, -scale), (1, scale)] * 15
    segments += [(6, 2 * scale), (8, -2 * scale), (2, -0.5 * scale), (1, jump)]
    out, last = [], start
    for n, step in segments:
        for _ in range(n):
            close = round(last + step, 6)
            out.append((last, round(max(last, close) + 0.1, 6), round(min(last, close) - 0.1, 6), close))
            last = close
    return out
