"""The value types analytics works on, independent of the ORM.

``Trade`` is one closed position with what it came from (signal, strategy, producer);
``ScopeData`` is everything the metrics, the chart and the export need for one scope and period.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True)
class Scope:
    """What to report on. Every field that is set narrows it (AND); none set is everything.

    Scopes narrowed only by ``account_id`` / ``user_id`` (or not at all) are *equity based*: their
    curve is the accounts' recorded equity. A scope narrowed by producer, strategy or instrument is
    *trade based*: those trades share their accounts with others, so its curve is the cumulative
    net P&L of its own closed trades.
    """

    account_id: int | None = None
    user_id: int | None = None  # users.id (the owner of execution accounts), not the Telegram id
    producer_id: str | None = None
    strategy: str | None = None
    instrument: str | None = None  # signal instrument; for trades without a signal, the symbol

    @property
    def equity_based(self) -> bool:
        return self.producer_id is None and self.strategy is None and self.instrument is None

    def slug(self) -> str:
        """A short file-name-safe description, e.g. ``account-3`` or ``all``."""
        parts = [
            f"{name}-{value}"
            for name, value in (
                ("account", self.account_id),
                ("user", self.user_id),
                ("producer", self.producer_id),
                ("strategy", self.strategy),
                ("instrument", self.instrument),
            )
            if value is not None
        ]
        text = "_".join(parts) or "all"
        return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)[:80]


@dataclass(frozen=True)
class Trade:
    """A closed position. ``net = profit + commission + swap`` (costs are negative, as brokers report)."""

    position_id: int
    account_id: int
    symbol: str
    side: str
    volume: Decimal
    open_time: datetime
    open_price: Decimal
    close_time: datetime
    close_price: Decimal | None
    profit: Decimal
    commission: Decimal
    swap: Decimal
    close_reason: str | None = None
    signal_id: str | None = None
    strategy: str | None = None

    @property
    def net(self) -> Decimal:
        return self.profit + self.commission + self.swap


@dataclass(frozen=True)
class Exposure:
    """When a position was open: ``closed`` is None while it still is."""

    account_id: int
    opened: datetime
    closed: datetime | None


EquitySeries = Mapping[int, Sequence[tuple[datetime, Decimal]]]  # account id -> [(at, equity)] by time


@dataclass(frozen=True)
class ScopeData:
    """Loaded data for one scope and period.

    ``equity`` holds, per account, the points inside the period preceded by the last point before
    it (the opening equity), so the period's first return is measured from where it started.
    """

    trades: Sequence[Trade]
    exposures: Sequence[Exposure]
    equity: EquitySeries = field(default_factory=dict)


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
