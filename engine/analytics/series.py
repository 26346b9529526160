"""Equity curves, drawdowns and daily returns: the definitions every metric and chart shares.

A ``Curve`` has, at each sample time ``t``:

* ``equity`` E(t): the scope's equity, the sum over its accounts of each one's latest recorded
  equity (an account counts from its first point on);
* ``capital`` F(t): the sum of those accounts' *first* equity, so that an account joining the
  scope is a flow of capital, not a gain;
* ``pnl`` C(t) = E(t) - F(t): profit and loss since the start, free of those flows.

For a single account, C(t) = E(t) - E(first), the textbook case. A trade-based scope (producer,
strategy, instrument) has no equity of its own: C(t) is the cumulative net P&L of its closed trades,
and E(t) = K + C(t) when a capital K is given (else only amounts are reported).

Drawdown at ``t``: ``DD(t) = max(C(s), s <= t) - C(t)`` (an amount, >= 0), and
``DD%(t) = DD(t) / (E(t) + DD(t))``: the fall from the flow-adjusted peak equity, which for a single
account is ``(peak equity - equity) / peak equity``.

Daily returns are per UTC calendar day, every day from the first sample to the end of the period,
weekends included (a day without new samples returns 0): with day-close values (the last sample
before midnight, carried forward), ``r_d = (C_d - C_{d-1}) / (E_{d-1} + F_d - F_{d-1})``, the day's
P&L over the equity it started with plus the capital that joined during it (the first day starts
from nothing, so ``r = C_d / F_d``). Without capital, the "return" is the day's P&L amount.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from engine.analytics.data import EquitySeries, Trade

ZERO = Decimal(0)


@dataclass(frozen=True)
class Curve:
    times: list[datetime]
    equity: list[Decimal]
    pnl: list[Decimal]
    capital: list[Decimal]
    has_capital: bool  # False: a trade-based curve without capital (amounts only, no %)

    def __len__(self) -> int:
        return len(self.times)


def _append(curve: Curve, t: datetime, e: Decimal, c: Decimal, f: Decimal) -> None:
    if curve.times and curve.times[-1] == t:  # several changes at one instant: keep the last state
        curve.equity[-1], curve.pnl[-1], curve.capital[-1] = e, c, f
        return
    curve.times.append(t)
    curve.equity.append(e)
    curve.pnl.append(c)
    curve.capital.append(f)


def equity_curve(series: EquitySeries, start: datetime | None = None) -> Curve:
    """Combine per-account equity points into one curve; points before ``start`` move to ``start``."""
    events = sorted(
        (
            (at, account_id, index, equity)
            for account_id, points in series.items()
            for index, (at, equity) in enumerate(points)
        ),
    )
    curve = Curve([], [], [], [], has_capital=True)
    latest: dict[int, Decimal] = {}
    total_e = ZERO
    total_f = ZERO
    for at, account_id, _, equity in events:
        previous = latest.get(account_id)
        if previous is None:
            total_f += equity
            total_e += equity
        else:
            total_e += equity - previous
        latest[account_id] = equity
        t = start if start is not None and at < start else at
        _append(curve, t, total_e, total_e - total_f, total_f)
    return curve


def pnl_curve(trades: Sequence[Trade], start: datetime | None, capital: Decimal | None = None) -> Curve:
    """Cumulative net P&L of closed trades, from zero at ``start`` (or the first trade's open)."""
    curve = Curve([], [], [], [], has_capital=capital is not None)
    if not trades:
        return curve
    base = capital if capital is not None else ZERO
    origin = start if start is not None else min(t.open_time for t in trades)
    _append(curve, origin, base, ZERO, base)
    cumulative = ZERO
    for trade in sorted(trades, key=lambda t: (t.close_time, t.position_id)):
        cumulative += trade.net
        _append(curve, max(trade.close_time, origin), base + cumulative, cumulative, base)
    return curve


def drawdown_series(curve: Curve) -> tuple[list[Decimal], list[Decimal | None]]:
    """DD(t) and DD%(t) at every sample (DD% is None without capital or with non-positive equity)."""
    amounts: list[Decimal] = []
    percents: list[Decimal | None] = []
    peak: Decimal | None = None
    for c, e in zip(curve.pnl, curve.equity, strict=True):
        peak = c if peak is None or c > peak else peak
        dd = peak - c
        amounts.append(dd)
        base = e + dd
        percents.append(dd / base if curve.has_capital and base > 0 else None)
    return amounts, percents


@dataclass(frozen=True)
class DrawdownStats:
    max_amount: Decimal
    max_pct: Decimal | None
    # The episode with the deepest amount: from its peak until equity is back at the peak, or
    # until the end of the period if it never is.
    max_duration: timedelta
    max_peak_at: datetime | None
    max_trough_at: datetime | None
    max_recovered_at: datetime | None
    longest: timedelta  # the longest time under water, any episode
    current_amount: Decimal
    current_pct: Decimal | None


def drawdown_stats(curve: Curve, end: datetime) -> DrawdownStats:
    """Summarise the drawdowns of ``curve``; an episode still open at the end lasts until ``end``."""
    amounts, percents = drawdown_series(curve)
    pcts = [p for p in percents if p is not None]
    max_pct = max(pcts, default=ZERO) if curve.has_capital and curve.times else None

    longest = timedelta(0)
    deepest = ZERO
    best_peak: datetime | None = None
    best_trough: datetime | None = None
    best_recovered: datetime | None = None
    best_is_current = False
    episode_start: datetime | None = None  # the peak the current episode fell from
    peak_at: datetime | None = None
    for t, dd in zip(curve.times, amounts, strict=True):
        if dd == 0:
            if episode_start is not None:
                longest = max(longest, t - episode_start)
                if best_is_current:
                    best_recovered = t
                episode_start = None
                best_is_current = False
            peak_at = t
            continue
        if episode_start is None:
            episode_start = peak_at if peak_at is not None else t
        if dd > deepest:
            deepest = dd
            best_peak, best_trough, best_recovered = episode_start, t, None
            best_is_current = True
    if episode_start is not None:
        longest = max(longest, end - episode_start)
    duration = timedelta(0)
    if best_peak is not None:
        duration = (best_recovered if best_recovered is not None else max(end, best_peak)) - best_peak
    return DrawdownStats(
        max_amount=deepest,
        max_pct=max_pct,
        max_duration=duration,
        max_peak_at=best_peak,
        max_trough_at=best_trough,
        max_recovered_at=best_recovered,
        longest=longest,
        current_amount=amounts[-1] if amounts else ZERO,
        current_pct=percents[-1] if percents else None,
    )


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def daily_closes(curve: Curve, end: datetime) -> list[tuple[date, Decimal, Decimal, Decimal]]:
    """(day, C, E, F) at each UTC day's close, from the first sample's day to the day of ``end``."""
    if not curve.times:
        return []
    first = curve.times[0].astimezone(UTC).date()
    last_instant = max(end - timedelta(microseconds=1), curve.times[-1])
    last = last_instant.astimezone(UTC).date()
    closes: list[tuple[date, Decimal, Decimal, Decimal]] = []
    i = 0
    n = len(curve)
    state = (curve.pnl[0], curve.equity[0], curve.capital[0])
    day = first
    while day <= last:
        boundary = _midnight(day + timedelta(days=1))
        while i < n and curve.times[i] < boundary:
            state = (curve.pnl[i], curve.equity[i], curve.capital[i])
            i += 1
        closes.append((day, *state))
        day += timedelta(days=1)
    return closes


def daily_returns(curve: Curve, end: datetime) -> list[Decimal]:
    """One return per UTC calendar day (see the module docstring); a P&L amount without capital."""
    returns: list[Decimal] = []
    prev_c = prev_e = prev_f = ZERO
    for _, c, e, f in daily_closes(curve, end):
        if curve.has_capital:
            base = prev_e + (f - prev_f)
            if base > 0:
                returns.append((c - prev_c) / base)
        else:
            returns.append(c - prev_c)
        prev_c, prev_e, prev_f = c, e, f
    return returns
