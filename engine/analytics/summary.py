"""The daily summary: one UTC day's trades, P&L and drawdown, for ops and for each subscriber.

The engine computes data objects; the bot renders and sends them (``bot.render_stats``), and the
composition root schedules the run (shortly after midnight UTC, for the day that just ended).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from engine.analytics.data import ScopeData, Trade
from engine.analytics.metrics import compute_metrics
from engine.store.models import User


@dataclass(frozen=True)
class DaySummary:
    day: date
    trades: int
    wins: int
    losses: int
    net_pnl: Decimal  # closed trades, net of costs
    best_trade: Trade | None
    worst_trade: Trade | None
    start_equity: Decimal | None  # the opening equity (the last point before the day)
    end_equity: Decimal | None
    change: Decimal  # equity change over the day, capital flows excluded (includes floating P&L)
    change_pct: Decimal | None
    max_drawdown: Decimal  # the deepest fall from a peak within the day
    max_drawdown_pct: Decimal | None
    end_drawdown_pct: Decimal | None  # still under the day's peak at the close, as a fraction
    open_positions: int  # open at the end of the day

    @property
    def active(self) -> bool:
        return self.trades > 0 or self.open_positions > 0 or self.change != 0


@dataclass(frozen=True)
class SubscriberDaySummary:
    user_id: int
    telegram_id: int
    language: str
    notifications: bool  # the subscriber's setting; the bot decides whether to send
    account_ids: tuple[int, ...]
    summary: DaySummary


@dataclass(frozen=True)
class DailyReport:
    day: date
    total: DaySummary  # every account, the operator's included
    subscribers: list[SubscriberDaySummary]  # owners with activity that day, by user id


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def summarise_day(data: ScopeData, day: date, end: datetime | None = None) -> DaySummary:
    """The summary of ``data`` (loaded for the day, opening equity included) up to ``end``."""
    start, natural_end = day_bounds(day)
    stop = min(end, natural_end) if end is not None else natural_end
    m = compute_metrics(data, start=start, end=stop, equity_based=True)
    still_open = sum(1 for e in data.exposures if e.opened < stop and (e.closed is None or e.closed >= stop))
    return DaySummary(
        day=day,
        trades=m.trades,
        wins=m.wins,
        losses=m.losses,
        net_pnl=m.net_profit,
        best_trade=m.best_trade,
        worst_trade=m.worst_trade,
        start_equity=m.start_equity,
        end_equity=m.end_equity,
        change=m.total_return,
        change_pct=m.total_return_pct,
        max_drawdown=m.max_drawdown,
        max_drawdown_pct=m.max_drawdown_pct,
        end_drawdown_pct=m.current_drawdown_pct,
        open_positions=still_open,
    )


def restrict(data: ScopeData, accounts: set[int]) -> ScopeData:
    return ScopeData(
        trades=[t for t in data.trades if t.account_id in accounts],
        exposures=[e for e in data.exposures if e.account_id in accounts],
        equity={a: points for a, points in data.equity.items() if a in accounts},
    )


def build_daily_report(
    data: ScopeData, owners: Mapping[int, User | None], day: date, end: datetime | None = None
) -> DailyReport:
    """Split everything loaded for ``day`` by account owner and summarise each part."""
    by_owner: dict[int, set[int]] = defaultdict(set)
    users: dict[int, User] = {}
    for account_id, user in owners.items():
        if user is not None:
            by_owner[user.id].add(account_id)
            users[user.id] = user
    subscribers: list[SubscriberDaySummary] = []
    for user_id in sorted(by_owner):
        accounts = by_owner[user_id]
        summary = summarise_day(restrict(data, accounts), day, end)
        if not summary.active:
            continue
        user = users[user_id]
        subscribers.append(
            SubscriberDaySummary(
                user_id=user_id,
                telegram_id=user.telegram_id,
                language=user.language,
                notifications=user.notifications,
                account_ids=tuple(sorted(accounts)),
                summary=summary,
            )
        )
    return DailyReport(day=day, total=summarise_day(data, day, end), subscribers=subscribers)
