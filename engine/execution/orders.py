"""Order construction: from an approved signal to a broker-ready ``OrderRequest``, or a refusal.

``build_order`` is pure: it reads a signal, the account, the symbol spec, the current tick, the
rules and the clock, and returns either a ``BuiltOrder`` or an ``OrderRefusal`` whose ``code``
names the one rule that refused and whose ``message`` gives the numbers. All arithmetic is
``Decimal`` (no float), and rounding to the price and volume grids is done with exact integer
division, so "is a multiple of the tick size" and "risks no more than the budget" hold exactly.

Decisions, in the order the checks run (the first failing check is the refusal):

1. Inputs make sense (``INVALID_SIGNAL``, ``SYMBOL_SPEC_INVALID``, ``NO_PRICE``); the symbol is
   tradable (``SYMBOL_NOT_TRADABLE``) and allows a filling mode we use (``NO_FILLING_MODE``).
2. Market hours (``MARKET_CLOSED``): refused before the broker is asked. Pending orders are gated
   too unless ``OrderRules.pending_when_closed`` (MT5 refuses any trade request outside the
   symbol's sessions, and the weekend tick is stale).
3. The account has equity and free margin (``INSUFFICIENT_EQUITY``, ``INSUFFICIENT_MARGIN``). The
   margin an order needs is not computed here (the spec carries no margin rates): the broker's
   own check (MT5 ``order_check`` / NO_MONEY) decides that.
4. Price. Market orders fill at the ask (buy) or bid (sell); an off-grid quote is rounded to the
   *worse* tick (up for a buy, down for a sell) so the assumed fill never understates the risk.
   Limit/stop orders use the signal's entry rounded to the nearest tick (half up) and must sit on
   the right side of the market: buy limit < ask < buy stop, sell stop < bid < sell limit
   (``ENTRY_WRONG_SIDE``), at least the symbol's stops level and more than its freeze level away
   (``ENTRY_TOO_CLOSE``). They expire after ``order_expiry_hours`` (MT5 ORDER_TIME_SPECIFIED).
5. SL and TP are rounded to the tick *toward the order price*: the stop is never wider and the
   target never further than the signal asked, so rounding cannot raise the loss per lot or
   overstate the reward. They must be strictly on the correct side (``INVALID_LEVELS``). For a
   market order the SL is measured from the quote the position closes at (bid for a buy, ask for a
   sell, as MT5 checks it) and the TP from the order price; for a pending order both from its entry.
6. Distances, after rounding: each of SL and TP at least max(``min_stop_points``, the symbol's
   stops level) points and more than its freeze level (else it could not be modified or closed)
   (``MIN_STOP_DISTANCE`` for the SL, ``MIN_TP_DISTANCE`` for the TP).
7. Reward:risk, both from the order price (spread included for market orders), at least
   ``min_rr`` (``MIN_RR``).
8. Volume = equity x risk% / (stop distance in ticks x tick value), floored to ``volume_step``;
   with a fixed size (``SignalParams.fixed_volume``, the subscriber's "fixed lots" sizing) that
   size floored to the step instead. Below ``volume_min`` is refused (``VOLUME_BELOW_MIN``), never
   bumped up. Above the symbol's ``volume_max``, the account's ``max_volume`` or the subscriber's
   ``max_lots`` it is capped down to the lowest of them (floored to the step): a smaller order
   only lowers the risk. A limit below ``volume_min`` is ``MAX_LOTS`` when it is the subscriber's,
   else ``MAX_VOLUME``. ``risk_amount`` is the loss at the SL price; slippage past it, commission
   and swap are not in it.

Filling mode: the first the symbol allows of FOK, IOC, RETURN. FOK first because the volume is
sized to the risk budget and a partial fill would leave a different position than intended;
IOC next (a partial fill only lowers risk); RETURN last (a remainder may rest as an order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal, localcontext
from enum import StrEnum, auto
from typing import Literal

from engine.brokers.base import (
    AccountSnapshot,
    FillingMode,
    OrderRequest,
    OrderType,
    Side,
    SymbolSpec,
    Tick,
)
from engine.risk.market_hours import MarketHours

FILLING_PREFERENCE: tuple[FillingMode, ...] = (FillingMode.FOK, FillingMode.IOC, FillingMode.RETURN)
_HUNDRED = Decimal(100)


class RefusalCode(StrEnum):
    INVALID_SIGNAL = auto()
    SYMBOL_SPEC_INVALID = auto()
    NO_PRICE = auto()
    SYMBOL_NOT_TRADABLE = auto()
    NO_FILLING_MODE = auto()
    MARKET_CLOSED = auto()
    INSUFFICIENT_EQUITY = auto()
    INSUFFICIENT_MARGIN = auto()
    ENTRY_WRONG_SIDE = auto()
    ENTRY_TOO_CLOSE = auto()
    INVALID_LEVELS = auto()
    MIN_STOP_DISTANCE = auto()
    MIN_TP_DISTANCE = auto()
    MIN_RR = auto()
    VOLUME_BELOW_MIN = auto()
    MAX_VOLUME = auto()
    MAX_LOTS = auto()


@dataclass(frozen=True, slots=True)
class SignalParams:
    side: Side
    order_type: OrderType
    entry: Decimal | None  # required for limit/stop; only a reference for market orders
    sl: Decimal
    tp: Decimal
    risk_percent: Decimal  # of equity, e.g. Decimal("1") for 1 %
    fixed_volume: Decimal | None = None  # lots, instead of sizing by risk_percent
    max_lots: Decimal | None = None  # the subscriber's own cap on this order's volume


@dataclass(frozen=True, slots=True)
class OrderRules:
    min_rr: Decimal = Decimal("1.5")
    min_stop_points: int = 5
    order_expiry_hours: int = 100
    max_volume: Decimal | None = None  # per account; None = only the symbol's volume_max
    deviation_points: int = 10
    market_hours: MarketHours = field(default_factory=MarketHours)
    pending_when_closed: bool = False

    def __post_init__(self) -> None:
        if not (self.min_rr.is_finite() and self.min_rr >= 0):
            raise ValueError(f"min_rr must be >= 0, got {self.min_rr}")
        if self.min_stop_points < 0:
            raise ValueError(f"min_stop_points must be >= 0, got {self.min_stop_points}")
        if self.order_expiry_hours <= 0:
            raise ValueError(f"order_expiry_hours must be > 0, got {self.order_expiry_hours}")
        if self.max_volume is not None and not (self.max_volume.is_finite() and self.max_volume > 0):
            raise ValueError(f"max_volume must be > 0, got {self.max_volume}")
        if self.deviation_points < 0:
            raise ValueError(f"deviation_points must be >= 0, got {self.deviation_points}")


@dataclass(frozen=True, slots=True)
class BuiltOrder:
    request: OrderRequest
    risk_amount: Decimal  # account currency lost if the SL is hit at the order price
    risk_budget: Decimal  # equity x risk% (risk_amount never exceeds it)
    rr: Decimal  # reward / risk, both measured from the order price
    stop_distance_points: Decimal  # order price to SL
    tp_distance_points: Decimal  # order price to TP
    stop_distance_ticks: int
    capped_by: str | None = None  # "volume_max" | "max_volume" | "max_lots" when the volume was capped


@dataclass(frozen=True, slots=True)
class OrderRefusal:
    code: RefusalCode
    message: str
    details: dict[str, str] = field(default_factory=dict)


Rounding = Literal["nearest", "up", "down"]


def round_to_step(value: Decimal, step: Decimal, rounding: Rounding) -> Decimal:
    """``value`` (> 0) on the grid of multiples of ``step`` (> 0), exactly; nearest rounds half up."""
    whole, rest = divmod(value, step)
    if rest and (rounding == "up" or (rounding == "nearest" and rest * 2 >= step)):
        whole += 1
    return whole * step


def _round_toward(value: Decimal, target: Decimal, tick: Decimal) -> Decimal:
    return round_to_step(value, tick, "up" if value < target else "down")


def _num(value: Decimal) -> str:
    """A Decimal as plain text without exponent or trailing zeros (200, 1.5, 0.01)."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _ratio(numerator: Decimal, denominator: Decimal) -> Decimal:
    """A quotient to 28 significant digits (exact when it terminates that early)."""
    with localcontext() as ctx:
        ctx.prec = 28
        return numerator / denominator


def _money(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.01")), "f")


def _refuse(code: RefusalCode, message: str, **details: object) -> OrderRefusal:
    as_text = {k: format(v, "f") if isinstance(v, Decimal) else str(v) for k, v in details.items()}
    return OrderRefusal(code=code, message=message, details=as_text)


def choose_filling(allowed: frozenset[FillingMode]) -> FillingMode | None:
    return next((mode for mode in FILLING_PREFERENCE if mode in allowed), None)


def build_order(
    *,
    client_order_id: str,
    signal: SignalParams,
    account: AccountSnapshot,
    spec: SymbolSpec,
    tick: Tick,
    rules: OrderRules,
    now: datetime,
) -> BuiltOrder | OrderRefusal:
    """Build the order for ``signal`` on ``spec`` at ``tick``, or say which rule refuses it."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if not client_order_id:
        raise ValueError("client_order_id is required")
    if tick.symbol.upper() != spec.name.upper():
        raise ValueError(f"tick is for {tick.symbol}, spec is for {spec.name}")
    with localcontext() as ctx:
        ctx.prec = 60  # every product and integer division below is exact at this precision
        return _build(client_order_id, signal, account, spec, tick, rules, now.astimezone(UTC))


def _check_inputs(signal: SignalParams, spec: SymbolSpec, tick: Tick) -> OrderRefusal | None:
    levels = {"sl": signal.sl, "tp": signal.tp}
    if signal.entry is not None:
        levels["entry"] = signal.entry
    elif signal.order_type is not OrderType.MARKET:
        return _refuse(RefusalCode.INVALID_SIGNAL, f"a {signal.order_type} order needs an entry price")
    for name, value in levels.items():
        if not (value.is_finite() and value > 0):
            return _refuse(RefusalCode.INVALID_SIGNAL, f"{name} must be a positive price, got {value}")
    risk = signal.risk_percent
    if not (risk.is_finite() and 0 < risk <= _HUNDRED):
        return _refuse(RefusalCode.INVALID_SIGNAL, f"risk_percent must be in (0, 100], got {risk}")
    for name, lots in (("fixed_volume", signal.fixed_volume), ("max_lots", signal.max_lots)):
        if lots is not None and not (lots.is_finite() and lots > 0):
            return _refuse(RefusalCode.INVALID_SIGNAL, f"{name} must be a positive volume, got {lots}")
    positive = {
        "point": spec.point,
        "tick_size": spec.tick_size,
        "tick_value": spec.tick_value,
        "volume_min": spec.volume_min,
        "volume_max": spec.volume_max,
        "volume_step": spec.volume_step,
    }
    for name, value in positive.items():
        if not (value.is_finite() and value > 0):
            return _refuse(
                RefusalCode.SYMBOL_SPEC_INVALID,
                f"{spec.name}: the broker reports {name}={value}; it must be positive",
                field=name,
                value=value,
            )
    if spec.volume_max < spec.volume_min or spec.stops_level < 0 or spec.freeze_level < 0:
        return _refuse(
            RefusalCode.SYMBOL_SPEC_INVALID,
            f"{spec.name}: inconsistent spec (volume {spec.volume_min}..{spec.volume_max}, "
            f"stops level {spec.stops_level}, freeze level {spec.freeze_level})",
        )
    if not (tick.bid.is_finite() and tick.ask.is_finite() and 0 < tick.bid <= tick.ask):
        return _refuse(
            RefusalCode.NO_PRICE,
            f"{spec.name}: no usable quote (bid {tick.bid}, ask {tick.ask})",
            bid=tick.bid,
            ask=tick.ask,
        )
    return None


def _check_account(account: AccountSnapshot) -> OrderRefusal | None:
    if not account.equity.is_finite() or account.equity <= 0:
        return _refuse(
            RefusalCode.INSUFFICIENT_EQUITY,
            f"account equity is {_money(account.equity)} {account.currency}; nothing to risk",
            equity=account.equity,
        )
    if not account.free_margin.is_finite() or account.free_margin <= 0:
        return _refuse(
            RefusalCode.INSUFFICIENT_MARGIN,
            f"account free margin is {_money(account.free_margin)} {account.currency}; "
            "no new order can be opened",
            free_margin=account.free_margin,
        )
    return None


def _pending_price(signal: SignalParams, spec: SymbolSpec, tick: Tick) -> Decimal | OrderRefusal:
    assert signal.entry is not None
    price = round_to_step(signal.entry, spec.tick_size, "nearest")
    buy = signal.side is Side.BUY
    quote_name, quote = ("ask", tick.ask) if buy else ("bid", tick.bid)
    below = (signal.order_type is OrderType.LIMIT) == buy  # buy limit / sell stop sit below
    if (price >= quote) if below else (price <= quote):
        where = "below" if below else "above"
        return _refuse(
            RefusalCode.ENTRY_WRONG_SIDE,
            f"a {signal.side} {signal.order_type} must be {where} the {quote_name}: "
            f"entry {price} vs {quote_name} {quote}",
            entry=price,
            quote=quote,
            quote_name=quote_name,
        )
    points = abs(quote - price) / spec.point
    if points < spec.stops_level or points <= spec.freeze_level:
        return _refuse(
            RefusalCode.ENTRY_TOO_CLOSE,
            f"entry {price} is {_num(points)} points from the {quote_name} {quote}; the symbol needs "
            f"at least its stops level ({spec.stops_level}) and more than its freeze level "
            f"({spec.freeze_level})",
            entry=price,
            distance_points=points,
            stops_level=spec.stops_level,
            freeze_level=spec.freeze_level,
        )
    return price


def _build(
    client_order_id: str,
    signal: SignalParams,
    account: AccountSnapshot,
    spec: SymbolSpec,
    tick: Tick,
    rules: OrderRules,
    now: datetime,
) -> BuiltOrder | OrderRefusal:
    refusal = _check_inputs(signal, spec, tick)
    if refusal:
        return refusal
    if not spec.trade_allowed:
        return _refuse(RefusalCode.SYMBOL_NOT_TRADABLE, f"{spec.name}: trading is disabled for this symbol")
    filling = choose_filling(spec.filling_modes)
    if filling is None:
        return _refuse(
            RefusalCode.NO_FILLING_MODE,
            f"{spec.name}: the symbol allows none of the filling modes FOK, IOC, RETURN",
        )
    if signal.order_type is OrderType.MARKET or not rules.pending_when_closed:
        schedule = rules.market_hours.schedule_for(spec.name)
        if not schedule.is_open(now):
            opens = schedule.next_open(now)
            return _refuse(
                RefusalCode.MARKET_CLOSED,
                f"the {spec.name} market is closed ({schedule.describe()}); it opens at {opens.isoformat()}",
                now=now.isoformat(),
                opens_at=opens.isoformat(),
                schedule=schedule.describe(),
            )
    refusal = _check_account(account)
    if refusal:
        return refusal

    buy = signal.side is Side.BUY
    direction = 1 if buy else -1
    tick_size, point = spec.tick_size, spec.point
    if signal.order_type is OrderType.MARKET:
        price = (
            round_to_step(tick.ask, tick_size, "up") if buy else round_to_step(tick.bid, tick_size, "down")
        )
        sl_ref_name, sl_ref = ("bid", tick.bid) if buy else ("ask", tick.ask)
    else:
        pending = _pending_price(signal, spec, tick)
        if isinstance(pending, OrderRefusal):
            return pending
        price = pending
        sl_ref_name, sl_ref = "entry", price
    tp_ref_name = "order price" if signal.order_type is OrderType.MARKET else "entry"

    sl = _round_toward(signal.sl, price, tick_size)
    tp = _round_toward(signal.tp, price, tick_size)
    sl_gap = (sl_ref - sl) * direction
    tp_gap = (tp - price) * direction
    for leg, raw, value, gap, want, ref_name, ref in (
        ("stop loss", signal.sl, sl, sl_gap, "below" if buy else "above", sl_ref_name, sl_ref),
        ("take profit", signal.tp, tp, tp_gap, "above" if buy else "below", tp_ref_name, price),
    ):
        if gap <= 0:
            return _refuse(
                RefusalCode.INVALID_LEVELS,
                f"for a {signal.side} the {leg} must be {want} the {ref_name}: "
                f"{leg} {value} (signal {raw}, rounded to the tick) vs {ref_name} {ref}",
                leg=leg,
                level=value,
                reference=ref,
            )

    required = max(rules.min_stop_points, spec.stops_level)
    freeze = f" and more than the freeze level {spec.freeze_level}" if spec.freeze_level else ""
    for code, leg, value, gap, ref_name, ref in (
        (RefusalCode.MIN_STOP_DISTANCE, "stop loss", sl, sl_gap, sl_ref_name, sl_ref),
        (RefusalCode.MIN_TP_DISTANCE, "take profit", tp, tp_gap, tp_ref_name, price),
    ):
        points = gap / point
        if points < required or points <= spec.freeze_level:
            return _refuse(
                code,
                f"{leg} {value} is {_num(points)} points from the {ref_name} {ref}; the minimum is "
                f"{required} points (the larger of MIN_STOP_POINTS={rules.min_stop_points} and the "
                f"symbol's stops level {spec.stops_level}){freeze}",
                distance_points=points,
                required_points=required,
                min_stop_points=rules.min_stop_points,
                stops_level=spec.stops_level,
                freeze_level=spec.freeze_level,
            )

    risk_distance = (price - sl) * direction
    reward_distance = (tp - price) * direction
    if reward_distance < rules.min_rr * risk_distance:
        rr = _ratio(reward_distance, risk_distance)
        return _refuse(
            RefusalCode.MIN_RR,
            f"reward:risk is {_num(rr.quantize(Decimal('0.001'), ROUND_DOWN))} "
            f"({_num(reward_distance / point)} / {_num(risk_distance / point)} points); "
            f"MIN_RR is {_num(rules.min_rr)}",
            rr=rr,
            min_rr=rules.min_rr,
            reward_points=reward_distance / point,
            risk_points=risk_distance / point,
        )

    ticks = risk_distance / tick_size  # exact integer: both prices are on the tick grid
    loss_per_lot = ticks * spec.tick_value
    step = spec.volume_step
    if signal.fixed_volume is not None:
        volume = round_to_step(signal.fixed_volume, step, "down")
        budget = volume * loss_per_lot
        if volume < spec.volume_min:
            return _refuse(
                RefusalCode.VOLUME_BELOW_MIN,
                f"the fixed size {_num(signal.fixed_volume)} lots is {_num(volume)} lots at the "
                f"symbol's step {_num(step)}; the symbol's minimum is {_num(spec.volume_min)} lots",
                volume=volume,
                volume_min=spec.volume_min,
                fixed_volume=signal.fixed_volume,
            )
    else:
        budget = account.equity * signal.risk_percent / _HUNDRED
        volume = (budget // (loss_per_lot * step)) * step
    if volume < spec.volume_min:
        return _refuse(
            RefusalCode.VOLUME_BELOW_MIN,
            f"risking {_num(signal.risk_percent)}% of {_money(account.equity)} {account.currency} "
            f"({_money(budget)}) over {_num(ticks)} ticks at {_num(spec.tick_value)} per tick and lot "
            f"allows {_num(volume)} lots; the symbol's minimum is {_num(spec.volume_min)} lots, which "
            f"would risk {_money(spec.volume_min * loss_per_lot)}",
            volume=volume,
            volume_min=spec.volume_min,
            risk_budget=budget,
            loss_per_lot=loss_per_lot,
        )
    limits = [("volume_max", spec.volume_max)]
    if rules.max_volume is not None:
        limits.append(("max_volume", rules.max_volume))
    if signal.max_lots is not None:
        limits.append(("max_lots", signal.max_lots))
    limit_name, limit = min(limits, key=lambda item: item[1])
    cap = round_to_step(limit, step, "down")
    if cap < spec.volume_min:
        return _refuse(
            RefusalCode.MAX_LOTS if limit_name == "max_lots" else RefusalCode.MAX_VOLUME,
            f"the volume limit {_num(limit)} lots ({limit_name}) is below the symbol's minimum "
            f"{_num(spec.volume_min)} lots at step {_num(step)}",
            limit=limit,
            limit_name=limit_name,
            volume_min=spec.volume_min,
        )
    capped_by = None
    if volume > cap:
        volume, capped_by = cap, limit_name

    request = OrderRequest(
        client_order_id=client_order_id,
        symbol=spec.name,
        side=signal.side,
        order_type=signal.order_type,
        volume=volume,
        price=price,
        sl=sl,
        tp=tp,
        filling=filling,
        expires_at=None
        if signal.order_type is OrderType.MARKET
        else now + timedelta(hours=rules.order_expiry_hours),
        deviation_points=rules.deviation_points,
    )
    return BuiltOrder(
        request=request,
        risk_amount=volume * loss_per_lot,
        risk_budget=budget,
        rr=_ratio(reward_distance, risk_distance),
        stop_distance_points=risk_distance / point,
        tp_distance_points=reward_distance / point,
        stop_distance_ticks=int(ticks),
        capped_by=capped_by,
    )
