"""mt5sim's bar history: ``copy_rates_from_pos`` shaped as the real package's, deterministic per seed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

import mt5sim
from mt5sim import control

AT = datetime(2026, 3, 4, 12, 30, tzinfo=UTC)  # a Wednesday: the FX market is open


def terminal(tmp_path: Path, name: str, seed: int | None = None) -> Path:
    path = tmp_path / f"{name}.sqlite3"
    control.create_account(1, "pw", state=path)
    control.set_time(AT, state=path)
    if seed is not None:
        control.set_seed(seed, state=path)
    assert mt5sim.initialize(str(path), login=1, password="pw")
    return path


def test_h1_bars_are_closed_hours_oldest_first_and_the_same_for_the_same_seed(tmp_path: Path) -> None:
    terminal(tmp_path, "a")
    first = mt5sim.copy_rates_from_pos("XAUUSD", mt5sim.TIMEFRAME_H1, 1, 48)
    terminal(tmp_path, "b")
    again = mt5sim.copy_rates_from_pos("XAUUSD", mt5sim.TIMEFRAME_H1, 1, 48)
    assert first.dtype.names == (
        "time",
        "open",
        "high",
        "low",
        "close",
        "tick_volume",
        "spread",
        "real_volume",
    )
    assert np.array_equal(first, again)
    assert int(first["time"][-1]) == int((AT - timedelta(minutes=30, hours=1)).timestamp())  # 11:00, closed
    assert (np.diff(first["time"]) == 3600).all()
    assert (first["high"] >= np.maximum(first["open"], first["close"])).all()
    assert (first["low"] <= np.minimum(first["open"], first["close"])).all()
    terminal(tmp_path, "c", seed=99)
    other = mt5sim.copy_rates_from_pos("XAUUSD", mt5sim.TIMEFRAME_H1, 1, 48)
    assert not np.array_equal(first["close"], other["close"])


def test_the_forming_bar_closes_at_the_current_bid(tmp_path: Path) -> None:
    terminal(tmp_path, "a")
    forming = mt5sim.copy_rates_from_pos("EURUSD", mt5sim.TIMEFRAME_H1, 0, 1)
    assert int(forming["time"][0]) == int(datetime(2026, 3, 4, 12, tzinfo=UTC).timestamp())
    assert forming["close"][0] == mt5sim.symbol_info_tick("EURUSD").bid


def test_no_bars_while_the_market_is_closed(tmp_path: Path) -> None:
    path = terminal(tmp_path, "a")
    control.set_time(datetime(2026, 3, 9, 1, 30, tzinfo=UTC), state=path)  # Sunday 21:30 New York
    rates = mt5sim.copy_rates_from_pos("EURUSD", mt5sim.TIMEFRAME_H1, 1, 10)
    hours = [datetime.fromtimestamp(int(t), UTC) for t in rates["time"]]
    assert hours[-1] == datetime(2026, 3, 9, 0, tzinfo=UTC)
    assert hours[-4] == datetime(2026, 3, 8, 21, tzinfo=UTC)  # Sunday 17:00 New York: the open
    assert hours[-5] == datetime(2026, 3, 6, 21, tzinfo=UTC)  # Friday 16:00 New York: the last bar


def test_a_faster_bar_clock_closes_an_hourly_bar_every_few_seconds(tmp_path: Path) -> None:
    path = terminal(tmp_path, "a")
    control.set_bar_clock(10, state=path)
    before = mt5sim.copy_rates_from_pos("XAUUSD", mt5sim.TIMEFRAME_H1, 1, 1)["time"][0]
    control.set_time(AT + timedelta(seconds=30), state=path)
    after = mt5sim.copy_rates_from_pos("XAUUSD", mt5sim.TIMEFRAME_H1, 1, 1)["time"][0]
    assert after - before == 3 * 3600


def test_bad_arguments_answer_none_with_last_error(tmp_path: Path) -> None:
    terminal(tmp_path, "a")
    assert mt5sim.copy_rates_from_pos("XAUUSD", 12345, 1, 10) is None
    assert mt5sim.last_error()[0] == mt5sim.RES_E_INVALID_PARAMS
    assert mt5sim.copy_rates_from_pos("NOPE", mt5sim.TIMEFRAME_H1, 1, 10) is None
    assert mt5sim.last_error()[0] == mt5sim.RES_E_NOT_FOUND
