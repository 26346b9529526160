from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from engine.risk.drawdown import Action, Limits, Step, Tier, drawdown_percent, next_step

money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("10000000"), places=2)
percent = st.decimals(min_value=Decimal("1"), max_value=Decimal("99"), places=2)


@st.composite
def limits(draw, with_floor=st.booleans()):
    cap = draw(percent)
    soft = draw(st.decimals(min_value=Decimal("0.5"), max_value=cap, places=2))
    floor = draw(st.one_of(st.none(), money)) if draw(with_floor) else None
    return Limits(cap=cap, soft=soft, floor=floor)


def test_examples():
    assert drawdown_percent(Decimal(10000), Decimal(8000)) == Decimal(20)
    assert drawdown_percent(Decimal(10000), Decimal(10000)) == 0
    assert drawdown_percent(Decimal(10000), Decimal(12000)) == 0  # a gain is no drawdown
    assert drawdown_percent(None, Decimal(5)) == 0 and drawdown_percent(Decimal(0), Decimal(5)) == 0
    assert drawdown_percent(Decimal(10000), Decimal(-500)) == Decimal(105)
    lim = Limits(cap=Decimal(20), soft=Decimal(10))
    assert lim.rearm == Decimal(10) and lim.soft_exit == Decimal(9)
    assert Limits(cap=Decimal(20), soft=Decimal(15)).rearm == Decimal(10)
    assert Limits(cap=Decimal(20), soft=Decimal(4)).rearm == Decimal(4)
    with pytest.raises(ValueError):
        Limits(cap=Decimal(20), soft=Decimal(25))


@given(ref=money, loss=st.decimals(min_value=0, max_value=100, places=4))
def test_drawdown_of_a_known_loss_is_that_loss(ref, loss):
    equity = ref - ref * loss / 100
    assert abs(drawdown_percent(ref, equity) - loss) < Decimal("1e-20")


@given(ref=money, a=money, b=money)
def test_drawdown_is_monotonic_and_bounded(ref, a, b):
    low, high = min(a, b), max(a, b)
    assert drawdown_percent(ref, low) >= drawdown_percent(ref, high) >= 0
    assert drawdown_percent(ref, low) <= 100  # equity >= 0


@given(lim=limits(), dd=st.decimals(min_value=0, max_value=150, places=3), equity=money)
def test_single_step_rules(lim, dd, equity):
    for tier in Tier:
        step = next_step(tier, dd, equity, lim)
        if lim.breached(dd, equity):
            assert step.tier is Tier.HARD  # past the cap or the floor: always hard
            assert (step.action is Action.TRIGGER) == (tier is not Tier.HARD)
        if step.action is Action.REARM:
            assert tier is Tier.HARD and dd < lim.cap / 2 and not lim.breached(dd, equity)
        if step.action is Action.WARN:
            assert tier is Tier.OK and lim.soft <= dd < lim.cap
        if tier is Tier.HARD and dd >= lim.cap / 2:
            assert step == Step(Tier.HARD, Action.NONE)  # never re-arms at or above half the cap


@settings(max_examples=300)
@given(
    lim=limits(),
    path=st.lists(
        st.tuples(st.decimals(min_value=0, max_value=120, places=2), money), min_size=1, max_size=60
    ),
)
def test_sequences_never_trigger_twice_without_rearm(lim, path):
    tier = Tier.OK
    armed = True
    warned = False
    for dd, equity in path:
        step = next_step(tier, dd, equity, lim)
        if step.action is Action.TRIGGER:
            assert armed, "triggered twice without re-arming"
            armed = False
        if step.action is Action.REARM:
            assert not armed and dd < lim.cap / 2 and dd < lim.soft
            armed = True
        if step.action is Action.WARN:
            assert not warned, "warned twice without clearing"
            warned = True
        if step.action in (Action.CLEAR, Action.REARM, Action.TRIGGER):
            warned = False
        assert (step.tier is Tier.HARD) == (not armed)
        tier = step.tier


@given(lim=limits(with_floor=st.just(False)))
def test_hovering_at_the_soft_tier_warns_once(lim):
    assume(lim.soft < lim.cap)
    wiggle = [lim.soft, lim.soft - Decimal("0.01"), lim.soft, lim.soft - Decimal("0.01")] * 5
    actions = []
    tier = Tier.OK
    for dd in wiggle:
        step = next_step(tier, dd, Decimal(1000), lim)
        actions.append(step.action)
        tier = step.tier
    assert actions.count(Action.WARN) == 1


def test_floor_acts_like_the_hard_tier_and_rearms_only_above_it():
    lim = Limits(cap=Decimal(50), soft=Decimal(25), floor=Decimal(9000))
    assert next_step(Tier.OK, Decimal(1), Decimal(9000), lim) == Step(Tier.HARD, Action.TRIGGER)
    assert next_step(Tier.HARD, Decimal(0), Decimal(8999), lim) == Step(Tier.HARD, Action.NONE)
    assert next_step(Tier.HARD, Decimal(0), Decimal("9000.01"), lim) == Step(Tier.OK, Action.REARM)
