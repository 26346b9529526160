"""Period parsing: every accepted form, its UTC bounds, and a clear error for everything else."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from engine.analytics.period import (
    DEFAULT_PERIOD,
    PeriodError,
    PeriodErrorCode,
    PeriodKind,
    day_period,
    parse_period,
)

NOW = datetime(2026, 10, 15, 13, 45, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "spec", "kind", "start", "end"),
    [
        ("7d", "7d", PeriodKind.DAYS, NOW - timedelta(days=7), NOW),
        ("30D", "30d", PeriodKind.DAYS, NOW - timedelta(days=30), NOW),
        ("  90d ", "90d", PeriodKind.DAYS, NOW - timedelta(days=90), NOW),
        ("007d", "7d", PeriodKind.DAYS, NOW - timedelta(days=7), NOW),
        ("2w", "2w", PeriodKind.WEEKS, NOW - timedelta(days=14), NOW),
        ("today", "today", PeriodKind.TODAY, datetime(2026, 10, 15, tzinfo=UTC), NOW),
        ("mtd", "mtd", PeriodKind.MTD, datetime(2026, 10, 1, tzinfo=UTC), NOW),
        ("YTD", "ytd", PeriodKind.YTD, datetime(2026, 1, 1, tzinfo=UTC), NOW),
        ("all", "all", PeriodKind.ALL, None, NOW),
        ("2025", "2025", PeriodKind.YEAR, datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026", "2026", PeriodKind.YEAR, datetime(2026, 1, 1, tzinfo=UTC), NOW),
        (
            "2026-09",
            "2026-09",
            PeriodKind.MONTH,
            datetime(2026, 9, 1, tzinfo=UTC),
            datetime(2026, 10, 1, tzinfo=UTC),
        ),
        (
            "2025-12",
            "2025-12",
            PeriodKind.MONTH,
            datetime(2025, 12, 1, tzinfo=UTC),
            datetime(2026, 1, 1, tzinfo=UTC),
        ),
        ("2026-10", "2026-10", PeriodKind.MONTH, datetime(2026, 10, 1, tzinfo=UTC), NOW),  # clipped to now
        (
            "2026-2",
            "2026-02",
            PeriodKind.MONTH,
            datetime(2026, 2, 1, tzinfo=UTC),
            datetime(2026, 3, 1, tzinfo=UTC),
        ),
        (
            "2024-02-29",
            "2024-02-29",
            PeriodKind.DAY,
            datetime(2024, 2, 29, tzinfo=UTC),
            datetime(2024, 3, 1, tzinfo=UTC),
        ),
        ("2026-10-15", "2026-10-15", PeriodKind.DAY, datetime(2026, 10, 15, tzinfo=UTC), NOW),
    ],
)
def test_accepted_forms(text, spec, kind, start, end):
    period = parse_period(text, NOW)
    assert (period.spec, period.kind, period.start, period.end) == (spec, kind, start, end)
    assert period.end <= NOW


def test_empty_means_the_default():
    assert (
        parse_period(None, NOW)
        == parse_period("", NOW)
        == parse_period("  ", NOW)
        == parse_period(DEFAULT_PERIOD, NOW)
    )
    assert parse_period("", NOW).spec == "30d"


def test_counts_and_anchors():
    assert parse_period("4w", NOW).count == 4
    assert parse_period("2026-09", NOW).anchor == date(2026, 9, 1)
    assert parse_period("ytd", NOW).anchor == date(2026, 1, 1)


def test_now_in_another_zone_is_converted_to_utc():
    # 2026-10-16 01:00 at +05:00 is still the 15th in UTC.
    local = datetime(2026, 10, 16, 1, 0, tzinfo=timezone(timedelta(hours=5)))
    assert parse_period("today", local).start == datetime(2026, 10, 15, tzinfo=UTC)
    with pytest.raises(ValueError, match="aware"):
        parse_period("7d", datetime(2026, 10, 15))


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("week", PeriodErrorCode.UNKNOWN),
        ("7", PeriodErrorCode.UNKNOWN),
        ("-7d", PeriodErrorCode.UNKNOWN),
        ("7h", PeriodErrorCode.UNKNOWN),
        ("1.5d", PeriodErrorCode.UNKNOWN),
        ("26-10", PeriodErrorCode.UNKNOWN),
        ("2026/10", PeriodErrorCode.UNKNOWN),
        ("0d", PeriodErrorCode.OUT_OF_RANGE),
        ("3651d", PeriodErrorCode.OUT_OF_RANGE),
        ("521w", PeriodErrorCode.OUT_OF_RANGE),
        ("2026-13", PeriodErrorCode.INVALID_DATE),
        ("2026-00", PeriodErrorCode.INVALID_DATE),
        ("2026-02-30", PeriodErrorCode.INVALID_DATE),
        ("0000", PeriodErrorCode.INVALID_DATE),
        ("2026-11", PeriodErrorCode.FUTURE),
        ("2027", PeriodErrorCode.FUTURE),
        ("2026-10-16", PeriodErrorCode.FUTURE),
    ],
)
def test_errors_say_what_is_wrong(text, code):
    with pytest.raises(PeriodError) as info:
        parse_period(text, NOW)
    assert info.value.code is code
    assert info.value.text == text
    assert repr(text) in str(info.value)


def test_limits_are_inclusive():
    assert parse_period("3650d", NOW).count == 3650
    assert parse_period("1d", NOW).start == NOW - timedelta(days=1)
    assert parse_period("520w", NOW).count == 520


def test_cache_key_buckets_rolling_windows_by_hour():
    a = parse_period("7d", NOW)
    b = parse_period("7d", NOW + timedelta(minutes=10))
    c = parse_period("7d", NOW + timedelta(hours=1))
    assert a.cache_key() == b.cache_key() != c.cache_key()
    assert (
        parse_period("2026-09", NOW).cache_key()
        == parse_period("2026-09", NOW + timedelta(days=3)).cache_key()
    )
    assert parse_period("all", NOW).cache_key() == ("all", "")


def test_day_period():
    period = day_period(date(2026, 3, 2))
    assert (period.start, period.end, period.kind) == (
        datetime(2026, 3, 2, tzinfo=UTC),
        datetime(2026, 3, 3, tzinfo=UTC),
        PeriodKind.DAY,
    )
