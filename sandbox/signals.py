"""The demo strategy: realistic signals from the simulated price feed.

The feed (``mt5sim.feed``) is a pure function of time, so the strategy can read the past as well
as the present: it measures the trend over the last hour (15-minute bars) and the typical
15-minute range (an ATR), then proposes a trade with the trend most of the time. The stop sits a
few ATRs away (never closer than a few times the larger of the symbol's stops level and
``MIN_STOP_POINTS``, plus the spread), and the target at a reward:risk comfortably above
``MIN_RR`` (so the price can drift for a minute or two before someone approves without the order
falling under the minimum). About one signal in four is a limit order a little away from the
market, resting until the price comes back to it. Most signals take profit in parts, as signal
channels do: two or three ``targets`` (the first at 1R), the stop moving to entry after the first
(``breakeven_after: 1``); one in five has a single ``tp``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from mt5sim import feed
from mt5sim.specs import DEFAULT_SPECS, Spec

BAR_SECONDS = 900  # 15-minute bars
ATR_BARS = 12
TREND_BARS = 4
STOP_ATRS = Decimal(4)
LIMIT_SHARE = 0.25
LIMIT_OFFSET_ATRS = Decimal("1.5")
SINGLE_TARGET_SHARE = 0.2  # one ``tp``; the rest have targets at 1R and the final R:R ...
TWO_TARGET_SHARE = 0.4  # ... two of them (50/50), or three (50/30/20, the middle one halfway)

SETUPS = {
    ("market", True): (
        "trend-follow",
        "Pullback over in an up-trend; momentum resumes on the 15-minute chart",
    ),
    ("market", False): ("trend-follow", "Lower highs on the 15-minute chart; selling the bounce"),
    ("limit", True): ("mean-revert", "Buying the dip into the 15-minute support zone"),
    ("limit", False): ("mean-revert", "Selling the rally into the 15-minute resistance zone"),
}
COUNTER = ("breakout", "Range breakout against the hourly trend")


@dataclass(frozen=True)
class Market:
    """What the strategy reads for one symbol at one moment."""

    spec: Spec
    bid: Decimal
    ask: Decimal
    atr: Decimal  # mean absolute 15-minute move of the mid price
    trend: Decimal  # mid now minus mid an hour ago

    @property
    def spread(self) -> Decimal:
        return self.ask - self.bid


def tradable(instruments: list[str]) -> list[str]:
    """The configured instruments the simulated feed can price."""
    return [name for name in instruments if name.upper() in DEFAULT_SPECS]


def read_market(symbol: str, now: datetime, seed: int | None = None) -> Market:
    spec = DEFAULT_SPECS[symbol.upper()]

    def mid(at: datetime) -> Decimal:
        bid, ask = feed.quote(spec.name, at, seed)
        return (bid + ask) / 2

    mids = [mid(now - timedelta(seconds=BAR_SECONDS * k)) for k in range(ATR_BARS + 1)]
    moves = [abs(mids[k] - mids[k + 1]) for k in range(ATR_BARS)]
    bid, ask = feed.quote(spec.name, now, seed)
    return Market(spec, bid, ask, sum(moves, Decimal(0)) / ATR_BARS, mids[0] - mids[TREND_BARS])


def _on_grid(price: Decimal, spec: Spec, rounding: str) -> Decimal:
    ticks = (price / spec.tick_size).to_integral_value(rounding=rounding)
    return (ticks * spec.tick_size).quantize(spec.point)


def stop_distance(market: Market, min_stop_points: int) -> Decimal:
    spec = market.spec
    floor_points = 3 * max(spec.stops_level, min_stop_points, 1)
    floor = floor_points * spec.point + 2 * market.spread
    return max(STOP_ATRS * market.atr, floor)


def propose(
    market: Market,
    rng: random.Random,
    *,
    min_rr: Decimal,
    min_stop_points: int,
    number: int,
) -> dict[str, Any]:
    """One signal body for the webhook (docs/webhook.md), prices as decimal strings."""
    spec = market.spec
    with_trend = rng.random() < 0.8
    buy = (market.trend >= 0) == with_trend
    order_type = "limit" if rng.random() < LIMIT_SHARE else "market"
    rr = max(min_rr + Decimal("0.5"), Decimal(2)) + Decimal(rng.randint(0, 10)) / 10
    stop = stop_distance(market, min_stop_points)
    down, up = ROUND_FLOOR, ROUND_CEILING
    if order_type == "market":
        entry = market.ask if buy else market.bid
        sl = _on_grid((market.bid - stop) if buy else (market.ask + stop), spec, down if buy else up)
    else:
        offset = LIMIT_OFFSET_ATRS * market.atr + 3 * max(spec.stops_level, 1) * spec.point
        entry = _on_grid((market.ask - offset) if buy else (market.bid + offset), spec, ROUND_HALF_UP)
        sl = _on_grid((entry - stop) if buy else (entry + stop), spec, down if buy else up)
    risk = abs(entry - sl)

    def level(multiple: Decimal) -> Decimal:
        return _on_grid(
            (entry + multiple * risk) if buy else (entry - multiple * risk), spec, up if buy else down
        )

    strategy, note = SETUPS[(order_type, buy)] if with_trend or order_type == "limit" else COUNTER
    body: dict[str, Any] = {
        "id": f"demo-{number:05d}",
        "instrument": spec.name,
        "side": "buy" if buy else "sell",
        "order_type": order_type,
        "entry": str(entry),
        "sl": str(sl),
    }
    shape = rng.random()
    if shape < SINGLE_TARGET_SHARE:
        body["tp"] = str(level(rr))
    else:  # the usual FX/gold channel shape: partial profits, then the stop to entry after TP1
        multiples, percents = (
            ((Decimal(1), rr), (50, 50)) if shape < SINGLE_TARGET_SHARE + TWO_TARGET_SHARE else
            ((Decimal(1), (1 + rr) / 2, rr), (50, 30, 20))
        )  # fmt: skip
        body["targets"] = [
            {"price": str(level(m)), "close_percent": p} for m, p in zip(multiples, percents, strict=True)
        ]
        body["breakeven_after"] = 1
    body.update(strategy=strategy, confidence=float(Decimal(rng.randint(55, 90)) / 100), note=note)
    return body


def final_target(body: dict[str, Any]) -> Decimal:
    """A proposal's furthest take profit (its ``tp``, or its last target)."""
    if "targets" in body:
        return Decimal(body["targets"][-1]["price"])
    return Decimal(body["tp"])
