"""Localized text for /stats, /export, the equity chart and the daily summaries.

Pure functions: data from ``engine.analytics`` in, Telegram HTML out. Each takes the ``I18n``
(aiogram's, as the i18n middleware provides it) and an explicit ``locale``, so a handler (or the
daily job, which has no update context) renders in any language without touching context
variables. Strings live in ``locales/<lang>/LC_MESSAGES/analytics.po``; numbers and dates are
formatted for the locale by Babel; every value that comes from users or producers is escaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html import escape

from aiogram.utils.i18n import I18n
from babel.dates import format_date, format_skeleton, format_timedelta
from babel.numbers import format_decimal, format_percent

from bot import formatting
from engine.analytics.data import ChartLabels, Scope, Trade
from engine.analytics.metrics import PerformanceMetrics
from engine.analytics.period import MAX_DAYS, MAX_WEEKS, Period, PeriodError, PeriodErrorCode, PeriodKind
from engine.analytics.summary import DailyReport, DaySummary

DASH = "—"
OPS_SUBSCRIBER_LINES = 10


@dataclass(frozen=True)
class _Lang:
    i18n: I18n
    locale: str
    currency: str = ""  # every amount is shown with it when known

    def _(self, message: str) -> str:
        return self.i18n.gettext(message, locale=self.locale)

    def _n(self, singular: str, plural: str, n: int) -> str:
        return self.i18n.gettext(singular, plural, n, locale=self.locale)

    def money(self, value: Decimal | None, *, signed: bool = False) -> str:
        return formatting.money(value, self.currency, self.locale, signed=signed)

    def pct(self, fraction: Decimal | None, *, signed: bool = False) -> str:
        if fraction is None:
            return DASH
        pattern = "+#,##0.00%;-#,##0.00%" if signed else "#,##0.00%"
        return format_percent(fraction, format=pattern, locale=self.locale)

    def ratio(self, value: Decimal | float | None) -> str:
        if value is None:
            return DASH
        if isinstance(value, Decimal) and value.is_infinite():
            return "∞"
        return format_decimal(Decimal(str(value)), format="#,##0.00", locale=self.locale)

    def duration(self, value: timedelta) -> str:
        if value <= timedelta(0):
            return DASH
        return format_timedelta(value, granularity="minute", locale=self.locale)

    def day(self, value: datetime) -> str:
        return format_date(value.astimezone(UTC).date(), format="medium", locale=self.locale)


def describe_scope(
    scope: Scope,
    *,
    i18n: I18n,
    locale: str,
    producer_name: str | None = None,
    account_label: str | None = None,
    user_label: str | None = None,
) -> str:
    """Plain text (not escaped) naming a scope, e.g. "Account 3, EURUSD".

    A user scope reads "My accounts" (the subscriber's own /stats) unless ``user_label`` says
    otherwise (an admin looking at someone else's).
    """
    t = _Lang(i18n, locale)
    _ = t._
    parts: list[str] = []
    if scope.account_id is not None:
        parts.append(account_label or _("Account {id}").format(id=scope.account_id))
    if scope.user_id is not None:
        parts.append(user_label or _("My accounts"))
    if scope.producer_id is not None:
        parts.append(_("Producer {name}").format(name=producer_name or scope.producer_id))
    if scope.strategy is not None:
        parts.append(_("Strategy {name}").format(name=scope.strategy))
    if scope.instrument is not None:
        parts.append(scope.instrument.upper())
    return ", ".join(parts) if parts else _("All accounts")


def describe_period(period: Period, *, i18n: I18n, locale: str) -> str:
    """Plain text naming a period, e.g. "last 30 days" or "October 2026"."""
    t = _Lang(i18n, locale)
    _, _n = t._, t._n
    n = period.count or 0
    if period.kind is PeriodKind.DAYS:
        return _n("last {n} day", "last {n} days", n).format(n=n)
    if period.kind is PeriodKind.WEEKS:
        return _n("last {n} week", "last {n} weeks", n).format(n=n)
    if period.kind is PeriodKind.TODAY:
        return _("today")
    if period.kind is PeriodKind.MTD:
        return _("month to date")
    if period.kind is PeriodKind.YTD:
        return _("year to date")
    if period.kind is PeriodKind.ALL:
        return _("all time")
    assert period.anchor is not None
    if period.kind is PeriodKind.YEAR:
        return str(period.anchor.year)
    if period.kind is PeriodKind.MONTH:
        return format_skeleton("yMMMM", period.anchor, locale=locale)
    return format_date(period.anchor, format="long", locale=locale)


def render_period_error(error: PeriodError, *, i18n: I18n, locale: str) -> str:
    t = _Lang(i18n, locale)
    _ = t._
    text = escape(error.text)
    if error.code is PeriodErrorCode.OUT_OF_RANGE:
        message = _("Period “{text}” is out of range: use 1 to {days} days or 1 to {weeks} weeks.")
        return message.format(text=text, days=MAX_DAYS, weeks=MAX_WEEKS)
    if error.code is PeriodErrorCode.INVALID_DATE:
        return _("“{text}” is not a valid date.").format(text=text)
    if error.code is PeriodErrorCode.FUTURE:
        return _("“{text}” is in the future: there is nothing to show yet.").format(text=text)
    return _(
        "Unknown period “{text}”. Try 7d, 30d, 90d, 4w, today, mtd, ytd, all, "
        "a year (2026), a month (2026-10) or a day (2026-10-05)."
    ).format(text=text)


def _trade_line(t: _Lang, template: str, trade: Trade) -> str:
    return template.format(
        net=t.money(trade.net, signed=True), symbol=escape(trade.symbol), day=t.day(trade.close_time)
    )


def render_stats(
    metrics: PerformanceMetrics,
    *,
    title: str,
    period: Period,
    i18n: I18n,
    locale: str,
    currency: str = "",
    equity_now: Decimal | None = None,
) -> str:
    """The /stats message. ``title`` is plain text (it is escaped here), e.g. ``describe_scope(...)``;
    ``equity_now``: the account's equity right now (live from the broker), shown first."""
    t = _Lang(i18n, locale, currency)
    _, _n = t._, t._n
    m = metrics
    lines = [
        _("<b>Performance: {title}</b>").format(title=escape(title)),
        _("<i>{period}, {start} to {end} (UTC)</i>").format(
            period=escape(describe_period(period, i18n=i18n, locale=locale)),
            start=t.day(m.start),
            end=t.day(m.end),
        ),
        "",
    ]
    if equity_now is not None:
        lines[-1:-1] = [_("Equity now: <b>{equity}</b>").format(equity=t.money(equity_now))]
    if not m.has_data:
        lines.append(_("No trades or equity recorded in this period yet."))
        return "\n".join(lines)

    lines.append(_("<b>Trades</b>"))
    lines.append(
        _n(
            "{count} trade closed: {wins} won, {losses} lost, {even} at break-even",
            "{count} trades closed: {wins} won, {losses} lost, {even} at break-even",
            m.trades,
        ).format(count=m.trades, wins=m.wins, losses=m.losses, even=m.breakeven)
    )
    if m.trades:
        lines.append(_("Win rate: {value}").format(value=t.pct(m.win_rate)))
        lines.append(
            _("Average win: {win}; average loss: {loss}").format(
                win=t.money(m.average_win, signed=True), loss=t.money(m.average_loss, signed=True)
            )
        )
        lines.append(_("Profit factor: {value}").format(value=t.ratio(m.profit_factor)))
        lines.append(_("Expectancy: {value} per trade").format(value=t.money(m.expectancy, signed=True)))
        lines.append(
            _("Net profit: {net} (commission {commission}, swap {swap})").format(
                net=t.money(m.net_profit, signed=True),
                commission=t.money(m.commission, signed=True),
                swap=t.money(m.swap, signed=True),
            )
        )
        if m.best_trade is not None and m.worst_trade is not None:
            lines.append(_trade_line(t, _("Best trade: {net} ({symbol}, {day})"), m.best_trade))
            lines.append(_trade_line(t, _("Worst trade: {net} ({symbol}, {day})"), m.worst_trade))
    lines.append("")
    lines.append(_("<b>Equity and risk</b>") if m.start_equity is not None else _("<b>Risk</b>"))
    if m.start_equity is not None:
        lines.append(
            _("Equity: {start} to {end}").format(start=t.money(m.start_equity), end=t.money(m.end_equity))
        )
        lines.append(
            _("Return: {amount} ({pct})").format(
                amount=t.money(m.total_return, signed=True), pct=t.pct(m.total_return_pct, signed=True)
            )
        )
        lines.append(
            _("Max drawdown: {amount} ({pct}), lasting {duration}").format(
                amount=t.money(m.max_drawdown),
                pct=t.pct(m.max_drawdown_pct),
                duration=t.duration(m.max_drawdown_duration),
            )
        )
    else:
        lines.append(
            _("Max drawdown: {amount}, lasting {duration}").format(
                amount=t.money(m.max_drawdown), duration=t.duration(m.max_drawdown_duration)
            )
        )
    lines.append(_("Longest time under water: {duration}").format(duration=t.duration(m.longest_drawdown)))
    lines.append(
        _("Sharpe: {sharpe}; Sortino: {sortino} (daily, annualised over 365 days)").format(
            sharpe=t.ratio(m.sharpe), sortino=t.ratio(m.sortino)
        )
    )
    lines.append(_("Exposure: {value} of the period").format(value=t.pct(m.exposure)))
    return "\n".join(lines)


def chart_labels(
    *, title: str, period: Period, i18n: I18n, locale: str, shown: tuple[datetime, datetime] | None = None
) -> ChartLabels:
    """The chart's strings; ``title`` is plain text such as ``describe_scope(...)``. ``shown``: the
    span the chart really covers when it is shorter than the period (a young account), so the
    title names what the axis shows rather than "last 30 days"."""
    t = _Lang(i18n, locale)
    _ = t._
    if shown is not None:
        heading = _("{title}: {start} to {end}").format(
            title=title, start=formatting.when(shown[0], locale), end=formatting.when(shown[1], locale)
        )
    else:
        heading = _("{title}: {period} (UTC)").format(
            title=title, period=describe_period(period, i18n=i18n, locale=locale)
        )
    return ChartLabels(
        title=heading,
        equity=_("Equity"),
        pnl=_("Cumulative P&L"),
        drawdown_pct=_("Drawdown (%)"),
        drawdown_amount=_("Drawdown"),
        peak=_("Peak"),
        no_data=_("No data yet"),
    )


def render_export_caption(count: int, *, title: str, period: Period, i18n: I18n, locale: str) -> str:
    t = _Lang(i18n, locale)
    text = t._n(
        "{count} closed trade: {title}, {period}. Times in UTC.",
        "{count} closed trades: {title}, {period}. Times in UTC.",
        count,
    )
    return text.format(
        count=count, title=escape(title), period=escape(describe_period(period, i18n=i18n, locale=locale))
    )


def _day_lines(t: _Lang, s: DaySummary) -> list[str]:
    _, _n = t._, t._n
    lines = [
        _n(
            "{count} trade closed ({wins} won, {losses} lost): {pnl}",
            "{count} trades closed ({wins} won, {losses} lost): {pnl}",
            s.trades,
        ).format(count=s.trades, wins=s.wins, losses=s.losses, pnl=t.money(s.net_pnl, signed=True))
    ]
    if s.start_equity is not None:
        lines.append(
            _("Equity: {start} to {end} ({pct})").format(
                start=t.money(s.start_equity), end=t.money(s.end_equity), pct=t.pct(s.change_pct, signed=True)
            )
        )
    lines.append(
        _("Max drawdown today: {amount} ({pct})").format(
            amount=t.money(s.max_drawdown), pct=t.pct(s.max_drawdown_pct)
        )
    )
    if s.best_trade is not None and s.worst_trade is not None and s.trades > 1:
        lines.append(_trade_line(t, _("Best trade: {net} ({symbol}, {day})"), s.best_trade))
        lines.append(_trade_line(t, _("Worst trade: {net} ({symbol}, {day})"), s.worst_trade))
    lines.append(_("Open positions: {count}").format(count=s.open_positions))
    return lines


def render_daily_summary(summary: DaySummary, *, i18n: I18n, locale: str) -> str:
    """A subscriber's daily summary message."""
    t = _Lang(i18n, locale)
    head = t._("<b>Your day: {day} (UTC)</b>").format(
        day=format_date(summary.day, format="long", locale=locale)
    )
    return "\n".join([head, *_day_lines(t, summary)])


def render_ops_daily(report: DailyReport, *, i18n: I18n, locale: str) -> str:
    """The ops chat's daily summary: the whole book, then the subscribers in the deepest drawdown."""
    t = _Lang(i18n, locale)
    _, _n = t._, t._n
    lines = [
        _("<b>Daily summary: {day} (UTC)</b>").format(
            day=format_date(report.day, format="long", locale=locale)
        ),
        *_day_lines(t, report.total),
        "",
        _n(
            "{count} subscriber active today",
            "{count} subscribers active today",
            len(report.subscribers),
        ).format(count=len(report.subscribers)),
    ]
    deepest = sorted(
        report.subscribers, key=lambda s: (s.summary.max_drawdown_pct or Decimal(0), s.user_id), reverse=True
    )[:OPS_SUBSCRIBER_LINES]
    for sub in deepest:
        lines.append(
            _("User {telegram_id}: {pnl}, max drawdown {pct}").format(
                telegram_id=sub.telegram_id,
                pnl=t.money(sub.summary.change, signed=True),
                pct=t.pct(sub.summary.max_drawdown_pct),
            )
        )
    return "\n".join(lines)
