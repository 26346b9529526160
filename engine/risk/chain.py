"""The pre-trade risk chain: every order passes one ordered list of small gates.

A gate looks at one fact (the global pause, the account's trading state, the market's hours,
the subscriber's plan, the drawdown tier, ...) and either lets the order through (``None``) or
refuses it with a named ``Refusal``: the gate's name, a stable code (stored on the order as
``reason_code`` and rendered in the subscriber's language by the bot) and the facts behind it
(``params``). The first refusal wins.

Adding a gate is one class and one line: write a class with a ``name`` and an async ``check``,
then add it to ``standard_gates`` (or, for a gate a feature owns, ``chain.add(Gate(), before=...)``
where that feature is built, as billing does for the entitlement gate).

The same chain answers two questions:
- at execution (``ExecutionService``): may this order go to the broker now? (``order`` set);
- before an automatic approval (``AutoExecutor``): would an order for this signal pass? (no
  order yet: gates that need one let it through).
An order that only reduces exposure (``reduces=True``) passes the gates of a ``reducing`` account
but not of a ``halted`` one. Close-all and the drawdown guard do not pass through this chain:
they are the risk controls themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from engine.accounts.symbols import resolve_symbol
from engine.risk.control import is_paused
from engine.states import OrderStatus, TradingState
from engine.store.models import ExecutionAccount, Order, Signal, User

if TYPE_CHECKING:
    from engine.execution.orders import OrderRules


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an order may not go out: which gate, a stable code, an English sentence, the facts."""

    gate: str
    code: str
    message: str
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TradeContext:
    """What the gates may read about one (would-be) order; ``session`` is the caller's transaction."""

    session: AsyncSession
    account: ExecutionAccount
    user: User | None  # None: the operator's own account
    signal: Signal | None
    now: datetime
    order: Order | None = None  # None: asked before an order exists (automatic approval)
    via: str = "dm"  # how the decision was taken: dm | channel | auto
    reduces: bool = False  # the order only reduces exposure (a close)


class Gate(Protocol):
    name: str

    async def check(self, ctx: TradeContext) -> Refusal | None: ...


class GlobalPauseGate:
    """An admin's /pause (or `tradebot pause`): nothing new goes out anywhere."""

    name = "global_pause"

    async def check(self, ctx: TradeContext) -> Refusal | None:
        if ctx.reduces or not await is_paused(ctx.session):
            return None
        return Refusal(self.name, "paused", "trading is paused by an admin")


class AccountStateGate:
    """The account's trading state: ``reducing`` takes closes only, ``halted`` nothing."""

    name = "account_state"

    async def check(self, ctx: TradeContext) -> Refusal | None:
        state = TradingState(ctx.account.trading_state)
        if state is TradingState.ACTIVE or (state is TradingState.REDUCING and ctx.reduces):
            return None
        why = ctx.account.paused_reason or "paused"
        if state is TradingState.REDUCING:
            return Refusal(
                self.name,
                "account_reducing",
                f"this account only closes positions now ({why})",
                {"reason": why},
            )
        return Refusal(
            self.name, "account_halted", f"trading on this account is halted ({why})", {"reason": why}
        )


class SubscriberGate:
    """The subscriber behind the order must still be active (not blocked, not gone)."""

    name = "subscriber"

    async def check(self, ctx: TradeContext) -> Refusal | None:
        if ctx.user is None or ctx.user.status == "active" or ctx.reduces:
            return None
        return Refusal(self.name, "user_inactive", "the subscriber is not active")


class SignalFreshGate:
    """An order never sent yet whose signal has expired is not sent at all."""

    name = "signal_fresh"

    async def check(self, ctx: TradeContext) -> Refusal | None:
        signal, order = ctx.signal, ctx.order
        if signal is None or signal.expires_at >= ctx.now:
            return None
        if order is not None and (order.status != OrderStatus.PENDING or order.attempts > 0):
            return None  # already under way: retries of a sent order are not cut short
        return Refusal(self.name, "expired", "the signal expired before it could be executed")


class MarketHoursGate:
    """The market of the signal's instrument must be open (``MARKET_HOURS``), as the broker requires."""

    name = "market_hours"

    def __init__(self, rules: Callable[[ExecutionAccount], OrderRules]) -> None:
        self._rules = rules

    async def check(self, ctx: TradeContext) -> Refusal | None:
        if ctx.signal is None or ctx.reduces:
            return None
        rules = self._rules(ctx.account)
        if ctx.signal.order_type != "market" and rules.pending_when_closed:
            return None
        symbol = resolve_symbol(ctx.account, ctx.signal.instrument)
        schedule = rules.market_hours.schedule_for(symbol)
        if schedule.is_open(ctx.now):
            return None
        opens = schedule.next_open(ctx.now)
        return Refusal(
            self.name,
            "market_closed",
            f"the {symbol} market is closed ({schedule.describe()}); it opens at {opens.isoformat()}",
            {"symbol": symbol, "opens_at": opens.isoformat(), "schedule": schedule.describe()},
        )


class DrawdownGate:
    """Past the soft drawdown tier no new position opens (the guard acts on the hard tier)."""

    name = "drawdown"

    async def check(self, ctx: TradeContext) -> Refusal | None:
        tier = ctx.account.drawdown_state
        if ctx.reduces or tier not in ("soft", "hard"):
            return None
        return Refusal(
            self.name,
            "drawdown",
            f"the account is past its drawdown limit ({tier} tier)",
            {"tier": tier},
        )


def standard_gates(rules: Callable[[ExecutionAccount], OrderRules]) -> list[Gate]:
    """The chain every order passes, in order (billing adds its entitlement gate before drawdown)."""
    return [
        GlobalPauseGate(),
        AccountStateGate(),
        SubscriberGate(),
        SignalFreshGate(),
        MarketHoursGate(rules),
        DrawdownGate(),
    ]


class RiskChain:
    """An ordered list of gates; ``check`` returns the first refusal, or None when all pass."""

    def __init__(self, gates: Iterable[Gate]) -> None:
        self._gates: list[Gate] = []
        for gate in gates:
            self.add(gate)

    @property
    def names(self) -> list[str]:
        return [gate.name for gate in self._gates]

    def add(self, gate: Gate, *, before: str | None = None) -> None:
        """Add a gate at the end, or just before the gate named ``before``; names are unique."""
        if gate.name in self.names:
            raise ValueError(f"the risk chain already has a gate named {gate.name!r}")
        if before is None:
            self._gates.append(gate)
            return
        if before not in self.names:
            raise ValueError(f"the risk chain has no gate named {before!r}")
        self._gates.insert(self.names.index(before), gate)

    async def check(self, ctx: TradeContext) -> Refusal | None:
        for gate in self._gates:
            refusal = await gate.check(ctx)
            if refusal is not None:
                return refusal
        return None
