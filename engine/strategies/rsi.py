"""RSI(14), Wilder, exactly as the reference defines it (the ``ta`` library's ``RSIIndicator``).

``d[0] = 0``, ``d[k] = close[k] - close[k-1]``; gains and losses are averaged with pandas
``ewm(alpha=1/14, adjust=False, min_periods=14)`` from bar 0; ``RSI = 100 - 100 / (1 + g / l)``,
100 when the average loss is 0, NaN (undefined) before bar 13.

``RsiState`` lets the computation continue over later chunks of bars: the chunk's series is
prefixed with the previous averages, which is the same recursion step by step, so any split of
the bars into chunks gives the same floats bit for bit as one pass over all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PERIOD = 14
ALPHA = 1.0 / PERIOD


@dataclass(frozen=True)
class RsiState:
    count: int = 0  # bars seen
    last_close: float = 0.0
    avg_gain: float = 0.0
    avg_loss: float = 0.0


def _ewm(first: float | None, values: np.ndarray) -> np.ndarray:
    import pandas as pd

    series = pd.Series(values if first is None else np.concatenate(([first], values)))
    out = series.ewm(alpha=ALPHA, adjust=False).mean().to_numpy()
    return out if first is None else out[1:]


def rsi_extend(state: RsiState, close: np.ndarray) -> tuple[np.ndarray, RsiState]:
    """RSI of the bars ``close`` that follow ``state`` (NaN while undefined), and the new state."""
    close = np.asarray(close, dtype=np.float64)
    n = len(close)
    if n == 0:
        return np.empty(0), state
    d = np.empty(n)
    if state.count == 0:
        d[0] = 0.0
        d[1:] = np.diff(close)
    else:
        d[0] = close[0] - state.last_close
        d[1:] = np.diff(close)
    gain = np.where(d > 0, d, 0.0)
    loss = np.where(d < 0, -d, 0.0)
    first = state.count > 0
    avg_gain = _ewm(state.avg_gain if first else None, gain)
    avg_loss = _ewm(state.avg_loss if first else None, loss)
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = np.where(avg_loss == 0, 100.0, 100.0 - 100.0 / (1.0 + avg_gain / avg_loss))
    index = state.count + np.arange(n)
    rsi[index < PERIOD - 1] = np.nan
    new_state = RsiState(state.count + n, float(close[-1]), float(avg_gain[-1]), float(avg_loss[-1]))
    return rsi, new_state


def rsi(close: np.ndarray) -> np.ndarray:
    """RSI over a whole series (one pass from bar 0)."""
    return rsi_extend(RsiState(), close)[0]
