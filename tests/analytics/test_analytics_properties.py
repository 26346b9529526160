"""Metrics against an independent pandas / numpy computation on generated histories."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal as D

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.analytics.data import Exposure
from engine.analytics.metrics import compute_metrics, exposure_fraction
from tests.support.analytics import T0, data, trade

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
cents = st.integers(min_value=10_000, max_value=10_000_000).map(lambda c: D(c) / 100)


@st.composite
def equity_history(draw):
    """An opening point before the period, then points at increasing minutes inside it."""
    n = draw(st.integers(min_value=1, max_value=40))
    gaps = draw(st.lists(st.integers(min_value=1, max_value=3 * 24 * 60), min_size=n, max_size=n))
    values = draw(st.lists(cents, min_size=n + 1, max_size=n + 1))
    times = [T0 - timedelta(hours=3)]
    minute = 0
    for gap in gaps:
        minute += gap
        times.append(T0 + timedelta(minutes=minute))
    tail = draw(st.integers(min_value=1, max_value=5 * 24 * 60))
    end = times[-1] + timedelta(minutes=tail)
    return list(zip(times, values, strict=True)), end


def pandas_reference(points, start, end):
    times = [max(t, start) for t, _ in points]
    s = pd.Series([float(v) for _, v in points], index=pd.DatetimeIndex(times))
    s = s.groupby(level=0).last()
    pnl = s - s.iloc[0]
    dd = pnl.cummax() - pnl
    ddpct = dd / (s + dd)
    days = pd.date_range(s.index[0].normalize(), (end - timedelta(microseconds=1)), freq="D", tz="UTC")
    daily = s.resample("D").last().reindex(days).ffill()
    prev = daily.shift(1)
    prev.iloc[0] = s.iloc[0]
    returns = (daily - prev) / prev
    return s, dd, ddpct, returns


@SETTINGS
@given(equity_history())
def test_equity_metrics_match_pandas(history):
    points, end = history
    m = compute_metrics(data(equity={7: points}), start=T0, end=end, equity_based=True)
    s, dd, ddpct, returns = pandas_reference(points, T0, end)
    assert float(m.start_equity) == s.iloc[0] and float(m.end_equity) == s.iloc[-1]
    assert float(m.total_return) == pytest.approx(s.iloc[-1] - s.iloc[0], abs=1e-6)
    assert float(m.total_return_pct) == pytest.approx(s.iloc[-1] / s.iloc[0] - 1, rel=1e-9, abs=1e-12)
    assert float(m.max_drawdown) == pytest.approx(dd.max(), abs=1e-6)
    assert float(m.max_drawdown_pct) == pytest.approx(ddpct.max(), rel=1e-9, abs=1e-12)
    assert m.days == len(returns)
    r = returns.to_numpy()
    std = r.std(ddof=1) if len(r) > 1 else 0.0
    if m.sharpe is None:
        assert len(r) < 2 or std < 1e-12
    else:
        assert std > 0
        assert m.sharpe == pytest.approx(r.mean() / std * math.sqrt(365), rel=1e-6, abs=1e-9)
    downside = math.sqrt(np.mean(np.minimum(r, 0) ** 2)) if len(r) else 0.0
    if m.sortino is None:
        assert len(r) < 2 or downside == 0
    else:
        assert m.sortino == pytest.approx(r.mean() / downside * math.sqrt(365), rel=1e-6, abs=1e-9)


money = st.decimals(min_value=-5000, max_value=5000, places=2, allow_nan=False, allow_infinity=False)


@SETTINGS
@given(st.lists(st.tuples(money, money, money, st.integers(0, 60 * 24 * 20)), min_size=1, max_size=40))
def test_trade_statistics_match_pandas(rows):
    trades = [
        trade(
            str(p),
            str(c),
            str(s),
            opened=T0 + timedelta(minutes=m),
            closed=T0 + timedelta(minutes=m + 30),
            position_id=i,
        )
        for i, (p, c, s, m) in enumerate(rows)
    ]
    end = T0 + timedelta(days=21)
    m = compute_metrics(data(trades), start=T0, end=end, equity_based=False)
    df = pd.DataFrame(
        {
            "profit": [p for p, _, _, _ in rows],
            "commission": [c for _, c, _, _ in rows],
            "swap": [s for _, _, s, _ in rows],
        }
    )
    net = df.profit + df.commission + df.swap  # Decimal objects: exact
    wins, losses = net[net > 0], net[net < 0]
    assert m.trades == len(df) and m.wins == len(wins) and m.losses == len(losses)
    assert m.net_profit == net.sum()
    assert m.gross_profit == (wins.sum() if len(wins) else 0)
    assert m.gross_loss == (losses.sum() if len(losses) else 0)
    assert m.win_rate == D(len(wins)) / len(df)
    assert m.expectancy == net.sum() / len(df)
    if len(wins):
        assert m.average_win == wins.sum() / len(wins)
    if len(losses):
        assert m.average_loss == losses.sum() / len(losses)
        assert m.profit_factor == (wins.sum() if len(wins) else 0) / -losses.sum()
    assert m.best_trade.net == net.max() and m.worst_trade.net == net.min()
    # The cumulative P&L curve from zero, one step per close time (simultaneous closes are one step).
    per_close = (
        pd.Series([float(n) for n in net], index=[t.close_time for t in trades]).groupby(level=0).sum()
    )
    cum = np.concatenate([[0.0], np.cumsum(per_close.sort_index().to_numpy())])
    assert float(m.max_drawdown) == pytest.approx(float(np.max(np.maximum.accumulate(cum) - cum)), abs=1e-6)


@SETTINGS
@given(
    st.lists(
        st.tuples(st.integers(-600, 3000), st.one_of(st.none(), st.integers(1, 900))),
        max_size=15,
    )
)
def test_exposure_matches_a_minute_grid(spans):
    start, minutes = T0, 2400
    end = start + timedelta(minutes=minutes)
    exposures = [
        Exposure(
            1, start + timedelta(minutes=a), None if length is None else start + timedelta(minutes=a + length)
        )
        for a, length in spans
    ]
    grid = np.zeros(minutes, dtype=bool)
    for a, length in spans:
        b = minutes if length is None else a + length
        grid[max(a, 0) : max(min(b, minutes), 0)] = True
    assert exposure_fraction(exposures, start, end) == D(int(grid.sum())) / D(minutes)
