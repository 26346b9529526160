"""Break-even and trailing: a stop only ever tightens (property tests on the pure rules)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from engine.brokers.base import Side
from engine.loop.stop_rules import breakeven_stop, desired_stop, tighter

POINT = Decimal("0.00001")
prices = st.integers(min_value=100_000, max_value=120_000).map(lambda n: Decimal(n) * POINT)


def test_break_even_for_a_sell_includes_the_spread() -> None:
    assert breakeven_stop(Side.BUY, Decimal("1.10010"), Decimal("0.00010")) == Decimal("1.10010")
    assert breakeven_stop(Side.SELL, Decimal("1.10000"), Decimal("0.00010")) == Decimal("1.10010")


def test_nothing_moves_before_the_first_target() -> None:
    stop = desired_stop(
        Side.BUY, Decimal("1.09800"), entry=Decimal("1.10010"), spread=Decimal("0.0001"),
        best=Decimal("1.10500"), point=POINT, targets_hit=0, breakeven_after=1, trail_points=100,
    )  # fmt: skip
    assert stop == Decimal("1.09800")


def test_trailing_after_the_first_target_follows_the_best_price() -> None:
    stop = desired_stop(
        Side.BUY, Decimal("1.09800"), entry=Decimal("1.10010"), spread=Decimal("0.0001"),
        best=Decimal("1.10500"), point=POINT, targets_hit=1, breakeven_after=2, trail_points=100,
    )  # fmt: skip
    assert stop == Decimal("1.10400")


@given(
    side=st.sampled_from([Side.BUY, Side.SELL]),
    start=prices,
    path=st.lists(prices, min_size=1, max_size=40),
    trail=st.integers(min_value=1, max_value=5000),
    hits=st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=40),
    breakeven_after=st.integers(min_value=0, max_value=4),
)
def test_a_managed_stop_only_ever_tightens(side, start, path, trail, hits, breakeven_after) -> None:
    stop: Decimal | None = start
    best = path[0]
    hit = 0
    for n, price in enumerate(path):
        best = max(best, price) if side is Side.BUY else min(best, price)
        hit = max(hit, hits[n % len(hits)])
        new = desired_stop(
            side, stop, entry=start, spread=Decimal("0.0001"), best=best, point=POINT,
            targets_hit=hit, breakeven_after=breakeven_after, trail_points=trail,
        )  # fmt: skip
        assert tighter(side, stop, new) == new  # never looser than before
        stop = new
