"""The subscriber's own limits as gates of the pre-trade risk chain (``engine.risk.chain``).

They follow the standard gates in every execution chain (``limit_gates``), each with its own name,
which is also its refusal code (stored on the order, rendered for the subscriber by the bot with
the facts in ``params``):

| gate and code | refuses when |
|---|---|
| ``limit_daily_loss`` | the subscriber's daily loss limit was reached today (until the next trading day) |
| ``limit_instrument`` | the subscriber turned the signal's instrument off |
| ``limit_min_rr`` | the signal's reward:risk is below the subscriber's minimum (a market signal without an entry: the order's, once sized) |
| ``limit_max_positions`` | the account already holds the subscriber's maximum number of open trades |
| ``limit_open_risk`` | this order's risk on top of the open trades' would pass the maximum total open risk |

A *trade* is what one decision opened: its positions (one per target leg on a hedging account)
and its orders sent or resting at the broker; a position opened by hand in the terminal is a
trade of its own. The open risk of a position is what it loses at its current stop: the risk its
order was sized with, scaled by the volume left and the stop's distance from the open price now
(a stop at or past the entry risks nothing; a position whose stop was removed counts at its
order's stop). Hand-made positions have no sizing to scale and add no risk. Orders sent or
resting count with their whole risk.

The last three are ``SizedGate``: asked again with the sized order inside the claim's
transaction, under the account's lock (``ExecutionService``), so two orders of one account cannot
both take the last free place. Closes (``reduces``) and the operator's own accounts (no user)
pass every one of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select

from engine.risk.chain import Gate, Refusal, SizedGate, TradeContext
from engine.risk.limits import EffectiveLimits, LimitDefaults, limits_of, rounded_rr, signal_reward_risk
from engine.states import OrderStatus, PositionStatus
from engine.store.models import Order, Position

HUNDRED = Decimal(100)
# Orders that hold exposure without a position yet: being sent, outcome unknown, resting.
_LIVE_ORDERS = [OrderStatus.SUBMITTING.value, OrderStatus.UNKNOWN.value, OrderStatus.PLACED.value]
_OPEN_POSITIONS = [PositionStatus.OPEN.value, PositionStatus.CLOSING.value]


def _percent(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.01")).normalize(), "f")


async def personal_limits(ctx: TradeContext, defaults: LimitDefaults) -> EffectiveLimits | None:
    """The order's subscriber's limits (None: the operator's own account), read once per context."""
    if ctx.user is None:
        return None
    cached = ctx.memo.get("limits")
    if not isinstance(cached, EffectiveLimits):
        cached = ctx.memo["limits"] = await limits_of(ctx.session, ctx.user.id, defaults)
    return cached


@dataclass(frozen=True, slots=True)
class Exposure:
    trades: int
    risk: Decimal  # account currency, at the current stops


def position_risk(position: Position, order: Order | None) -> Decimal:
    """What ``position`` loses at its stop, from the risk its order was sized with (0 when unknown)."""
    if order is None or order.risk_amount is None or order.price is None or order.sl is None:
        return Decimal(0)
    sized_distance = abs(order.price - order.sl)
    if not order.volume or sized_distance == 0:
        return Decimal(0)
    per_lot_and_price = order.risk_amount / (order.volume * sized_distance)
    direction = 1 if position.side == "buy" else -1
    stop = position.sl if position.sl is not None else order.sl
    distance = max(Decimal(0), (position.open_price - stop) * direction)
    return per_lot_and_price * position.volume * distance


async def exposure(ctx: TradeContext) -> Exposure:
    """The account's open trades and their risk, leaving out the order's own decision; read once
    per phase (the sized phase reads again, under the account's lock)."""
    key = f"exposure:{ctx.sized is not None}"
    cached = ctx.memo.get(key)
    if isinstance(cached, Exposure):
        return cached
    own = ctx.order.decision_id if ctx.order is not None else None
    positions = (
        await ctx.session.execute(
            select(Position, Order)
            .outerjoin(Order, Order.id == Position.order_id)
            .where(Position.account_id == ctx.account.id, Position.status.in_(_OPEN_POSITIONS))
        )
    ).all()
    orders = (
        await ctx.session.scalars(
            select(Order).where(Order.account_id == ctx.account.id, Order.status.in_(_LIVE_ORDERS))
        )
    ).all()
    trades: set[tuple[str, object]] = set()
    risk = Decimal(0)
    for position, order in positions:
        decision = order.decision_id if order is not None else None
        if own is not None and decision == own:
            continue
        trades.add(("decision", decision) if decision else ("position", position.id))
        risk += position_risk(position, order)
    for order in orders:
        if own is not None and order.decision_id == own:
            continue
        trades.add(("decision", order.decision_id) if order.decision_id else ("order", order.id))
        risk += order.risk_amount or Decimal(0)
    found = Exposure(len(trades), risk)
    ctx.memo[key] = found
    return found


class DailyLossGate:
    """The daily loss limit was reached (``engine.risk.daily_loss``): nothing new until the next
    trading day."""

    name = "limit_daily_loss"

    def __init__(self, defaults: LimitDefaults) -> None:
        self._defaults = defaults

    async def check(self, ctx: TradeContext) -> Refusal | None:
        limits = None if ctx.reduces else await personal_limits(ctx, self._defaults)
        if limits is None or not limits.paused(ctx.now):
            return None
        assert limits.paused_until is not None
        until = limits.paused_until.isoformat()
        limit = "" if limits.daily_loss_percent is None else _percent(limits.daily_loss_percent)
        return Refusal(
            self.name,
            self.name,
            f"the subscriber's daily loss limit ({limit}%) was reached; trading resumes at {until}",
            {"until": until, "limit": limit},
        )


class InstrumentGate:
    """The subscriber turned the signal's instrument off."""

    name = "limit_instrument"

    def __init__(self, defaults: LimitDefaults) -> None:
        self._defaults = defaults

    async def check(self, ctx: TradeContext) -> Refusal | None:
        if ctx.signal is None or ctx.reduces:
            return None
        limits = await personal_limits(ctx, self._defaults)
        instrument = ctx.signal.instrument.upper()
        if limits is None or instrument not in limits.instruments_off:
            return None
        return Refusal(
            self.name, self.name, f"the subscriber turned {instrument} off", {"instrument": instrument}
        )


class MinRRGate(SizedGate):
    """The signal's reward:risk is below the subscriber's minimum."""

    name = "limit_min_rr"

    def __init__(self, defaults: LimitDefaults) -> None:
        self._defaults = defaults

    async def check(self, ctx: TradeContext) -> Refusal | None:
        if ctx.signal is None or ctx.reduces:
            return None
        limits = await personal_limits(ctx, self._defaults)
        if limits is None or limits.min_rr is None:
            return None
        declared = signal_reward_risk(ctx.signal)
        if ctx.sized is None:
            rr = declared  # without an entry, the order's R:R decides once it is sized
        else:
            rr = ctx.sized.rr if declared is None else None  # a declared R:R was checked already
        if rr is None or rr >= limits.min_rr:
            return None
        shown = format(rounded_rr(rr).normalize(), "f")
        minimum = format(limits.min_rr.normalize(), "f")
        return Refusal(
            self.name,
            self.name,
            f"reward:risk {shown} is below the subscriber's minimum {minimum}",
            {"rr": shown, "min_rr": minimum},
        )


class MaxPositionsGate(SizedGate):
    """The account already holds the subscriber's maximum number of open trades."""

    name = "limit_max_positions"

    def __init__(self, defaults: LimitDefaults) -> None:
        self._defaults = defaults

    async def check(self, ctx: TradeContext) -> Refusal | None:
        if ctx.reduces:
            return None
        limits = await personal_limits(ctx, self._defaults)
        if limits is None or limits.max_positions is None:
            return None
        trades = (await exposure(ctx)).trades
        if trades < limits.max_positions:
            return None
        return Refusal(
            self.name,
            self.name,
            f"{trades} trades are open; the subscriber's maximum is {limits.max_positions}",
            {"open": str(trades), "max": str(limits.max_positions)},
        )


class OpenRiskGate(SizedGate):
    """This order's risk on top of the open trades' would pass the maximum total open risk."""

    name = "limit_open_risk"

    def __init__(self, defaults: LimitDefaults) -> None:
        self._defaults = defaults

    async def check(self, ctx: TradeContext) -> Refusal | None:
        if ctx.reduces or ctx.sized is None:
            return None  # the order's risk is known once it is sized
        limits = await personal_limits(ctx, self._defaults)
        if limits is None or limits.max_open_risk_percent is None:
            return None
        equity = ctx.sized.equity
        if equity <= 0:
            return None  # order construction refuses an account without equity
        open_risk = (await exposure(ctx)).risk
        open_percent = open_risk * HUNDRED / equity
        order_percent = ctx.sized.risk_amount * HUNDRED / equity
        if open_percent + order_percent <= limits.max_open_risk_percent:
            return None
        limit = _percent(limits.max_open_risk_percent)
        total = _percent(open_percent + order_percent)
        return Refusal(
            self.name,
            self.name,
            f"open risk would be {total}% of equity ({_percent(open_percent)}% open + "
            f"{_percent(order_percent)}% this order); the subscriber's maximum is {limit}%",
            {
                "total": total,
                "open": _percent(open_percent),
                "order": _percent(order_percent),
                "limit": limit,
            },
        )


def limit_gates(defaults: LimitDefaults) -> list[Gate]:
    """The subscriber's limits, in the order they are asked (after the standard gates)."""
    return [
        DailyLossGate(defaults),
        InstrumentGate(defaults),
        MinRRGate(defaults),
        MaxPositionsGate(defaults),
        OpenRiskGate(defaults),
    ]
