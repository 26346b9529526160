"""Bar history (``copy_rates_from_pos``): a deterministic series per symbol and seed from the feed.

A bar's prices are the bid of ``mt5sim.feed`` sampled 13 times over the bar (open, every twelfth
of it, close), so bars agree with the quotes the terminal gives: the forming bar's close is the
current bid (a pushed price is not in bars). Bars exist only while the symbol's market is open,
unless the state file ignores market hours. Nothing is stored: a bar is a pure function of
(symbol, seed, timeframe, time), so every process computes the same history.

The bar clock: by default bars run on the terminal's clock (an H1 bar closes every hour). A state
file may set ``control.set_bar_clock(seconds_per_hour)``, from a real-time origin on: simulated
bar time then runs ``3600 / seconds_per_hour`` times faster than the terminal's clock, bars keep
hourly labels, and their prices are the feed's at the corresponding real times (so the newest
bar's close is still the current bid). The sandbox uses it to close an "H1" bar every few
seconds; tests and a real-time terminal leave it off.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from mt5sim import constants as c
from mt5sim import feed, store
from mt5sim.specs import Spec, market_open

TIMEFRAME_SECONDS = {
    c.TIMEFRAME_M1: 60,
    c.TIMEFRAME_M5: 300,
    c.TIMEFRAME_M15: 900,
    c.TIMEFRAME_M30: 1800,
    c.TIMEFRAME_H1: 3600,
    c.TIMEFRAME_H4: 14400,
    c.TIMEFRAME_D1: 86400,
}
SAMPLES = 12  # intervals per bar
RATES_DTYPE = [
    ("time", "<i8"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"), ("close", "<f8"),
    ("tick_volume", "<u8"), ("spread", "<i4"), ("real_volume", "<u8"),
]  # fmt: skip
MAX_COUNT = 100_000


@dataclass(frozen=True)
class BarClock:
    origin: float = 0.0  # real Unix seconds where the simulated and real timelines meet
    seconds_per_hour: float = 3600.0  # real seconds per simulated hour

    def sim(self, real: float) -> float:
        return self.origin + (real - self.origin) * 3600.0 / self.seconds_per_hour

    def real(self, sim: float) -> float:
        return self.origin + (sim - self.origin) * self.seconds_per_hour / 3600.0


def bar_clock(conn: sqlite3.Connection) -> BarClock:
    raw = store.get_meta(conn, "bar_clock")
    if not raw:
        return BarClock()
    data = json.loads(raw)
    return BarClock(float(data["origin"]), float(data["seconds_per_hour"]))


def _bid(spec: Spec, real: float, seed: int) -> float:
    return float(feed.quote_for(spec, real, seed)[0])


@lru_cache(maxsize=200_000)
def _closed_bar(
    spec: Spec, seed: int, clock: BarClock, tf: int, start: int
) -> tuple[float, float, float, float]:
    prices = [_bid(spec, clock.real(start + tf * k / SAMPLES), seed) for k in range(SAMPLES + 1)]
    return prices[0], max(prices), min(prices), prices[-1]


def _forming_bar(
    spec: Spec, seed: int, clock: BarClock, tf: int, start: int, now: float
) -> tuple[float, float, float, float]:
    times = [start + tf * k / SAMPLES for k in range(SAMPLES + 1)]
    prices = [_bid(spec, clock.real(t), seed) for t in times if t < now] + [_bid(spec, clock.real(now), seed)]
    return prices[0], max(prices), min(prices), prices[-1]


def _volume(spec: Spec, seed: int, start: int) -> int:
    digest = hashlib.blake2b(f"{seed}|{spec.name}|vol|{start}".encode(), digest_size=4).digest()
    return 200 + int.from_bytes(digest, "big") % 1800


def rates_from_pos(conn: sqlite3.Connection, spec: Spec, timeframe: int, start_pos: int, count: int) -> Any:
    """The bars at positions ``start_pos .. start_pos + count - 1`` back from the forming one
    (position 0), oldest first, as the numpy structured array the real package returns."""
    import numpy as np

    tf = TIMEFRAME_SECONDS[timeframe]
    clock = bar_clock(conn)
    seed = store.seed(conn)
    now = clock.sim(store.now_ms(conn) / 1000)
    always = spec.session == "crypto" or store.ignore_hours(conn)
    start = int(now // tf) * tf
    starts: list[int] = []
    skipped = 0
    while len(starts) < start_pos + count and skipped < 24 * 3600 * 7 // tf + 1:
        if always or market_open(spec.session, feed_time(start)):
            starts.append(start)
            skipped = 0
        else:
            skipped += 1
        start -= tf
    wanted = starts[start_pos : start_pos + count][::-1]
    out = np.zeros(len(wanted), dtype=RATES_DTYPE)
    for row, s in enumerate(wanted):
        if s + tf > now:
            o, h, lo, cl = _forming_bar(spec, seed, clock, tf, s, now)
        else:
            o, h, lo, cl = _closed_bar(spec, seed, clock, tf, s)
        out[row] = (s, o, h, lo, cl, _volume(spec, seed, s), spec.spread, 0)
    return out


def feed_time(seconds: int) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, tz=UTC)
