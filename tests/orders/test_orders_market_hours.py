"""The market-hours gate: the default FX week across DST changes, overrides and the settings form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.risk.market_hours import (
    AlwaysOpen,
    MarketHours,
    MarketHoursError,
    WeeklySchedule,
    Window,
    parse_market_hours,
    parse_schedule,
)

NY = ZoneInfo("America/New_York")
FX = MarketHours()


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def ny(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=NY)


# --- the default FX/metals week -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "is_open"),
    [
        (ny(2024, 1, 5, 16, 59), True),  # Friday, winter
        (ny(2024, 1, 5, 17, 0), False),
        (ny(2024, 7, 5, 16, 59, 59), True),  # Friday, summer
        (ny(2024, 7, 5, 17, 0), False),
        (ny(2024, 1, 6, 12, 0), False),  # Saturday
        (ny(2024, 1, 7, 16, 59), False),  # Sunday
        (ny(2024, 1, 7, 17, 0), True),
        (ny(2024, 7, 7, 16, 59), False),
        (ny(2024, 7, 7, 17, 0), True),
        (ny(2024, 1, 10, 3, 0), True),  # Wednesday
        (ny(2024, 1, 8, 0, 0), True),  # Monday midnight
    ],
)
def test_default_week_on_new_york_wall_clock(when: datetime, is_open: bool) -> None:
    assert FX.is_open("EURUSD", when) is is_open


def test_friday_close_moves_in_utc_with_dst() -> None:
    # Winter: 17:00 EST = 22:00 UTC.
    assert FX.is_open("XAUUSD", utc(2024, 1, 5, 21, 59))
    assert not FX.is_open("XAUUSD", utc(2024, 1, 5, 22, 0))
    # Summer: 17:00 EDT = 21:00 UTC, so 21:30 UTC is closed in July but open in January.
    assert FX.is_open("XAUUSD", utc(2024, 7, 5, 20, 59))
    assert not FX.is_open("XAUUSD", utc(2024, 7, 5, 21, 0))
    assert FX.is_open("XAUUSD", utc(2024, 1, 5, 21, 30))
    assert not FX.is_open("XAUUSD", utc(2024, 7, 5, 21, 30))


def test_dst_start_weekend() -> None:
    # US DST starts Sunday 2024-03-10 (second Sunday of March) at 02:00.
    assert FX.is_open("EURUSD", utc(2024, 3, 8, 21, 59))  # Friday 16:59 EST
    assert not FX.is_open("EURUSD", utc(2024, 3, 8, 22, 0))  # Friday 17:00 EST
    assert not FX.is_open("EURUSD", utc(2024, 3, 10, 20, 59))  # Sunday 16:59 EDT
    assert FX.is_open("EURUSD", utc(2024, 3, 10, 21, 0))  # Sunday 17:00 EDT
    assert FX.next_open("EURUSD", utc(2024, 3, 9, 12, 0)) == utc(2024, 3, 10, 21, 0)


def test_dst_end_weekend() -> None:
    # US DST ends Sunday 2024-11-03 (first Sunday of November) at 02:00.
    assert FX.is_open("EURUSD", utc(2024, 11, 1, 20, 59))  # Friday 16:59 EDT
    assert not FX.is_open("EURUSD", utc(2024, 11, 1, 21, 0))  # Friday 17:00 EDT
    assert not FX.is_open("EURUSD", utc(2024, 11, 3, 21, 59))  # Sunday 16:59 EST
    assert FX.is_open("EURUSD", utc(2024, 11, 3, 22, 0))  # Sunday 17:00 EST
    assert FX.next_open("EURUSD", utc(2024, 11, 2, 12, 0)) == utc(2024, 11, 3, 22, 0)


def test_dst_2025_dates() -> None:
    # 2025: DST starts 9 March, ends 2 November.
    assert FX.next_open("EURUSD", utc(2025, 3, 8, 0, 0)) == utc(2025, 3, 9, 21, 0)
    assert FX.next_open("EURUSD", utc(2025, 11, 1, 0, 0)) == utc(2025, 11, 2, 22, 0)


def test_next_open_when_already_open_is_now() -> None:
    now = utc(2024, 6, 5, 12, 0)
    assert FX.next_open("EURUSD", now) == now
    assert AlwaysOpen().next_open(now) == now


def test_next_open_from_friday_evening_same_week() -> None:
    assert FX.next_open("EURUSD", ny(2024, 6, 7, 17, 0)) == utc(2024, 6, 9, 21, 0)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FX.is_open("EURUSD", datetime(2024, 6, 5, 12, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        AlwaysOpen().is_open(datetime(2024, 6, 5, 12, 0))


# --- overrides ------------------------------------------------------------------------------------


def test_overrides_from_the_settings_string() -> None:
    hours = parse_market_hours("BTC*=24/7; US500=Mon-Fri 09:30-16:00 America/New_York")
    saturday = ny(2024, 6, 8, 12, 0)
    assert hours.is_open("BTCUSD", saturday)
    assert hours.is_open("btceur", saturday)
    assert not hours.is_open("EURUSD", saturday)  # the default week still applies
    assert not hours.is_open("US500", ny(2024, 6, 10, 9, 29))
    assert hours.is_open("US500", ny(2024, 6, 10, 9, 30))
    assert hours.is_open("us500", ny(2024, 6, 10, 9, 30))
    assert not hours.is_open("us500", saturday)
    assert hours.is_open("US500", ny(2024, 6, 14, 15, 59))
    assert not hours.is_open("US500", ny(2024, 6, 14, 16, 0))
    assert not hours.is_open("US500", saturday)
    assert hours.next_open("US500", saturday) == ny(2024, 6, 10, 9, 30)


def test_exact_name_beats_wildcard_and_first_wildcard_wins() -> None:
    hours = parse_market_hours("BTC*=24/7;BTCUSD=Mon 00:00-24:00;B*=Tue 00:00-24:00")
    tuesday = utc(2024, 6, 11, 12, 0)
    assert not hours.is_open("BTCUSD", tuesday)
    assert hours.is_open("BTCEUR", tuesday) and hours.is_open("BTCEUR", utc(2024, 6, 8, 12, 0))
    assert hours.is_open("BRENT", tuesday) and not hours.is_open("BRENT", utc(2024, 6, 10, 12, 0))


def test_overrides_built_in_code_match_any_case() -> None:
    hours = MarketHours(overrides={"btcUSD": AlwaysOpen()})
    assert hours.is_open("BTCusd", utc(2024, 6, 8, 12, 0))
    assert not hours.is_open("ETHUSD", utc(2024, 6, 8, 12, 0))


def test_star_replaces_the_default() -> None:
    hours = parse_market_hours("*=24/7;EURUSD=Sun 17:00-Fri 17:00 America/New_York")
    assert isinstance(hours.default, AlwaysOpen)
    assert hours.is_open("ETHUSD", utc(2024, 6, 8, 12, 0))
    assert not hours.is_open("EURUSD", utc(2024, 6, 8, 12, 0))


def test_empty_setting_is_the_default_fx_week() -> None:
    hours = parse_market_hours("  ;  ")
    assert hours.overrides == {}
    assert isinstance(hours.default, WeeklySchedule)
    assert hours.default.zone.key == "America/New_York"


# --- schedule forms -------------------------------------------------------------------------------


def test_daily_session_crossing_midnight() -> None:
    cme = parse_schedule("Sun-Thu 18:00-17:00 America/New_York")
    assert not cme.is_open(ny(2024, 6, 10, 17, 30))  # Monday daily break
    assert cme.is_open(ny(2024, 6, 10, 18, 0))
    assert cme.is_open(ny(2024, 6, 14, 16, 59))  # Thursday's session ends Friday 17:00
    assert not cme.is_open(ny(2024, 6, 14, 17, 0))
    assert not cme.is_open(ny(2024, 6, 15, 12, 0))
    assert not cme.is_open(ny(2024, 6, 16, 17, 59))
    assert cme.is_open(ny(2024, 6, 16, 18, 0))


def test_end_of_day_and_default_zone_utc() -> None:
    weekdays = parse_schedule("Mon-Fri 00:00-24:00")
    assert isinstance(weekdays, WeeklySchedule) and weekdays.zone.key == "UTC"
    assert weekdays.is_open(utc(2024, 6, 14, 23, 59, 59))
    assert not weekdays.is_open(utc(2024, 6, 15, 0, 0))
    assert weekdays.is_open(utc(2024, 6, 10, 0, 0))


def test_span_wrapping_over_the_week_end() -> None:
    weekend = parse_schedule("Sat 22:00-Mon 02:00")
    assert weekend.is_open(utc(2024, 6, 9, 12, 0))  # Sunday
    assert weekend.is_open(utc(2024, 6, 10, 1, 59))
    assert not weekend.is_open(utc(2024, 6, 10, 2, 0))
    assert not weekend.is_open(utc(2024, 6, 8, 21, 59))


def test_day_range_wrapping_and_several_windows() -> None:
    sched = parse_schedule("Fri-Mon 10:00-11:00, wed 09:00-09:30 Europe/London")
    london = ZoneInfo("Europe/London")
    assert sched.is_open(datetime(2024, 6, 8, 10, 30, tzinfo=london))  # Saturday
    assert sched.is_open(datetime(2024, 6, 10, 10, 0, tzinfo=london))  # Monday
    assert not sched.is_open(datetime(2024, 6, 11, 10, 30, tzinfo=london))  # Tuesday
    assert sched.is_open(datetime(2024, 6, 12, 9, 15, tzinfo=london))  # Wednesday
    assert not sched.is_open(datetime(2024, 6, 12, 10, 30, tzinfo=london))


def test_start_inside_the_spring_forward_gap() -> None:
    # 02:30 does not exist in New York on 2024-03-10: the clock jumps from 02:00 EST to 03:00 EDT
    # (07:00 UTC), which is when the window opens.
    sched = parse_schedule("Sun 02:30-Sun 05:00 America/New_York")
    opens = sched.next_open(utc(2024, 3, 9, 12, 0))
    assert opens == utc(2024, 3, 10, 7, 0)
    assert sched.is_open(opens)
    assert not sched.is_open(opens - timedelta(seconds=1))  # 01:59:59 EST


def test_repeated_hour_at_fall_back_is_open_both_times() -> None:
    sched = parse_schedule("Sun 01:30-Sun 01:45 America/New_York")
    assert sched.is_open(utc(2024, 11, 3, 5, 40))  # 01:40 EDT
    assert sched.is_open(utc(2024, 11, 3, 6, 40))  # 01:40 EST
    assert not sched.is_open(utc(2024, 11, 3, 6, 0))  # 01:00 EST
    assert sched.next_open(utc(2024, 11, 2, 12, 0)) == utc(2024, 11, 3, 5, 30)  # the first 01:30
    assert sched.next_open(utc(2024, 11, 3, 5, 50)) == utc(2024, 11, 3, 6, 30)  # the second 01:30


def test_fall_back_jumps_into_a_window() -> None:
    # At 02:00 EDT (06:00 UTC) the clock falls back to 01:00 EST, inside 00:30-01:20.
    sched = parse_schedule("Sun 00:30-Sun 01:20 America/New_York")
    assert not sched.is_open(utc(2024, 11, 3, 5, 59, 59))  # 01:59:59 EDT
    assert sched.next_open(utc(2024, 11, 3, 5, 30)) == utc(2024, 11, 3, 6, 0)


def test_describe() -> None:
    assert parse_schedule("24/7").describe() == "24/7"
    assert parse_schedule("Mon-Fri  09:30-16:00 America/New_York").describe() == (
        "Mon-Fri 09:30-16:00 America/New_York"
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("BTCUSD", "SYMBOL=SCHEDULE"),
        ("=24/7", "SYMBOL=SCHEDULE"),
        ("B?C=24/7", "bad symbol pattern"),
        ("X=", "empty schedule"),
        ("X=Foo 10:00-11:00", "unknown day"),
        ("X=Mon 25:00-26:00", "bad time"),
        ("X=Mon 10:00-10:00", "no length"),
        ("X=Sun 17:00-Sun 17:00", "no length"),
        ("X=Mon 10:00-11:00 Mars/Olympus", "unknown time zone"),
        ("X=Mon 10:00-11:00,", "empty window"),
        ("X=Monday", "expected e.g."),
        ("A=24/7;a=24/7", "given twice"),
    ],
)
def test_bad_settings_name_the_entry(text: str, fragment: str) -> None:
    with pytest.raises(MarketHoursError, match=fragment) as info:
        parse_market_hours(text)
    if "=" in text and not text.startswith("="):
        assert text.split(";")[-1].split("=")[0] in str(info.value)


def test_week_of_minutes_agrees_with_a_direct_reading() -> None:
    # Every 7 minutes over three weeks spanning the 2024 autumn change, the default schedule must
    # agree with the definition read straight off the New York wall clock.
    start = utc(2024, 10, 25, 0, 3)
    for i in range(3 * 7 * 24 * 60 // 7):
        now = start + timedelta(minutes=7 * i)
        local = now.astimezone(NY)
        minutes = local.hour * 60 + local.minute
        closed = (
            (local.weekday() == 4 and minutes >= 17 * 60)
            or local.weekday() == 5
            or (local.weekday() == 6 and minutes < 17 * 60)
        )
        assert FX.is_open("EURUSD", now) is not closed, now


ZONES = ["America/New_York", "Europe/London", "Australia/Lord_Howe", "UTC", "Asia/Kolkata"]


@st.composite
def schedules(draw: st.DrawFn) -> WeeklySchedule:
    windows = tuple(
        Window(start=draw(st.integers(0, 7 * 1440 - 1)) * 60, length=draw(st.integers(1, 3 * 1440)) * 60)
        for _ in range(draw(st.integers(1, 3)))
    )
    return WeeklySchedule(zone=ZoneInfo(draw(st.sampled_from(ZONES))), windows=windows)


@settings(max_examples=150, deadline=None)
@given(
    schedules(),
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)),
    st.lists(st.integers(0, 10**6), min_size=20, max_size=20),
)
def test_next_open_is_the_first_open_instant(sched: WeeklySchedule, now: datetime, probes: list[int]) -> None:
    opens = sched.next_open(now)
    assert sched.is_open(opens)
    if opens == now:
        return
    assert opens > now and opens - now <= timedelta(days=8)
    assert not sched.is_open(opens - timedelta(seconds=1))
    span = opens - now
    for p in probes:  # points strictly between now and the opening are all closed
        probe = now + span * p // 10**6
        if probe < opens:
            assert not sched.is_open(probe), probe
