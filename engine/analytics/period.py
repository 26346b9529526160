"""Reporting periods: the argument of ``/stats [period]`` and ``/export [period]``.

Accepted forms (case-insensitive, surrounding spaces ignored; every boundary is UTC):

| text | period |
|---|---|
| *(empty)* | the default, ``30d`` |
| ``7d``, ``30d``, ``90d`` ... (``1d`` .. ``3650d``) | the last N days, a rolling window ending now |
| ``2w`` ... (``1w`` .. ``520w``) | the last N weeks, rolling |
| ``today`` | since 00:00 UTC today |
| ``mtd`` / ``ytd`` | month / year to date |
| ``all`` | everything recorded |
| ``2026`` | a calendar year |
| ``2026-10`` | a calendar month |
| ``2026-10-05`` | a calendar day |

A period is half-open, ``[start, end)``; ``end`` is never later than ``now``. A bad argument raises
``PeriodError`` whose ``code`` says what is wrong, so the bot can say it in the user's language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

DEFAULT_PERIOD = "30d"
MAX_DAYS = 3650
MAX_WEEKS = 520


class PeriodKind(StrEnum):
    DAYS = "days"  # rolling, n days
    WEEKS = "weeks"  # rolling, n weeks
    TODAY = "today"
    MTD = "mtd"
    YTD = "ytd"
    ALL = "all"
    YEAR = "year"
    MONTH = "month"
    DAY = "day"


class PeriodErrorCode(StrEnum):
    UNKNOWN = "unknown"  # not one of the accepted forms
    OUT_OF_RANGE = "out_of_range"  # Nd / Nw outside its bounds
    INVALID_DATE = "invalid_date"  # 2026-13, 2026-02-30
    FUTURE = "future"  # starts after now


class PeriodError(ValueError):
    """A period argument that cannot be used; ``code`` is a ``PeriodErrorCode``."""

    def __init__(self, code: PeriodErrorCode, text: str) -> None:
        self.code = code
        self.text = text
        messages = {
            PeriodErrorCode.UNKNOWN: "unknown period {t!r}: use 7d, 4w, today, mtd, ytd, all, 2026, 2026-10 or 2026-10-05",
            PeriodErrorCode.OUT_OF_RANGE: f"period {{t!r}} is out of range: 1..{MAX_DAYS} days or 1..{MAX_WEEKS} weeks",
            PeriodErrorCode.INVALID_DATE: "period {t!r} is not a valid date",
            PeriodErrorCode.FUTURE: "period {t!r} is in the future",
        }
        super().__init__(messages[code].format(t=text))


@dataclass(frozen=True)
class Period:
    """A resolved period: ``[start, end)`` in UTC; ``start`` is None for ``all``."""

    spec: str  # normalised text, e.g. "30d", "2026-10"
    kind: PeriodKind
    start: datetime | None
    end: datetime
    count: int | None = None  # n for DAYS / WEEKS
    anchor: date | None = None  # the first day of YEAR / MONTH / DAY

    @property
    def rolling(self) -> bool:
        """Whether the window moves with the clock (its start depends on ``now``)."""
        return self.kind in (PeriodKind.DAYS, PeriodKind.WEEKS)

    def cache_key(self) -> tuple[str, str]:
        """Identifies the window for caching; rolling windows are bucketed to the hour."""
        if self.start is None:
            return (self.spec, "")
        start = self.start.replace(minute=0, second=0, microsecond=0) if self.rolling else self.start
        return (self.spec, start.isoformat())


_ROLLING = re.compile(r"^(\d{1,6})([dw])$")
_YEAR = re.compile(r"^(\d{4})$")
_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_DAY = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _next_month(d: date) -> date:
    return date(d.year + 1, 1, 1) if d.month == 12 else date(d.year, d.month + 1, 1)


def _calendar(spec: str, kind: PeriodKind, first: date, after: date, now: datetime, text: str) -> Period:
    start = _midnight(first)
    if start > now:
        raise PeriodError(PeriodErrorCode.FUTURE, text)
    return Period(spec, kind, start, min(_midnight(after), now), anchor=first)


def parse_period(text: str | None, now: datetime) -> Period:
    """Parse a period argument relative to ``now`` (timezone-aware); raises ``PeriodError``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    raw = (text or "").strip()
    spec = raw.lower() or DEFAULT_PERIOD
    today = now.date()

    if m := _ROLLING.match(spec):
        n, unit = int(m.group(1)), m.group(2)
        limit = MAX_DAYS if unit == "d" else MAX_WEEKS
        if not 1 <= n <= limit:
            raise PeriodError(PeriodErrorCode.OUT_OF_RANGE, raw)
        days = n if unit == "d" else 7 * n
        kind = PeriodKind.DAYS if unit == "d" else PeriodKind.WEEKS
        return Period(f"{n}{unit}", kind, now - timedelta(days=days), now, count=n)
    if spec == "today":
        return Period(spec, PeriodKind.TODAY, _midnight(today), now, anchor=today)
    if spec == "mtd":
        first = today.replace(day=1)
        return Period(spec, PeriodKind.MTD, _midnight(first), now, anchor=first)
    if spec == "ytd":
        first = date(today.year, 1, 1)
        return Period(spec, PeriodKind.YTD, _midnight(first), now, anchor=first)
    if spec == "all":
        return Period(spec, PeriodKind.ALL, None, now)
    try:
        if m := _YEAR.match(spec):
            first = date(int(m.group(1)), 1, 1)
            return _calendar(f"{first:%Y}", PeriodKind.YEAR, first, date(first.year + 1, 1, 1), now, raw)
        if m := _MONTH.match(spec):
            first = date(int(m.group(1)), int(m.group(2)), 1)
            return _calendar(f"{first:%Y-%m}", PeriodKind.MONTH, first, _next_month(first), now, raw)
        if m := _DAY.match(spec):
            first = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            return _calendar(first.isoformat(), PeriodKind.DAY, first, first + timedelta(days=1), now, raw)
    except ValueError as exc:
        if isinstance(exc, PeriodError):
            raise
        raise PeriodError(PeriodErrorCode.INVALID_DATE, raw) from None
    raise PeriodError(PeriodErrorCode.UNKNOWN, raw)


def day_period(day: date) -> Period:
    """The calendar day ``day`` as a period (used by the daily summary)."""
    start = _midnight(day)
    return Period(day.isoformat(), PeriodKind.DAY, start, start + timedelta(days=1), anchor=day)
