"""Fib-RSI on H1 bars, exactly as ``../shared/reference/fib-rsi-strategy.md`` specifies it.

Short (the long mirrors it): an RSI trigger above 70 at ``i``, completion at the first ``j > i``
with RSI <= 40 within 100 h, the high ``H`` of the overbought bars of the leg, the low ``L`` of the
oversold run from ``j``; final at the close of the first bar ``e`` after the run (RSI > 40).
Entry ``L + 0.74 R``, stop ``H + 0.27 R``, target ``entry - 3.25 risk``: a sell limit.

Work per bar is constant unless the RSI leaves an oversold (overbought) run at that bar: only
then can a setup be final there, and only then are the last 200 bars (the window) scanned. The
strategy keeps the RSI state and the last 199 bars, never the whole history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import numpy as np

from engine.brokers.base import Side
from engine.execution.orders import round_to_step
from engine.strategies.base import H1_SECONDS, Bars, Setup, decimal_price, utc
from engine.strategies.rsi import RsiState, rsi_extend

NAME = "fib-rsi"
WINDOW = 200
OVERBOUGHT = 70.0
OVERSOLD = 40.0
SETUP_WINDOW_HOURS = 100
MAX_AGE_HOURS = 1440
EXPIRY_HOURS = 100
ENTRY_RETRACE = Decimal("0.74")
STOP_EXTENSION = Decimal("0.27")
REWARD_RISK = Decimal("3.25")


@dataclass(frozen=True)
class _Rules:
    """One direction. Short: trigger RSI > 70 after <= 70, completion run RSI <= 40; long: trigger
    RSI < 40 after >= 40, completion run RSI >= 70. NaN (undefined RSI) fails every comparison."""

    side: Side


SHORT = _Rules(Side.SELL)
LONG = _Rules(Side.BUY)


def _first_extreme(values: np.ndarray, mask: np.ndarray, highest: bool) -> int:
    """Index of the first value reaching the max (min) of ``values`` where ``mask`` holds."""
    fill = -np.inf if highest else np.inf
    masked = np.where(mask, values, fill)
    return int(np.argmax(masked) if highest else np.argmin(masked))


class _Scan:
    """One direction's comparisons over a stretch of RSI, precomputed so each candidate is O(1).

    ``last_not_done[k]``: the last index <= k whose RSI is not in a completion run (-1: none);
    ``last_not_open[k]``: the last index <= k whose RSI is in one, or undefined; ``next_trigger[k]``:
    the first trigger index >= k (n: none); ``extreme``: RSI beyond the trigger level.
    """

    def __init__(self, rules: _Rules, t: np.ndarray, r: np.ndarray) -> None:
        n = len(r)
        index = np.arange(n)
        with np.errstate(invalid="ignore"):
            if rules.side is Side.SELL:
                over, calm, done, open_ = r > OVERBOUGHT, r <= OVERBOUGHT, r <= OVERSOLD, r > OVERSOLD
            else:
                over, calm, done, open_ = r < OVERSOLD, r >= OVERSOLD, r >= OVERBOUGHT, r < OVERBOUGHT
        self.rules = rules
        self.extreme = over
        self.last_not_done = np.maximum.accumulate(np.where(done, -1, index)).tolist()
        self.last_not_open = np.maximum.accumulate(np.where(open_, -1, index)).tolist()
        trigger = np.zeros(n, dtype=bool)
        trigger[1:] = over[1:] & calm[:-1]
        nxt = np.where(trigger, index, n)
        self.next_trigger = np.minimum.accumulate(nxt[::-1])[::-1].tolist()


class FibRsi:
    """Fib-RSI for one symbol: feed closed H1 bars, get the setups final at them."""

    name = NAME

    def __init__(self, symbol: str, tick_size: Decimal) -> None:
        if not (tick_size.is_finite() and tick_size > 0):
            raise ValueError(f"tick size must be positive, got {tick_size}")
        self.symbol = symbol.upper()
        self.tick_size = tick_size
        self._rsi = RsiState()
        self._time = np.empty(0, dtype=np.int64)
        self._high = np.empty(0)
        self._low = np.empty(0)
        self._r = np.empty(0)

    @property
    def last_time(self) -> int | None:
        return int(self._time[-1]) if len(self._time) else None

    def update(self, bars: Bars) -> list[Setup]:
        """Take the next closed bars (after every bar seen so far); the setups final at them."""
        if len(bars) == 0:
            return []
        if self.last_time is not None and int(bars.time[0]) <= self.last_time:
            raise ValueError(f"{self.symbol}: bars must come after {utc(self.last_time).isoformat()}")
        r_new, self._rsi = rsi_extend(self._rsi, bars.close)
        keep = len(self._time)
        t = np.concatenate((self._time, bars.time))
        hi = np.concatenate((self._high, bars.high))
        lo = np.concatenate((self._low, bars.low))
        r = np.concatenate((self._r, r_new))
        # A setup can only be final at e when the RSI leaves a completion run there.
        with np.errstate(invalid="ignore"):
            short_end = (r[:-1] <= OVERSOLD) & (r[1:] > OVERSOLD)
            long_end = (r[:-1] >= OVERBOUGHT) & (r[1:] < OVERBOUGHT)
        ends = np.flatnonzero(short_end | long_end) + 1
        ends = ends[ends >= max(keep, 1)]
        setups: list[Setup] = []
        if len(ends):
            scans = {side: _Scan(rules, t, r) for side, rules in ((Side.SELL, SHORT), (Side.BUY, LONG))}
            for e in ends.tolist():
                scan = scans[Side.SELL] if short_end[e - 1] else scans[Side.BUY]
                setup = self._evaluate(scan, e, t, hi, lo)
                if setup is not None:
                    setups.append(setup)
        tail = WINDOW - 1
        self._time, self._high, self._low, self._r = t[-tail:], hi[-tail:], lo[-tail:], r[-tail:]
        return setups

    def _evaluate(
        self, scan: _Scan, e: int, t: np.ndarray, high: np.ndarray, low: np.ndarray
    ) -> Setup | None:
        """The setup final at bar ``e`` (the newest of the window ending at it), if any."""
        ws = max(0, e - (WINDOW - 1))  # window start
        j = max(scan.last_not_done[e - 1] + 1, ws)  # the completion run j..e-1
        if j - 1 < ws + 1:
            return None  # the run reaches back to the window's start: no trigger in the window
        # triggers completing at j lie after the last bar before j that is not "open"
        first = max(scan.last_not_open[j - 1] + 1, ws + 1)
        limit = SETUP_WINDOW_HOURS * H1_SECONDS
        first = max(first, int(np.searchsorted(t, t[j] - limit, side="left")))
        if first >= j:
            return None
        i = scan.next_trigger[first]  # the earliest trigger in the window that passes step 2
        if i >= j:
            return None
        short = scan.rules.side is Side.SELL
        leg_mask = scan.extreme[i:j]
        if short:
            k_ext = i + _first_extreme(high[i:j], leg_mask, highest=True)
            k_run = j + int(np.argmin(low[j:e]))
            top, bottom = float(high[k_ext]), float(low[k_run])
        else:
            k_ext = i + _first_extreme(low[i:j], leg_mask, highest=False)
            k_run = j + int(np.argmax(high[j:e]))
            top, bottom = float(high[k_run]), float(low[k_ext])
        t_ext, t_run, t_e = int(t[k_ext]), int(t[k_run]), int(t[e])
        if t_run - t_ext > limit or t_e - t_run > MAX_AGE_HOURS * H1_SECONDS or top <= bottom:
            return None
        return self._setup(
            scan.rules.side, decimal_price(top), decimal_price(bottom), int(t[j]), t_e, t_ext, t_run
        )

    def _setup(
        self, side: Side, high: Decimal, low: Decimal, t_j: int, t_e: int, t_ext: int, t_run: int
    ) -> Setup | None:
        span = high - low
        if side is Side.SELL:
            entry = low + ENTRY_RETRACE * span
            sl = high + STOP_EXTENSION * span
            tp = entry - REWARD_RISK * (sl - entry)
        else:
            entry = high - ENTRY_RETRACE * span
            sl = low - STOP_EXTENSION * span
            tp = entry + REWARD_RISK * (entry - sl)
        if min(entry, sl, tp) <= 0:
            return None  # a target or stop at or below zero cannot be an order on any symbol
        tick = self.tick_size
        entry_r = round_to_step(entry, tick, "nearest")
        tp_r = round_to_step(tp, tick, "nearest")
        sl_r = round_to_step(sl, tick, "up" if side is Side.SELL else "down")
        direction = "short" if side is Side.SELL else "long"
        bar_time = utc(t_e)
        completion = utc(t_j).strftime("%Y-%m-%dT%H:%MZ")
        high_at, low_at = (t_ext, t_run) if side is Side.SELL else (t_run, t_ext)
        placed = bar_time + timedelta(seconds=H1_SECONDS)
        expires = placed + timedelta(hours=EXPIRY_HOURS)
        note = (
            f"Fib-RSI H1 {direction}: high {high} ({utc(high_at):%Y-%m-%d %H:%M}), "
            f"low {low} ({utc(low_at):%Y-%m-%d %H:%M}) UTC; limit expires {expires:%Y-%m-%d %H:%M} UTC"
        )
        return Setup(
            setup_id=f"{self.symbol}_H1_{direction}_{completion}",
            strategy=NAME,
            symbol=self.symbol,
            side=side,
            entry=entry_r,
            sl=sl_r,
            tp=tp_r,
            bar_time=bar_time,
            expires_at=expires,
            note=note,
        )
