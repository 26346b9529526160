"""Performance metrics over closed trades and an equity curve.

Conventions (also in docs/analytics.md):

* Money (P&L, averages, drawdown amounts, equity) is ``Decimal``; so are fractions (win rate,
  returns, drawdown %, exposure), which are plain fractions: ``Decimal("0.05")`` is 5 %.
* A trade's result is its net: ``profit + commission + swap``. A win has net > 0, a loss net < 0;
  a trade at exactly 0 is neither (but counts in ``trades`` and in the win-rate denominator).
* Profit factor = gross profit / |gross loss|: ``None`` without trades or when both are 0,
  ``Decimal("Infinity")`` with profits and no losses. Expectancy = net profit / trades.
* Sharpe and Sortino are ``float`` (statistical estimates, not money), on the daily returns defined
  in ``engine.analytics.series``, risk-free rate 0, annualised with ``sqrt(365)``: returns are
  taken on every calendar day (the books trade 24/7 and weekends count as flat days), so the year
  has 365 of them. Sharpe = mean / sample standard deviation (n - 1); Sortino = mean / downside
  deviation, ``sqrt(sum(min(r, 0)^2) / n)`` (target 0). Both need two or more days and are
  ``None`` when the deviation is 0. For a trade-based scope without capital the daily "returns" are
  P&L amounts; both ratios are scale-free, so this equals a constant-capital convention.
* Exposure = the fraction of the period during which at least one position in scope was open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from engine.analytics.data import Exposure, ScopeData, Trade
from engine.analytics.series import (
    ZERO,
    Curve,
    daily_returns,
    drawdown_stats,
    equity_curve,
    pnl_curve,
)

CALENDAR_DAYS_PER_YEAR = 365
INFINITY = Decimal("Infinity")
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class PerformanceMetrics:
    start: datetime
    end: datetime
    equity_based: bool
    trades: int
    wins: int
    losses: int
    breakeven: int
    win_rate: Decimal | None
    gross_profit: Decimal
    gross_loss: Decimal  # <= 0
    net_profit: Decimal  # closed trades only
    commission: Decimal
    swap: Decimal
    average_win: Decimal | None
    average_loss: Decimal | None  # <= 0
    profit_factor: Decimal | None
    expectancy: Decimal | None
    best_trade: Trade | None
    worst_trade: Trade | None
    start_equity: Decimal | None
    end_equity: Decimal | None
    total_return: Decimal  # C at the end: P&L over the period (equity change net of capital flows)
    total_return_pct: Decimal | None  # total_return / capital
    max_drawdown: Decimal
    max_drawdown_pct: Decimal | None
    max_drawdown_duration: timedelta
    longest_drawdown: timedelta
    current_drawdown: Decimal
    current_drawdown_pct: Decimal | None
    sharpe: float | None
    sortino: float | None
    days: int  # daily returns used for Sharpe / Sortino
    exposure: Decimal | None  # None for a zero-length period

    @property
    def has_data(self) -> bool:
        return self.trades > 0 or self.start_equity is not None


def _sum(values: Sequence[Decimal]) -> Decimal:
    return sum(values, ZERO)


def sharpe_ratio(returns: Sequence[Decimal], periods_per_year: int = CALENDAR_DAYS_PER_YEAR) -> float | None:
    n = len(returns)
    if n < 2:
        return None
    mean = _sum(returns) / n
    variance = _sum([(r - mean) ** 2 for r in returns]) / (n - 1)
    if variance <= 0:
        return None
    return float(mean / variance.sqrt() * Decimal(periods_per_year).sqrt())


def sortino_ratio(returns: Sequence[Decimal], periods_per_year: int = CALENDAR_DAYS_PER_YEAR) -> float | None:
    n = len(returns)
    if n < 2:
        return None
    mean = _sum(returns) / n
    downside = _sum([r * r for r in returns if r < 0]) / n
    if downside <= 0:
        return None
    return float(mean / downside.sqrt() * Decimal(periods_per_year).sqrt())


def exposure_fraction(exposures: Sequence[Exposure], start: datetime, end: datetime) -> Decimal | None:
    """Fraction of ``[start, end)`` covered by the union of the positions' open intervals."""
    if end <= start:
        return None
    intervals = sorted(
        (max(e.opened, start), min(e.closed if e.closed is not None else end, end)) for e in exposures
    )
    covered = timedelta(0)
    cur_start: datetime | None = None
    cur_end: datetime | None = None
    for a, b in intervals:
        if b <= a:
            continue
        if cur_end is None or a > cur_end:
            if cur_start is not None and cur_end is not None:
                covered += cur_end - cur_start
            cur_start, cur_end = a, b
        elif b > cur_end:
            cur_end = b
    if cur_start is not None and cur_end is not None:
        covered += cur_end - cur_start
    return Decimal(covered // _MICROSECOND) / Decimal((end - start) // _MICROSECOND)


def effective_start(data: ScopeData, start: datetime | None, end: datetime) -> datetime:
    """``start``, or for an open-ended period the earliest recorded fact (``end`` if none)."""
    if start is not None:
        return start
    candidates = [t.open_time for t in data.trades]
    candidates += [e.opened for e in data.exposures]
    candidates += [points[0][0] for points in data.equity.values() if points]
    return min(candidates, default=end)


def build_curve(
    data: ScopeData, start: datetime, *, equity_based: bool, capital: Decimal | None = None
) -> Curve:
    if equity_based:
        return equity_curve(data.equity, start)
    return pnl_curve(data.trades, start, capital)


def compute_metrics(
    data: ScopeData,
    *,
    start: datetime | None,
    end: datetime,
    equity_based: bool,
    capital: Decimal | None = None,
    periods_per_year: int = CALENDAR_DAYS_PER_YEAR,
) -> PerformanceMetrics:
    """Every metric for one scope and period (``start`` None: from the first recorded fact)."""
    begin = effective_start(data, start, end)
    trades = list(data.trades)
    nets = [t.net for t in trades]
    win_nets = [n for n in nets if n > 0]
    loss_nets = [n for n in nets if n < 0]
    gross_profit = _sum(win_nets)
    gross_loss = _sum(loss_nets)
    net_profit = _sum(nets)
    if not trades or (gross_profit == 0 and gross_loss == 0):
        profit_factor: Decimal | None = None
    elif gross_loss == 0:
        profit_factor = INFINITY
    else:
        profit_factor = gross_profit / -gross_loss
    # Best / worst: the largest / smallest net, the earliest close on a tie.
    ordered = sorted(trades, key=lambda t: (t.close_time, t.position_id))
    best = max(ordered, key=lambda t: t.net, default=None)
    worst = min(ordered, key=lambda t: t.net, default=None)

    curve = build_curve(data, begin, equity_based=equity_based, capital=capital)
    dd = drawdown_stats(curve, end)
    returns = daily_returns(curve, end)
    has_equity = curve.has_capital and len(curve) > 0
    total_return = curve.pnl[-1] if len(curve) else ZERO
    capital_end = curve.capital[-1] if has_equity else ZERO
    return PerformanceMetrics(
        start=begin,
        end=end,
        equity_based=equity_based,
        trades=len(trades),
        wins=len(win_nets),
        losses=len(loss_nets),
        breakeven=len(trades) - len(win_nets) - len(loss_nets),
        win_rate=Decimal(len(win_nets)) / len(trades) if trades else None,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        net_profit=net_profit,
        commission=_sum([t.commission for t in trades]),
        swap=_sum([t.swap for t in trades]),
        average_win=gross_profit / len(win_nets) if win_nets else None,
        average_loss=gross_loss / len(loss_nets) if loss_nets else None,
        profit_factor=profit_factor,
        expectancy=net_profit / len(trades) if trades else None,
        best_trade=best,
        worst_trade=worst,
        start_equity=curve.equity[0] if has_equity else None,
        end_equity=curve.equity[-1] if has_equity else None,
        total_return=total_return,
        total_return_pct=total_return / capital_end if capital_end > 0 else None,
        max_drawdown=dd.max_amount,
        max_drawdown_pct=dd.max_pct,
        max_drawdown_duration=dd.max_duration,
        longest_drawdown=dd.longest,
        current_drawdown=dd.current_amount,
        current_drawdown_pct=dd.current_pct,
        sharpe=sharpe_ratio(returns, periods_per_year),
        sortino=sortino_ratio(returns, periods_per_year),
        days=len(returns),
        exposure=exposure_fraction(data.exposures, begin, end),
    )
