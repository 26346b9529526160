"""Analytics: performance metrics, equity and drawdown charts, CSV exports, daily summaries.

Conventions (annualisation, drawdown, CSV columns) are in ``docs/analytics.md``.
"""

from engine.analytics.data import ChartLabels, Exposure, Scope, ScopeData, Trade
from engine.analytics.export import COLUMNS, ExportFile, parse_trades_csv, trades_to_csv
from engine.analytics.metrics import PerformanceMetrics, compute_metrics
from engine.analytics.period import Period, PeriodError, PeriodErrorCode, PeriodKind, day_period, parse_period
from engine.analytics.service import AnalyticsService, render_chart
from engine.analytics.summary import DailyReport, DaySummary, SubscriberDaySummary

__all__ = [
    "COLUMNS",
    "AnalyticsService",
    "ChartLabels",
    "DailyReport",
    "DaySummary",
    "ExportFile",
    "Exposure",
    "PerformanceMetrics",
    "Period",
    "PeriodError",
    "PeriodErrorCode",
    "PeriodKind",
    "Scope",
    "ScopeData",
    "SubscriberDaySummary",
    "Trade",
    "compute_metrics",
    "day_period",
    "parse_period",
    "parse_trades_csv",
    "render_chart",
    "trades_to_csv",
]
