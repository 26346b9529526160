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
from engine.orders import round_to_step
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
    """The comparisons of one direction (NaN fails every one of them, as the reference wants)."""

    side: Side

    def over(self, x: float) -> bool:  # the trigger's extreme: short RSI > 70, long RSI < 40
        return x > OVERBOUGHT if self.side is Side.SELL else x < OVERSOLD

    def calm(self, x: float) -> bool:  # the bar before a trigger: short RSI <= 70, long RSI >= 40
        return x <= OVERBOUGHT if self.side is Side.SELL else x >= OVERSOLD

    def done(self, x: float) -> bool:  # in the completion run: short RSI <= 40, long RSI >= 70
        return x <= OVERSOLD if self.side is Side.SELL else x >= OVERBOUGHT

    def open(self, x: float) -> bool:  # not in the completion run: short RSI > 40, long RSI < 70
        return x > OVERSOLD if self.side is Side.SELL else x < OVERBOUGHT


SHORT = _Rules(Side.SELL)
LONG = _Rules(Side.BUY)


def _first_extreme(values: np.ndarray, mask: np.ndarray, highest: bool) -> int:
    """Index of the first value reaching the max (min) of ``values`` where ``mask`` holds."""
    fill = -np.inf if highest else np.inf
    masked = np.where(mask, values, fill)
    return int(np.argmax(masked) if highest else np.argmin(masked))


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
        prev, cur = r[:-1], r[1:]
        with np.errstate(invalid="ignore"):
            short_end = (prev <= OVERSOLD) & (cur > OVERSOLD)
            long_end = (prev >= OVERBOUGHT) & (cur < OVERBOUGHT)
        ends = np.flatnonzero(short_end | long_end) + 1
        setups: list[Setup] = []
        tl, hl, ll, rl = t.tolist(), hi.tolist(), lo.tolist(), r.tolist()
        for e in ends[ends >= max(keep, 1)].tolist():
            rules = SHORT if short_end[e - 1] else LONG
            setup = self._evaluate(rules, e, tl, hl, ll, rl, hi, lo)
            if setup is not None:
                setups.append(setup)
        tail = WINDOW - 1
        self._time, self._high, self._low, self._r = t[-tail:], hi[-tail:], lo[-tail:], r[-tail:]
        return setups

    def _evaluate(
        self,
        rules: _Rules,
        e: int,
        t: list[int],
        high: list[float],
        low: list[float],
        r: list[float],
        high_arr: np.ndarray,
        low_arr: np.ndarray,
    ) -> Setup | None:
        """The setup final at bar ``e`` (the newest of the window ending at it), if any."""
        ws = max(0, e - (WINDOW - 1))  # window start
        j = e - 1
        while j - 1 >= ws and rules.done(r[j - 1]):
            j -= 1
        # every trigger that completes at j: between the previous completion-run bar and j
        triggers: list[int] = []
        k = j - 1
        while k >= ws + 1 and rules.open(r[k]):
            if rules.over(r[k]) and rules.calm(r[k - 1]):
                triggers.append(k)
            k -= 1
        limit = SETUP_WINDOW_HOURS * H1_SECONDS
        passing = [i for i in triggers if t[j] - t[i] <= limit]
        if not passing:
            return None
        i = min(passing)  # the earliest trigger in the window that passes step 2
        leg = np.asarray(r[i:j])
        short = rules.side is Side.SELL
        leg_mask = leg > OVERBOUGHT if short else leg < OVERSOLD
        if short:
            k_ext = i + _first_extreme(high_arr[i:j], leg_mask, highest=True)
            k_run = j + int(np.argmin(low_arr[j:e]))
            top, bottom = high[k_ext], low[k_run]
        else:
            k_ext = i + _first_extreme(low_arr[i:j], leg_mask, highest=False)
            k_run = j + int(np.argmax(high_arr[j:e]))
            top, bottom = high[k_run], low[k_ext]
        if t[k_run] - t[k_ext] > limit or t[e] - t[k_run] > MAX_AGE_HOURS * H1_SECONDS or top <= bottom:
            return None
        return self._setup(rules.side, decimal_price(top), decimal_price(bottom), t[j], t[e], t[k_ext], t[k_run])

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
