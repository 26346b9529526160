"""Golden backtests: the short setup of SHORT_A (sell limit 109.06, stop 119.13, target 76.33,
placed at the close of bar 47 at 99.00), followed by hand-made bars, and the trades expected.

Every row is what the reference's backtest rules give by hand; the columns are CONTRACTS
section 3's. The symbol TEST has no built-in spec: --tick 0.01 (one lot is one unit).
"""

from __future__ import annotations

from decimal import Decimal

from engine.backtest.report import metrics, report, trades_csv
from engine.backtest.simulator import BacktestResult, run_backtest
from engine.backtest.specs import backtest_spec
from engine.strategies.fib_rsi import FibRsi
from tests.support.fib_rsi_scenarios import FLAT, SHORT_A, WARMUP, Series, pattern_bars

HEADER = "setup_id,side,entry,sl,tp,placed_at,status,filled_at,fill_price,exit_at,exit_price,exit_reason"
SHORT_ID = "TEST_H1_short_2024-01-02T19:00Z"
PLACED = "2024-01-03T00:00:00Z"


def backtest(extra: list[tuple[float, float, float, float]], close_e: float | None = None) -> BacktestResult:
    segments = list(SHORT_A)
    if close_e is not None:  # bar 47 (e) closes there instead of 99.00
        segments[-1] = (1, round(close_e - 96.0, 6))
    series = Series(WARMUP + segments, highs={36: 114.0}, lows={45: 95.0}, extra=extra)
    spec = backtest_spec("TEST", Decimal("0.01"))
    strategy = FibRsi("TEST", spec.tick_size)
    return run_backtest(strategy, series.bars(), spec, balance=Decimal(10000), risk_percent=Decimal(2))


def rows(result: BacktestResult) -> list[str]:
    lines = trades_csv(result).splitlines()
    assert lines[0] == HEADER
    return lines[1:]


def test_fill_at_entry_then_target() -> None:
    result = backtest([(99.0, 109.5, 98.5, 105.0), (105.0, 106.0, 76.0, 80.0)])
    assert rows(result) == [
        f"{SHORT_ID},sell,109.06,119.13,76.33,{PLACED},closed,2024-01-03T00:00:00Z,109.06,"
        "2024-01-03T01:00:00Z,76.33,tp"
    ]
    # volume: 2 % of 10000 over 1007 ticks at 0.01 a tick per lot = 19.86 lots; 3273 ticks won
    assert result.trades[0].volume == Decimal("19.86")
    assert result.trades[0].profit == Decimal("650.0178")
    m = metrics(result)
    assert m.net_profit == Decimal("650.0178") and m.trades == 1 and m.win_rate == 1
    assert report(result, m)["ending_balance"] == "10650.02"


def test_gap_fill_at_the_open_and_gap_through_the_stop() -> None:
    result = backtest([(112.0, 113.0, 111.0, 112.0), (125.0, 126.0, 124.0, 125.0)])
    assert rows(result) == [
        f"{SHORT_ID},sell,109.06,119.13,76.33,{PLACED},closed,2024-01-03T00:00:00Z,112.00,"
        "2024-01-03T01:00:00Z,125.00,sl"
    ]


def test_a_bar_touching_stop_and_target_exits_at_the_stop() -> None:
    result = backtest([(99.0, 110.0, 98.5, 105.0), (100.0, 120.0, 70.0, 100.0)])
    assert rows(result)[0].endswith("2024-01-03T01:00:00Z,119.13,sl")


def test_exits_are_checked_from_the_bar_after_the_fill() -> None:
    result = backtest([(99.0, 121.0, 98.5, 105.0), FLAT])  # the fill bar also reaches the stop
    assert rows(result) == [
        f"{SHORT_ID},sell,109.06,119.13,76.33,{PLACED},filled,2024-01-03T00:00:00Z,109.06,,,"
    ]


def test_expiry_after_bar_e_plus_100() -> None:
    touch = (99.0, 109.06, 98.5, 99.0)
    on_last_bar = backtest([FLAT] * 99 + [touch])  # bar e + 100 may still fill
    assert rows(on_last_bar)[0].split(",")[6:9] == ["filled", "2024-01-07T03:00:00Z", "109.06"]
    too_late = backtest([FLAT] * 100 + [touch])
    assert rows(too_late) == [f"{SHORT_ID},sell,109.06,119.13,76.33,{PLACED},expired,,,,,"]
    still_pending = backtest([FLAT] * 5)
    assert rows(still_pending)[0].split(",")[6] == "pending"


def test_limit_at_or_below_the_market_moves_10_points_beyond_it() -> None:
    result = backtest([FLAT], close_e=110.0)  # sell limit 109.06 <= bid 110.00: moved to 110.10
    assert rows(result) == [f"{SHORT_ID},sell,110.10,119.13,76.33,{PLACED},pending,,,,,"]


def test_limit_moved_beyond_its_stop_is_refused() -> None:
    result = backtest([FLAT], close_e=119.05)  # 119.15 would be above the stop 119.13
    assert rows(result) == [f"{SHORT_ID},sell,119.15,119.13,76.33,{PLACED},refused,,,,,"]
    assert result.refusals == {"moved_beyond_stop": 1}


def statuses(result: BacktestResult) -> dict[str, str]:
    return {t.setup.setup_id: t.status for t in result.trades}


def test_a_new_setup_cancels_the_pending_one_in_its_direction() -> None:
    # a second, smaller short pattern below the first order's entry (it never fills)
    result = backtest([*pattern_bars(99.0, 0.3, 0.9), FLAT])
    assert statuses(result)[SHORT_ID] == "cancelled"
    assert statuses(result)["TEST_H1_short_2024-01-04T19:00Z"] == "pending"
    assert statuses(result)["TEST_H1_long_2024-01-04T12:00Z"] == "pending"  # the other direction: kept


def test_a_refused_setup_cancels_nothing() -> None:
    # the second short's final bar jumps to 105.80: its limit moves to 105.90, above its stop 104.44
    result = backtest([*pattern_bars(99.0, 0.3, 8.0), FLAT])
    second = next(t for t in result.trades if t.setup.setup_id == "TEST_H1_short_2024-01-04T19:00Z")
    assert (second.status, second.entry, second.setup.sl) == ("refused", Decimal("105.90"), Decimal("104.44"))
    assert statuses(result)[SHORT_ID] == "pending"
    # and the long that came meanwhile was replaced by the next long
    assert statuses(result)["TEST_H1_long_2024-01-04T12:00Z"] == "cancelled"
    assert statuses(result)["TEST_H1_long_2024-01-04T23:00Z"] == "pending"
