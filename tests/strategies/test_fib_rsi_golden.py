"""Golden tests: hand-made bar series for each rule of the Fib-RSI reference, with the expected setups.

The prices below are the reference's formulas applied by hand to the bars' chosen highs and lows:
short entry L + 0.74 R, stop H + 0.27 R, target entry - 3.25 risk (long mirrored), rounded to the
0.01 tick after the arithmetic (entry and target to the nearest, halves up; stop away from entry).
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from engine.brokers.base import Side
from engine.strategies.fib_rsi import FibRsi
from tests.support.fib_rsi_scenarios import LONG_A, SHORT_A, SHORT_TWO, WARMUP, Series, at, reference_rsi

TICK = Decimal("0.01")


def setups(series: Series) -> list:
    return FibRsi("TEST", TICK).update(series.bars())


def short_a(low_at: int = 45, gaps: dict[int, int] | None = None) -> Series:
    # H = 114.00 at bar 36 (the overbought leg 34..37), L = 95.00 at bar 45 (the run 43..46)
    return Series(WARMUP + SHORT_A, highs={36: 114.0}, lows={low_at: 95.0}, gaps=gaps or {})


def test_the_scenarios_have_the_rsi_the_tests_rely_on() -> None:
    r = reference_rsi(short_a().bars().close)
    assert r[33] <= 70 < r[34] and all(r[k] > 70 for k in (34, 35, 36, 37)) and r[38] <= 70
    assert all(40 < r[k] for k in range(34, 43)) and all(r[k] <= 40 for k in range(43, 47)) and r[47] > 40
    r = reference_rsi(Series(WARMUP + SHORT_TWO).bars().close)
    assert r[33] <= 70 < r[34] and 40 < r[39] <= 70 and r[42] <= 70 < r[43] and r[44] <= 70
    assert all(r[k] > 40 for k in range(34, 50)) and all(r[k] <= 40 for k in range(50, 55)) and r[55] > 40
    r = reference_rsi(Series(WARMUP + LONG_A).bars().close)
    assert r[31] >= 40 > r[32] and all(r[k] < 40 for k in range(32, 38)) and r[38] >= 40
    assert all(r[k] < 70 for k in range(32, 43)) and all(r[k] >= 70 for k in range(43, 49)) and r[49] < 70


def test_rsi_matches_the_ta_library_formula() -> None:
    from engine.strategies.rsi import rsi

    close = short_a().bars().close
    assert np.array_equal(rsi(close), reference_rsi(close), equal_nan=True)
    assert np.isnan(rsi(close)[:13]).all() and not np.isnan(rsi(close)[13])


def test_short_trigger_completion_and_run_end_give_one_sell_limit() -> None:
    (s,) = setups(short_a())
    assert s.setup_id == "TEST_H1_short_2024-01-02T19:00Z"  # t(j), j = 43
    assert s.side is Side.SELL
    # R = 114 - 95 = 19: entry 95 + 14.06, stop 114 + 5.13, target 109.06 - 3.25 * 10.07
    assert (s.entry, s.sl, s.tp) == (Decimal("109.06"), Decimal("119.13"), Decimal("76.33"))
    assert s.bar_time == at(47) and s.placed_at == at(48) and s.expires_at == at(148)


def test_long_mirror() -> None:
    (s,) = setups(Series(WARMUP + LONG_A, highs={47: 120.0}, lows={36: 88.0}))
    assert s.setup_id == "TEST_H1_long_2024-01-02T19:00Z" and s.side is Side.BUY
    # L = 88 (bar 36), H = 120 (bar 47), R = 32: entry 120 - 23.68, stop 88 - 8.64, target + 3.25 * 16.96
    assert (s.entry, s.sl, s.tp) == (Decimal("96.32"), Decimal("79.36"), Decimal("151.44"))
    assert s.bar_time == at(49)


def test_run_still_going_gives_nothing_until_the_bar_that_ends_it() -> None:
    bars = short_a().bars()
    strategy = FibRsi("TEST", TICK)
    assert strategy.update(bars.slice(0, 47)) == []  # the run 43..46 is still going at bar 46
    (s,) = strategy.update(bars.slice(47, 48))
    assert s.bar_time == at(47)


def test_completion_more_than_100_hours_after_the_trigger_gives_nothing() -> None:
    # H at bar 36, L at bar 43; a gap of g hours before bar 38: t(j) - t(i) = 9 + g, t_L - t_H = 7 + g
    (s,) = setups(short_a(low_at=43, gaps={38: 91}))  # exactly 100 h: kept
    assert s.setup_id == "TEST_H1_short_2024-01-06T14:00Z"  # t(43) = 43 h + 91 h
    assert (s.entry, s.sl, s.tp) == (Decimal("109.06"), Decimal("119.13"), Decimal("76.33"))
    assert setups(short_a(low_at=43, gaps={38: 92})) == []  # 101 h: no setup


def test_low_more_than_100_hours_after_the_high_is_rejected() -> None:
    # H at bar 34, L at bar 45, a gap of g hours before bar 37: t(j) - t(i) = 9 + g, t_L - t_H = 11 + g
    series = Series(WARMUP + SHORT_A, highs={34: 114.0}, lows={45: 95.0}, gaps={37: 89})
    assert len(setups(series)) == 1  # t_L - t_H = 100 h
    series.gaps = {37: 90}
    assert setups(series) == []  # t(j) - t(i) = 99 h passes, t_L - t_H = 101 h does not


def test_earliest_trigger_that_passes_wins() -> None:
    # H = 118.00 in the first leg (bar 35), L = 93.00 (bar 53): built from the trigger at 34
    (s,) = setups(Series(WARMUP + SHORT_TWO, highs={35: 118.0}, lows={53: 93.0}))
    assert s.setup_id == "TEST_H1_short_2024-01-03T02:00Z" and s.bar_time == at(55)
    # R = 25: entry 93 + 18.5, stop 118 + 6.75, target 111.5 - 3.25 * 13.25 = 68.4375
    assert (s.entry, s.sl, s.tp) == (Decimal("111.50"), Decimal("124.75"), Decimal("68.44"))


def test_a_trigger_too_far_back_leaves_the_later_one() -> None:
    # 95 h between bars 37 and 38: the first trigger is 111 h before j, the second (43) 7 h
    (s,) = setups(Series(WARMUP + SHORT_TWO, highs={35: 118.0}, lows={53: 93.0}, gaps={38: 95}))
    # H = 115.10 (bar 43, the only overbought bar after the second trigger), R = 22.10:
    # entry 109.354 -> 109.35, stop 121.067 -> 121.07 (away from entry), target 71.28675 -> 71.29
    assert (s.entry, s.sl, s.tp) == (Decimal("109.35"), Decimal("121.07"), Decimal("71.29"))


def test_a_rejected_earliest_trigger_is_not_replaced_by_a_later_one() -> None:
    # 85 h inside the run (before bar 52): t_L - t_H = 53 + 85 - 35 = 103 h > 100 h with the first
    # trigger's high; the second trigger's (bar 43) would give 95 h, but it is not tried
    assert setups(Series(WARMUP + SHORT_TWO, highs={35: 118.0}, lows={53: 93.0}, gaps={52: 85})) == []


def test_low_older_than_1440_hours_at_the_end_of_the_run_is_rejected() -> None:
    assert len(setups(short_a(gaps={47: 1438}))) == 1  # t(e) - t_L = 2 h + 1438 h = 1440 h
    assert setups(short_a(gaps={47: 1439})) == []


def test_a_trigger_must_lie_in_the_200_bar_window() -> None:
    # flat bars inside the oversold run keep its RSI (both averages decay alike); e = 47 + n and
    # the window ending at e starts at e - 199: the trigger (34) must be at window position >= 1
    def run_with(flat: int) -> list:
        segments = [(6, 2.0), (8, -2.0), (2, -0.5), (flat, 0.0), (1, 3.0)]
        return setups(Series(WARMUP + segments, highs={36: 114.0}, lows={45: 95.0}))

    (s,) = run_with(185)  # window 33..232: the trigger is at position 1
    assert s.bar_time == at(232) and s.entry == Decimal("109.06")
    assert run_with(186) == []  # window 34..233: the trigger is at position 0
