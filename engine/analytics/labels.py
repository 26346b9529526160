"""The texts drawn on an equity chart (``engine.analytics.charts``), apart from the chart code so
that passing them around does not load numpy and matplotlib."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChartLabels:
    """Every string drawn on the chart, in the reader's language."""

    title: str  # e.g. "Equity: account 3, last 30 days (UTC)"
    equity: str  # y axis of the curve when the scope has equity
    pnl: str  # y axis of the curve for a trade-based scope without capital (cumulative P&L)
    drawdown_pct: str  # y axis of the drawdown panel, in %
    drawdown_amount: str  # y axis of the drawdown panel without capital
    peak: str  # legend entry of the running peak
    no_data: str  # the message of an empty chart
