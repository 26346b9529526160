import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.states import (
    DECISION,
    ORDER,
    PAYMENT,
    POSITION,
    SIGNAL,
    SUBSCRIPTION,
    USER,
    DecisionStatus,
    IllegalTransition,
    OrderStatus,
    PositionStatus,
    SignalStatus,
)

MACHINES = [SIGNAL, DECISION, ORDER, POSITION, USER, SUBSCRIPTION, PAYMENT]


class Row:
    def __init__(self, status):
        self.status = status


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.name)
def test_every_state_is_reachable_from_the_initial_one(machine):
    initial = next(iter(machine.states))
    seen, frontier = {initial}, [initial]
    while frontier:
        for nxt in machine.transitions[frontier.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    assert seen == set(machine.states)


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.name)
@given(data=st.data())
def test_random_walks_obey_the_table(machine, data):
    row = Row(next(iter(machine.states)).value)
    for _ in range(12):
        target = data.draw(st.sampled_from(list(machine.states)))
        allowed = target in machine.transitions[machine.states(row.status)]
        if allowed:
            machine.move(row, target)
            assert row.status == target.value
        else:
            before = row.status
            with pytest.raises(IllegalTransition):
                machine.move(row, target)
            assert row.status == before  # an illegal move changes nothing


def test_specific_rules_that_protect_money():
    # A filled order can never be resubmitted, and an unknown outcome cannot go straight back to submitting:
    assert not ORDER.can(OrderStatus.FILLED, OrderStatus.SUBMITTING)
    assert not ORDER.can(OrderStatus.UNKNOWN, OrderStatus.SUBMITTING)
    assert ORDER.can(OrderStatus.UNKNOWN, OrderStatus.RETRY_WAIT)
    assert ORDER.is_final(OrderStatus.FAILED)
    # A decision is made once:
    assert not DECISION.can(DecisionStatus.APPROVED, DecisionStatus.REJECTED)
    assert not DECISION.can(DecisionStatus.REJECTED, DecisionStatus.APPROVED)
    assert not SIGNAL.can(SignalStatus.EXPIRED, SignalStatus.DISPATCHED)
    assert not POSITION.can(PositionStatus.CLOSED, PositionStatus.OPEN)


def test_illegal_transition_message():
    with pytest.raises(IllegalTransition, match="order: illegal transition filled -> submitting"):
        ORDER.check("filled", "submitting")


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.name)
def test_sources_are_exactly_the_states_that_may_move_to_the_target(machine):
    for target in machine.states:
        expected = {s.value for s in machine.states if machine.can(s, target)}
        assert machine.sources(target) == expected


def test_a_user_who_left_can_come_back_but_never_moves_to_the_same_status():
    row = Row("left")
    USER.move(row, "active")
    assert row.status == "active"
    with pytest.raises(IllegalTransition):
        USER.move(row, "active")


def test_a_refunded_payment_stays_refunded():
    row = Row("paid")
    PAYMENT.move(row, "refunded")
    with pytest.raises(IllegalTransition):
        PAYMENT.move(row, "paid")
