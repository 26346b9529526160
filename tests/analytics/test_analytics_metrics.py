"""Metrics against small histories computed by hand (see the comments for the arithmetic)."""

from __future__ import annotations

import math
import statistics
from datetime import timedelta
from decimal import Decimal as D

import pytest

from engine.analytics.data import Exposure
from engine.analytics.metrics import (
    INFINITY,
    compute_metrics,
    exposure_fraction,
    sharpe_ratio,
    sortino_ratio,
)
from engine.analytics.series import daily_returns, drawdown_series, equity_curve, pnl_curve
from tests.support.analytics import END, EQUITY, EXPOSURES, START, TRADES, at, data, trade


def test_equity_curve_and_drawdown_series():
    curve = equity_curve(EQUITY, START)
    assert curve.times[0] == START
    assert curve.equity == [D(v) for v in ("1000", "1100", "990", "1045", "1210", "1150")]
    assert curve.pnl == [D(v) for v in ("0", "100", "-10", "45", "210", "150")]
    amounts, percents = drawdown_series(curve)
    # Peaks of C: 0, 100, 100, 100, 210, 210.
    assert amounts == [D(v) for v in ("0", "0", "110", "55", "0", "60")]
    assert percents == [D(0), D(0), D("0.1"), D("0.05"), D(0), D(60) / D(1210)]


def test_daily_returns_are_per_calendar_day():
    returns = daily_returns(equity_curve(EQUITY, START), END)
    # Day closes 990, 1045, 1210, 1150 from an opening of 1000.
    assert returns == [D(-10) / D(1000), D(55) / D(990), D(165) / D(1045), D(-60) / D(1210)]


def test_account_metrics_by_hand():
    m = compute_metrics(data(TRADES, EXPOSURES, EQUITY), start=START, end=END, equity_based=True)
    assert (m.trades, m.wins, m.losses, m.breakeven) == (4, 2, 1, 1)
    assert m.win_rate == D("0.5")
    assert m.gross_profit == D("196.5") and m.gross_loss == D("-53")
    assert m.net_profit == D("143.5")
    assert m.commission == D("-8") and m.swap == D("-0.5")
    assert m.average_win == D("98.25") and m.average_loss == D("-53")
    assert m.profit_factor == D("196.5") / D("53")
    assert m.expectancy == D("35.875")
    assert m.best_trade is TRADES[0] and m.worst_trade is TRADES[1]
    assert (m.start_equity, m.end_equity) == (D(1000), D(1150))
    assert m.total_return == D(150) and m.total_return_pct == D("0.15")
    assert m.max_drawdown == D(110) and m.max_drawdown_pct == D("0.1")
    # The deepest episode: peak 1 Mar 10:00, back at the peak 3 Mar 09:00.
    assert m.max_drawdown_duration == timedelta(hours=47)
    assert m.longest_drawdown == timedelta(hours=47)  # the open one (3 Mar 09:00 to the end) lasts 39 h
    assert m.current_drawdown == D(60) and m.current_drawdown_pct == D(60) / D(1210)
    # Exposure: 06:00-24:00 on 1 Mar (two overlapping), 00:00-02:00 (opened before the period),
    # 00:00-06:00 on 3 Mar, and 18:00-24:00 on 4 Mar (still open): 32 h of 96.
    assert m.exposure == D(32) / D(96)
    rets = [-10 / 1000, 55 / 990, 165 / 1045, -60 / 1210]
    assert m.days == 4
    assert m.sharpe == pytest.approx(
        statistics.mean(rets) / statistics.stdev(rets) * math.sqrt(365), rel=1e-12
    )
    downside = math.sqrt(sum(min(r, 0) ** 2 for r in rets) / 4)
    assert m.sortino == pytest.approx(statistics.mean(rets) / downside * math.sqrt(365), rel=1e-12)


def test_trade_based_scope_uses_cumulative_pnl():
    m = compute_metrics(data(TRADES, EXPOSURES), start=START, end=END, equity_based=False)
    # Cumulative net at the closes (1 Mar 02:00, 18:00; 2 Mar 00:00; 3 Mar 06:00): 0, 118, 65, 143.5.
    assert m.total_return == D("143.5") == m.net_profit
    assert m.max_drawdown == D(53)
    assert m.max_drawdown_pct is None and m.total_return_pct is None
    assert m.start_equity is None and m.end_equity is None
    # Without capital, daily "returns" are P&L amounts: 118, -53, 78.5, 0.
    amounts = [118, -53, 78.5, 0]
    assert m.sharpe == pytest.approx(
        statistics.mean(amounts) / statistics.stdev(amounts) * math.sqrt(365), rel=1e-12
    )


def test_trade_based_scope_with_capital():
    m = compute_metrics(data(TRADES), start=START, end=END, equity_based=False, capital=D(1000))
    assert m.total_return_pct == D("0.1435")
    assert m.max_drawdown_pct == D(53) / D(1118)
    assert (m.start_equity, m.end_equity) == (D(1000), D("1143.5"))


def test_an_account_joining_is_capital_not_profit():
    equity = {
        1: [(at(1), D(1000)), (at(1, 12), D(900)), (at(2, 12), D(950))],
        2: [(at(2, 6), D(500)), (at(2, 18), D(550))],
    }
    curve = equity_curve(equity, at(1))
    assert curve.equity == [D(1000), D(900), D(1400), D(1450), D(1500)]
    assert curve.pnl == [D(0), D(-100), D(-100), D(-50), D(0)]
    m = compute_metrics(data(equity=equity), start=at(1), end=at(3), equity_based=True)
    assert m.total_return == 0 and m.total_return_pct == 0
    assert m.max_drawdown == D(100) and m.max_drawdown_pct == D("0.1")
    assert m.max_drawdown_duration == timedelta(hours=42)  # from the 1 Mar 00:00 peak to 2 Mar 18:00
    # Day 1: -100 on 1000. Day 2: +100 on 900 carried over plus 500 joining.
    assert daily_returns(curve, at(3)) == [D("-0.1"), D(100) / D(1400)]


def test_max_drawdown_duration_counts_from_the_peak():
    equity = {1: [(at(1), D(100)), (at(1, 6), D(90)), (at(2), D(100)), (at(2, 1), D(95))]}
    m = compute_metrics(data(equity=equity), start=at(1), end=at(2, 3), equity_based=True)
    assert m.max_drawdown == D(10)
    assert m.max_drawdown_duration == timedelta(hours=24)  # peak at 1 Mar 00:00, back at 2 Mar 00:00
    assert m.longest_drawdown == timedelta(hours=24)
    assert m.current_drawdown == D(5) and m.current_drawdown_pct == D("0.05")


def test_empty_history():
    m = compute_metrics(data(), start=START, end=END, equity_based=True)
    assert not m.has_data
    assert m.trades == 0 and m.win_rate is None and m.profit_factor is None and m.expectancy is None
    assert m.best_trade is None and m.average_win is None and m.average_loss is None
    assert m.max_drawdown == 0 and m.max_drawdown_pct is None
    assert m.sharpe is None and m.sortino is None and m.days == 0
    assert m.exposure == 0


def test_open_ended_period_starts_at_the_first_fact():
    trades = [trade("10", opened=at(2, 6), closed=at(2, 8))]
    m = compute_metrics(
        data(trades, [Exposure(1, at(2, 6), at(2, 8))]), start=None, end=at(2, 10), equity_based=False
    )
    assert m.start == at(2, 6)
    assert m.exposure == D("0.5")
    assert compute_metrics(data(), start=None, end=END, equity_based=True).start == END


def test_one_trade():
    m = compute_metrics(data([trade("25", "-1")]), start=START, end=END, equity_based=False)
    assert m.trades == 1 and m.win_rate == 1
    assert m.profit_factor == INFINITY
    assert m.sharpe is None or isinstance(m.sharpe, float)
    assert m.max_drawdown == 0


def test_profit_factor_edges():
    assert compute_metrics(data([trade("0")]), start=START, end=END, equity_based=False).profit_factor is None
    assert compute_metrics(data([trade("-5")]), start=START, end=END, equity_based=False).profit_factor == 0


def test_ratio_edges():
    assert sharpe_ratio([D("0.01")]) is None  # one day
    assert sharpe_ratio([D("0.01"), D("0.01"), D("0.01")]) is None  # no deviation
    assert sortino_ratio([D("0.01"), D("0.02")]) is None  # no losing day
    assert sharpe_ratio([D("0.01"), D("0.03")], periods_per_year=252) == pytest.approx(
        0.02 / statistics.stdev([0.01, 0.03]) * math.sqrt(252)
    )


def test_exposure_merges_and_clips():
    s, e = at(1), at(2)
    intervals = [
        Exposure(1, at(0, 20), at(1, 2)),  # clipped to 00:00-02:00
        Exposure(1, at(1, 1), at(1, 3)),  # overlaps: union 00:00-03:00
        Exposure(2, at(1, 12), None),  # open: 12:00-24:00
        Exposure(1, at(1, 23), at(2, 5)),  # inside the open one, then past the end
        Exposure(1, at(2, 1), at(2, 2)),  # after the end
    ]
    assert exposure_fraction(intervals, s, e) == D(15) / D(24)
    assert exposure_fraction(intervals, s, s) is None


def test_pnl_curve_orders_by_close_time_and_coalesces():
    a = trade("10", closed=at(1, 5), position_id=2)
    b = trade("-4", closed=at(1, 5), position_id=1)
    c = trade("1", closed=at(1, 2), position_id=3)
    curve = pnl_curve([a, b, c], at(1))
    assert curve.times == [at(1), at(1, 2), at(1, 5)]
    assert curve.pnl == [D(0), D(1), D(7)]
