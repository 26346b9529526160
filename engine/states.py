"""The state machines of signal, decision, order, position, user and subscription: each defined once, here.

Code never assigns a ``status`` column directly; it calls ``MACHINE.move(row, NEW)``, which
checks the transition and raises ``IllegalTransition`` for one the machine does not allow.
A set-based ``UPDATE`` moves only rows whose status is in ``MACHINE.sources(NEW)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Generic, TypeVar


class SignalStatus(StrEnum):
    ACCEPTED = "accepted"  # stored, waiting for fan-out
    DISPATCHED = "dispatched"  # sent to subscribers (or posted to the channel)
    EXPIRED = "expired"  # approval window over
    CANCELLED = "cancelled"


class DecisionStatus(StrEnum):
    PENDING = "pending"  # delivered, no answer yet
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class OrderStatus(StrEnum):
    PENDING = "pending"  # approved, not yet sent to the broker
    SUBMITTING = "submitting"  # committed before the broker call; in flight
    UNKNOWN = "unknown"  # no reliable answer: must be looked up at the broker before any retry
    RETRY_WAIT = "retry_wait"  # transient failure, confirmed absent at the broker; will resend
    PLACED = "placed"  # pending limit/stop order resting at the broker
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    REFUSED = "refused"  # refused by our rules or by the broker; final
    FAILED = "failed"  # retries exhausted; final, ops alerted
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class PositionStatus(StrEnum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class ChangeStatus(StrEnum):
    """One update applied to one position or order (``PositionChange.status``)."""

    PENDING = "pending"  # planned, not yet sent (or sent, answer absent at the terminal: send again)
    CLAIMED = "claimed"  # committed before the broker call; in flight
    UNKNOWN = "unknown"  # no reliable answer: look at the terminal before anything is sent again
    APPLIED = "applied"
    REFUSED = "refused"  # refused for this position (stops level, market closed, gone...); final


class TradingState(StrEnum):
    """What an execution account may do (``ExecutionAccount.trading_state``)."""

    ACTIVE = "active"  # opens and closes
    REDUCING = "reducing"  # closes only: new orders are refused (an admin's /pause of the account)
    HALTED = "halted"  # no order passes the risk chain, closes included; close-all and the drawdown
    # guard still act on it (the drawdown guard's hard tier halts the account)


class UserStatus(StrEnum):
    ACTIVE = "active"  # receives signals (once consented)
    BLOCKED = "blocked"  # the user blocked the bot (403 or my_chat_member "kicked")
    LEFT = "left"  # the user sent /stop
    BANNED = (
        "banned"  # set by the operator in the database: no signals, no purchases, /start does not undo it
    )


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"  # paid period running (or in the renewal grace)
    EXPIRED = "expired"  # the period ended; the user is on the default plan
    REVOKED = "revoked"  # refunded before the period ended


class PaymentStatus(StrEnum):
    PAID = "paid"
    REFUNDED = "refunded"


S = TypeVar("S", bound=StrEnum)


class IllegalTransition(Exception):
    def __init__(self, machine: str, current: str, target: str) -> None:
        super().__init__(f"{machine}: illegal transition {current} -> {target}")
        self.machine = machine
        self.current = current
        self.target = target


class StateMachine(Generic[S]):
    def __init__(self, name: str, states: type[S], transitions: Mapping[S, frozenset[S]]) -> None:
        missing = set(states) - set(transitions)
        if missing:
            raise ValueError(f"{name}: states without a transition entry: {sorted(missing)}")
        self.name = name
        self.states = states
        self.transitions = dict(transitions)

    def can(self, current: S | str, target: S | str) -> bool:
        return self.states(target) in self.transitions[self.states(current)]

    def check(self, current: S | str, target: S | str) -> S:
        if not self.can(current, target):
            raise IllegalTransition(self.name, str(current), str(target))
        return self.states(target)

    def sources(self, target: S | str) -> frozenset[str]:
        """The states that may move to ``target``: the ``WHERE status IN (...)`` of a set-based update."""
        goal = self.states(target)
        return frozenset(state.value for state, allowed in self.transitions.items() if goal in allowed)

    def is_final(self, state: S | str) -> bool:
        return not self.transitions[self.states(state)]

    def move(self, row: Any, target: S | str, attr: str = "status") -> None:
        """Set ``row.<attr>`` to ``target`` if the machine allows it from the current value."""
        setattr(row, attr, self.check(getattr(row, attr), target).value)


def _f(*states: Any) -> frozenset[Any]:
    return frozenset(states)


SIGNAL = StateMachine(
    "signal",
    SignalStatus,
    {
        SignalStatus.ACCEPTED: _f(SignalStatus.DISPATCHED, SignalStatus.EXPIRED, SignalStatus.CANCELLED),
        SignalStatus.DISPATCHED: _f(SignalStatus.EXPIRED, SignalStatus.CANCELLED),
        SignalStatus.EXPIRED: _f(),
        SignalStatus.CANCELLED: _f(),
    },
)

DECISION = StateMachine(
    "decision",
    DecisionStatus,
    {
        DecisionStatus.PENDING: _f(DecisionStatus.APPROVED, DecisionStatus.REJECTED, DecisionStatus.EXPIRED),
        DecisionStatus.APPROVED: _f(),
        DecisionStatus.REJECTED: _f(),
        DecisionStatus.EXPIRED: _f(),
    },
)

_O = OrderStatus
ORDER = StateMachine(
    "order",
    OrderStatus,
    {
        # PENDING -> RETRY_WAIT: the broker could not be reached before anything was sent.
        _O.PENDING: _f(_O.SUBMITTING, _O.REFUSED, _O.CANCELLED, _O.RETRY_WAIT, _O.FAILED),
        _O.SUBMITTING: _f(
            _O.PLACED, _O.PARTIALLY_FILLED, _O.FILLED, _O.REFUSED, _O.UNKNOWN, _O.RETRY_WAIT, _O.FAILED
        ),
        _O.UNKNOWN: _f(_O.PLACED, _O.PARTIALLY_FILLED, _O.FILLED, _O.REFUSED, _O.RETRY_WAIT, _O.FAILED),
        _O.RETRY_WAIT: _f(_O.SUBMITTING, _O.FAILED, _O.CANCELLED),
        _O.PLACED: _f(_O.PARTIALLY_FILLED, _O.FILLED, _O.CANCELLED, _O.EXPIRED),
        _O.PARTIALLY_FILLED: _f(_O.FILLED),
        _O.FILLED: _f(),
        _O.REFUSED: _f(),
        _O.FAILED: _f(),
        _O.CANCELLED: _f(),
        _O.EXPIRED: _f(),
    },
)

POSITION = StateMachine(
    "position",
    PositionStatus,
    {
        PositionStatus.OPEN: _f(PositionStatus.CLOSING, PositionStatus.CLOSED),
        PositionStatus.CLOSING: _f(PositionStatus.CLOSED, PositionStatus.OPEN),
        PositionStatus.CLOSED: _f(),
    },
)

_C = ChangeStatus
CHANGE = StateMachine(
    "change",
    ChangeStatus,
    {
        _C.PENDING: _f(_C.CLAIMED, _C.REFUSED, _C.APPLIED),
        _C.CLAIMED: _f(_C.APPLIED, _C.REFUSED, _C.UNKNOWN, _C.PENDING),
        _C.UNKNOWN: _f(_C.APPLIED, _C.REFUSED, _C.PENDING),
        _C.APPLIED: _f(),
        _C.REFUSED: _f(),
    },
)

_T = TradingState
TRADING = StateMachine(
    "trading",
    TradingState,
    {
        _T.ACTIVE: _f(_T.REDUCING, _T.HALTED),
        _T.REDUCING: _f(_T.ACTIVE, _T.HALTED),
        _T.HALTED: _f(_T.ACTIVE, _T.REDUCING),
    },
)

_U = UserStatus
USER = StateMachine(
    "user",
    UserStatus,
    {
        _U.ACTIVE: _f(_U.BLOCKED, _U.LEFT, _U.BANNED),
        _U.BLOCKED: _f(_U.ACTIVE, _U.LEFT, _U.BANNED),  # /start again, or /stop after unblocking
        _U.LEFT: _f(_U.ACTIVE, _U.BLOCKED, _U.BANNED),
        _U.BANNED: _f(),
    },
)

_S = SubscriptionStatus
SUBSCRIPTION = StateMachine(
    "subscription",
    SubscriptionStatus,
    {
        _S.ACTIVE: _f(_S.EXPIRED, _S.REVOKED),  # an extension keeps it ACTIVE (no transition)
        _S.EXPIRED: _f(_S.ACTIVE),  # paid again
        _S.REVOKED: _f(_S.ACTIVE),
    },
)

PAYMENT = StateMachine(
    "payment",
    PaymentStatus,
    {PaymentStatus.PAID: _f(PaymentStatus.REFUNDED), PaymentStatus.REFUNDED: _f()},
)

# Orders in these states have no reliable broker outcome yet: resolve by lookup, never resend blindly.
ORDER_UNRESOLVED = frozenset({OrderStatus.SUBMITTING, OrderStatus.UNKNOWN})
ORDER_LIVE = frozenset({OrderStatus.PLACED, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED})
