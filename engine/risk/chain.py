"""The pre-trade risk chain: every order passes one ordered list of small gates.

A gate looks at one fact (the global pause, the account's trading state, the market's hours,
the subscriber's plan, the drawdown tier, ...) and either lets the order through (``None``) or
refuses it with a named ``Refusal``: the gate's name, a stable code (stored on the order as
``reason_code`` and rendered in the subscriber's language by the bot) and the facts behind it
(``params``). The first refusal wins.

Adding a gate is one class and one line: write a class with a ``name`` and an async ``check``,
then add it to ``standard_gates`` (or, for a gate a feature owns, ``chain.add(Gate(), before=...)``
where that feature is built, as billing does for the entitlement gate; the subscriber's own
limits, ``engine.risk.limit_gates``, follow the standard gates in every execution chain).

The same chain answers three questions:
- at execution (``ExecutionService``): may this order go to the broker now? (``order`` set);
- once the order is sized, just before it is claimed for sending: does it still fit? Only the
  ``SizedGate`` gates are asked again (``check_sized``), with ``sized`` set, inside the claim's
  transaction and under the account's lock, so two orders of one account cannot both take the
  last free place of an exposure limit;
- before an automatic approval (``AutoExecutor``): would an order for this signal pass? (no
  order yet: gates that need one let it through).
An order that only reduces exposure (``reduces=True``) passes the gates of a ``reducing`` account
but not of a ``halted`` one. Close-all and the drawdown guard do not pass through this chain:
they are the risk controls themselves.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

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
class SizedOrder:
    """The order as order construction sized it (``engine.execution.orders.BuiltOrder``)."""

    volume: Decimal
    risk_amount: Decimal  # account currency lost at the stop
    equity: Decimal  # the account's equity it was sized on
    rr: Decimal  # reward:risk from the order price to the furthest target
    currency: str


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
    sized: SizedOrder | None = None  # set once the order is sized (``RiskChain.check_sized``)
    memo: dict[str, Any] = field(default_factory=dict)  # what one gate read, for the next ones


class Gate(Protocol):
    name: str

    async def check(self, ctx: TradeContext) -> Refusal | None: ...


class SizedGate(ABC):
    """A gate asked twice: with the other gates, and again once the order is sized (``ctx.sized``),
    just before the claim and under the account's lock. Exposure limits are such gates: another
    order of the same account may have taken the room between the two questions."""

    name: str

    @abstractmethod
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

    @property
    def sized_gates(self) -> list[SizedGate]:
        return [gate for gate in self._gates if isinstance(gate, SizedGate)]

    async def check(self, ctx: TradeContext) -> Refusal | None:
        for gate in self._gates:
            refusal = await gate.check(ctx)
            if refusal is not None:
                return refusal
        return None

    async def check_sized(self, ctx: TradeContext) -> Refusal | None:
        """The ``SizedGate`` gates again, for the sized order (``ctx.sized`` set)."""
        if ctx.sized is None:
            raise ValueError("check_sized needs the sized order")
        for gate in self.sized_gates:
            refusal = await gate.check(ctx)
            if refusal is not None:
                return refusal
        return None
