"""Properties: live evaluation bar by bar and the backtest see the same setups, whatever the chunks."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.backtest.simulator import run_backtest
from engine.backtest.specs import backtest_spec
from engine.strategies.base import Bars
from engine.strategies.fib_rsi import FibRsi
from engine.strategies.rsi import RsiState, rsi, rsi_extend
from tests.support.fib_rsi_scenarios import T0, reference_rsi


def walk(seed: int, n: int, vol: float) -> Bars:
    rng = np.random.default_rng(seed)
    close = np.round(100 * np.exp(np.cumsum(rng.normal(0, vol, n))), 2)
    opens = np.concatenate(([100.0], close[:-1]))
    high = np.round(np.maximum(opens, close) + rng.uniform(0, 0.3, n), 2)
    low = np.round(np.minimum(opens, close) - rng.uniform(0, 0.3, n), 2)
    hours = np.cumsum(rng.choice([1] * 38 + [2, 49], n))  # mostly hourly, a few gaps
    return Bars.from_arrays(T0 + 3600 * hours, opens, high, low, close)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(250, 900), vol=st.sampled_from([0.004, 0.01]))
def test_live_bar_by_bar_equals_the_backtest(seed: int, n: int, vol: float) -> None:
    bars = walk(seed, n, vol)
    live = FibRsi("XAUUSD", Decimal("0.01"))
    seen = []
    for k in range(n):  # what the producer does: one new closed bar at a time
        seen += live.update(bars.slice(k, k + 1))
    spec = backtest_spec("XAUUSD")
    result = run_backtest(
        FibRsi("XAUUSD", spec.tick_size), bars, spec, balance=Decimal(10000), risk_percent=Decimal(2)
    )
    assert [t.setup for t in result.trades] == sorted(seen, key=lambda s: (s.placed_at, s.setup_id))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cuts=st.lists(st.integers(1, 399), max_size=12))
def test_rsi_in_chunks_is_the_same_floats_as_one_pass(seed: int, cuts: list[int]) -> None:
    close = walk(seed, 400, 0.01).close
    whole = rsi(close)
    assert np.array_equal(whole, reference_rsi(close), equal_nan=True)
    state, parts = RsiState(), []
    for a, b in zip([0, *sorted(set(cuts))], [*sorted(set(cuts)), 400], strict=True):
        values, state = rsi_extend(state, close[a:b])
        parts.append(values)
    assert np.array_equal(np.concatenate(parts), whole, equal_nan=True)


def test_the_property_examples_are_not_empty() -> None:
    bars = walk(1, 900, 0.01)
    assert len(FibRsi("XAUUSD", Decimal("0.01")).update(bars)) >= 3
