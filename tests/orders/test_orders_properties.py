"""Property tests: every built order keeps every rule; every refusal names a rule that is broken.

The oracle below recomputes each rule from scratch with exact ``Fraction`` arithmetic (floor and
ceiling of rationals, not the ``Decimal`` grid helpers the builder uses).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal as D
from fractions import Fraction
from zoneinfo import ZoneInfo

from hypothesis import event, given, settings
from hypothesis import strategies as st

from engine.brokers.base import AccountSnapshot, FillingMode, OrderType, Side, SymbolSpec, Tick
from engine.execution.orders import (
    BuiltOrder,
    OrderRefusal,
    OrderRules,
    RefusalCode,
    SignalParams,
    build_order,
)
from engine.risk.market_hours import MarketHours, parse_market_hours
from tests.support.orders import WEDNESDAY
from tests.support.symbols import BTCUSD, EURUSD, TYPICAL_PRICE, US500, USDJPY, XAUUSD

C = RefusalCode
# The order the builder documents for its checks; a refusal must name the first broken rule.
CHECK_ORDER = [
    C.SYMBOL_NOT_TRADABLE,
    C.NO_FILLING_MODE,
    C.MARKET_CLOSED,
    C.INSUFFICIENT_EQUITY,
    C.INSUFFICIENT_MARGIN,
    C.ENTRY_WRONG_SIDE,
    C.ENTRY_TOO_CLOSE,
    C.INVALID_LEVELS,
    C.MIN_STOP_DISTANCE,
    C.MIN_TP_DISTANCE,
    C.MIN_RR,
    C.VOLUME_BELOW_MIN,
    C.MAX_VOLUME,
]
PREFERENCE = [FillingMode.FOK, FillingMode.IOC, FillingMode.RETURN]
NY = ZoneInfo("America/New_York")


@dataclass(frozen=True)
class Case:
    spec: SymbolSpec
    tick: Tick
    signal: SignalParams
    account: AccountSnapshot
    rules: OrderRules
    now: datetime
    always_open: bool


def Q(x: D | int) -> Fraction:
    return Fraction(x)


def floor_to(x: D, unit: D) -> Fraction:
    return math.floor(Q(x) / Q(unit)) * Q(unit)


def ceil_to(x: D, unit: D) -> Fraction:
    return math.ceil(Q(x) / Q(unit)) * Q(unit)


def fx_closed(now: datetime) -> bool:
    local = now.astimezone(NY)
    minutes = local.hour * 60 + local.minute
    day = local.weekday()
    return (day == 4 and minutes >= 17 * 60) or day == 5 or (day == 6 and minutes < 17 * 60)


@dataclass
class Oracle:
    broken: set[RefusalCode]
    volume: Fraction | None = None


def oracle(case: Case) -> Oracle:
    spec, tick, sig, acct, rules = case.spec, case.tick, case.signal, case.account, case.rules
    broken: set[RefusalCode] = set()
    if not spec.trade_allowed:
        broken.add(C.SYMBOL_NOT_TRADABLE)
    if not spec.filling_modes:
        broken.add(C.NO_FILLING_MODE)
    market = sig.order_type is OrderType.MARKET
    if (market or not rules.pending_when_closed) and not case.always_open and fx_closed(case.now):
        broken.add(C.MARKET_CLOSED)
    if acct.equity <= 0:
        broken.add(C.INSUFFICIENT_EQUITY)
    if acct.free_margin <= 0:
        broken.add(C.INSUFFICIENT_MARGIN)
    buy = sig.side is Side.BUY
    d = 1 if buy else -1
    point, tick_size = Q(spec.point), Q(spec.tick_size)
    if market:
        price = ceil_to(tick.ask, spec.tick_size) if buy else floor_to(tick.bid, spec.tick_size)
        sl_ref = Q(tick.bid) if buy else Q(tick.ask)
    else:
        assert sig.entry is not None
        price = math.floor(Q(sig.entry) / tick_size + Fraction(1, 2)) * tick_size
        quote = Q(tick.ask) if buy else Q(tick.bid)
        below = buy == (sig.order_type is OrderType.LIMIT)
        if (below and price >= quote) or (not below and price <= quote):
            broken.add(C.ENTRY_WRONG_SIDE)
        gap = abs(quote - price) / point
        if gap < spec.stops_level or gap <= spec.freeze_level:
            broken.add(C.ENTRY_TOO_CLOSE)
        sl_ref = price
    sl = ceil_to(sig.sl, spec.tick_size) if Q(sig.sl) < price else floor_to(sig.sl, spec.tick_size)
    tp = ceil_to(sig.tp, spec.tick_size) if Q(sig.tp) < price else floor_to(sig.tp, spec.tick_size)
    sl_gap, tp_gap = (sl_ref - sl) * d, (tp - price) * d
    if sl_gap <= 0 or tp_gap <= 0:
        broken.add(C.INVALID_LEVELS)
    required = max(rules.min_stop_points, spec.stops_level)
    if sl_gap / point < required or sl_gap / point <= spec.freeze_level:
        broken.add(C.MIN_STOP_DISTANCE)
    if tp_gap / point < required or tp_gap / point <= spec.freeze_level:
        broken.add(C.MIN_TP_DISTANCE)
    risk, reward = (price - sl) * d, (tp - price) * d
    if risk <= 0:
        return Oracle(broken)
    if reward < Q(rules.min_rr) * risk:
        broken.add(C.MIN_RR)
    budget = Q(acct.equity) * Q(sig.risk_percent) / 100
    per_lot = risk / tick_size * Q(spec.tick_value)
    step = Q(spec.volume_step)
    volume = math.floor(budget / (per_lot * step)) * step
    if volume < Q(spec.volume_min):
        broken.add(C.VOLUME_BELOW_MIN)
    limit = min(
        Q(spec.volume_max), Q(rules.max_volume) if rules.max_volume is not None else Q(spec.volume_max)
    )
    cap = math.floor(limit / step) * step
    if cap < Q(spec.volume_min):
        broken.add(C.MAX_VOLUME)
    return Oracle(broken, min(volume, cap))


# --- strategies -----------------------------------------------------------------------------------


@st.composite
def random_spec(draw: st.DrawFn) -> SymbolSpec:
    digits = draw(st.integers(0, 5))
    point = D(1).scaleb(-digits)
    step = draw(st.sampled_from([D("0.001"), D("0.01"), D("0.05"), D("0.1"), D("1")]))
    volume_min = step * draw(st.integers(1, 10))
    return SymbolSpec(
        name="RANDOM",
        digits=digits,
        point=point,
        tick_size=point * draw(st.sampled_from([1, 1, 2, 5, 10, 25])),
        tick_value=D(draw(st.integers(1, 100_000))).scaleb(-draw(st.integers(0, 5))),
        contract_size=D(1),
        volume_min=volume_min,
        volume_max=volume_min + step * draw(st.integers(0, 50_000)),
        volume_step=step,
    )


def points(draw: st.DrawFn, point: D, *, sane: bool) -> D:
    """A signed distance in price units: log-uniform in points, off the grid, sometimes negative."""
    size = D(draw(st.integers(1, 99))) * D(10) ** draw(st.integers(2 if sane else 0, 4))
    jitter = D(draw(st.integers(0, 9))) / 10
    sign = -1 if not sane and draw(st.integers(0, 99)) % 10 == 7 else 1
    return sign * (size + jitter) * point


def rare(draw: st.DrawFn, sane: bool, one_in: int) -> bool:
    # Compare with a value that is not a bound: hypothesis favours bounds when it generates.
    return not sane and draw(st.integers(0, one_in - 1)) == 7 % one_in


@st.composite
def cases(draw: st.DrawFn, *, sane: bool = False) -> Case:
    """Random orders. ``sane`` ones are well formed signals on open markets, which mostly build."""
    base = draw(st.one_of(st.sampled_from([EURUSD, USDJPY, XAUUSD, US500, BTCUSD]), random_spec()))
    some_filling = st.frozensets(st.sampled_from(PREFERENCE), min_size=1)
    spec = dataclasses.replace(
        base,
        stops_level=draw(st.one_of(st.just(0), st.integers(0, 40))),
        freeze_level=draw(st.one_of(st.just(0), st.integers(0, 20))),
        filling_modes=frozenset()
        if rare(draw, sane, 30)
        else draw(st.one_of(st.just(base.filling_modes), some_filling)),
        trade_allowed=not rare(draw, sane, 50),
    )
    typical = TYPICAL_PRICE.get(spec.name) or D(draw(st.integers(1, 10**6))).scaleb(-draw(st.integers(0, 3)))
    bid = max(1, int(typical / spec.tick_size) + draw(st.integers(-1000, 1000))) * spec.tick_size
    ask = bid + spec.tick_size * draw(st.integers(0, 5 if sane else 30))
    # Now and then a quote off the tick grid (tenths of a tick).
    off_grid = st.sampled_from([0, 0, 0, 0, 1, 4, 5, 6, 9])
    ask += spec.tick_size * draw(off_grid) / 10
    bid = max(bid - spec.tick_size * draw(off_grid) / 10, spec.tick_size / 10)
    side = draw(st.sampled_from([Side.BUY, Side.SELL]))
    order_type = draw(st.sampled_from([OrderType.MARKET, OrderType.LIMIT, OrderType.STOP]))
    d = 1 if side is Side.BUY else -1
    reference = ask if side is Side.BUY else bid
    entry = None
    if order_type is not OrderType.MARKET:
        below = (order_type is OrderType.LIMIT) == (side is Side.BUY)
        entry = reference + (-1 if below else 1) * points(draw, spec.point, sane=sane)
        reference = entry
    stop = points(draw, spec.point, sane=sane)
    sl = reference - d * stop
    if not sane and draw(st.booleans()):
        tp = reference + d * points(draw, spec.point, sane=sane)
    else:  # a target at some multiple of the stop, as real signals have
        multiples = ["3", "5"] if sane else ["0.5", "1", "1.5", "2", "2.75", "3", "5"]
        tp = reference + d * abs(stop) * D(draw(st.sampled_from(multiples)))
    # Far levels can cross zero; clamp them to a tiny positive price (the builder must refuse those).
    tiny = spec.point / 10
    sl, tp = max(sl, tiny), max(tp, tiny)
    entry = max(entry, tiny) if entry is not None else None
    low_equity = st.integers(0, 10**5) if not sane else st.integers(10**6, 10**7)
    equity = D(draw(st.one_of(low_equity, st.integers(10**7, 10**11)))) / 100
    free_margin = D(0) if rare(draw, sane, 30) else equity
    always_open = sane or draw(st.integers(0, 4)) == 3
    rules = OrderRules(
        min_rr=draw(st.sampled_from([D(0), D(1), D("1.5"), D(2), D("2.75")])),
        min_stop_points=draw(st.integers(0, 30)),
        order_expiry_hours=draw(st.integers(1, 200)),
        max_volume=draw(st.one_of(st.none(), st.integers(1, 100_000).map(lambda n: D(n) / 1000))),
        deviation_points=draw(st.integers(0, 50)),
        market_hours=parse_market_hours(f"{spec.name}=24/7") if always_open else MarketHours(),
        pending_when_closed=draw(st.booleans()),
    )
    now = draw(
        st.one_of(
            st.just(WEDNESDAY),
            st.integers(0, 3 * 7 * 24 * 60).map(lambda m: WEDNESDAY + timedelta(minutes=m)),
        )
    )
    return Case(
        spec=spec,
        tick=Tick(symbol=spec.name, bid=bid, ask=ask, time=now),
        signal=SignalParams(
            side=side,
            order_type=order_type,
            entry=entry,
            sl=sl,
            tp=tp,
            risk_percent=D(draw(st.integers(1, 1000))) / 100,
        ),
        account=AccountSnapshot(
            login="7", balance=equity, equity=equity, margin=D(0), free_margin=free_margin
        ),
        rules=rules,
        now=now,
        always_open=always_open,
    )


def run(case: Case) -> BuiltOrder | OrderRefusal:
    return build_order(
        client_order_id="prop-1",
        signal=case.signal,
        account=case.account,
        spec=case.spec,
        tick=case.tick,
        rules=case.rules,
        now=case.now,
    )


# --- properties -----------------------------------------------------------------------------------


@settings(max_examples=1000, deadline=None)
@given(cases())
def test_refusal_iff_a_rule_is_broken_and_it_names_the_first(case: Case) -> None:
    check_against_oracle(case)


@settings(max_examples=1000, deadline=None)
@given(cases(sane=True))
def test_well_formed_signals_build_orders_that_keep_every_rule(case: Case) -> None:
    check_against_oracle(case)


def check_against_oracle(case: Case) -> None:
    result = run(case)
    expected = oracle(case)
    if isinstance(result, OrderRefusal):
        event(f"refused {result.code}")
        assert expected.broken, f"refused {result.code} though every rule holds: {result.message}"
        first = min(expected.broken, key=CHECK_ORDER.index)
        assert result.code is first, (result.code, sorted(expected.broken), result.message)
        assert result.message
    else:
        event("built")
        assert not expected.broken, sorted(expected.broken)
        assert Q(result.request.volume) == expected.volume
        check_built(case, result)


def check_built(case: Case, built: BuiltOrder) -> None:
    spec, tick, sig, rules, req = case.spec, case.tick, case.signal, case.rules, built.request
    tick_size, point = Q(spec.tick_size), Q(spec.point)
    price, sl, tp = Q(req.price), Q(req.sl), Q(req.tp)
    # prices are on the tick grid
    for level in (price, sl, tp):
        assert level % tick_size == 0
    d = 1 if sig.side is Side.BUY else -1
    # correct sides, and the fill price
    assert (price - sl) * d > 0 and (tp - price) * d > 0
    if sig.order_type is OrderType.MARKET:
        quote = Q(tick.ask) if d == 1 else Q(tick.bid)
        assert 0 <= (price - quote) * d < tick_size  # never better than the quote, within one tick
        assert req.expires_at is None
        sl_ref = Q(tick.bid) if d == 1 else Q(tick.ask)
    else:
        assert sig.entry is not None
        assert abs(price - Q(sig.entry)) * 2 <= tick_size
        assert req.expires_at == case.now + timedelta(hours=rules.order_expiry_hours)
        sl_ref = price
    # rounding toward the price: never a wider stop or a further target than the signal
    assert 0 <= (sl - Q(sig.sl)) * d < tick_size
    assert 0 <= (Q(sig.tp) - tp) * d < tick_size
    # distances
    required = max(rules.min_stop_points, spec.stops_level)
    for gap in ((sl_ref - sl) * d / point, (tp - price) * d / point):
        assert gap >= required and gap > spec.freeze_level
    risk, reward = (price - sl) * d, (tp - price) * d
    assert reward >= Q(rules.min_rr) * risk
    # volume
    volume, step = Q(req.volume), Q(spec.volume_step)
    assert volume % step == 0
    assert Q(spec.volume_min) <= volume <= Q(spec.volume_max)
    if rules.max_volume is not None:
        assert volume <= Q(rules.max_volume)
    budget = Q(case.account.equity) * Q(sig.risk_percent) / 100
    loss = volume * risk / tick_size * Q(spec.tick_value)
    assert loss <= budget  # tolerance zero
    assert Q(built.risk_amount) == loss and Q(built.risk_budget) == budget
    # ...and it is the largest such volume unless a limit capped it
    bigger = volume + step
    limit = min(
        Q(spec.volume_max), Q(rules.max_volume) if rules.max_volume is not None else Q(spec.volume_max)
    )
    assert bigger * risk / tick_size * Q(spec.tick_value) > budget or bigger > limit
    assert (built.capped_by is not None) == (bigger * risk / tick_size * Q(spec.tick_value) <= budget)
    # reported facts
    assert Q(built.stop_distance_points) == risk / point
    assert Q(built.tp_distance_points) == reward / point
    assert built.stop_distance_ticks == risk / tick_size
    assert abs(Q(built.rr) - reward / risk) < Fraction(1, 10**20)
    # the rest of the request
    assert req.filling is next(m for m in PREFERENCE if m in spec.filling_modes)
    assert (req.symbol, req.side, req.order_type) == (spec.name, sig.side, sig.order_type)
    assert req.deviation_points == rules.deviation_points
    assert req.client_order_id == "prop-1"


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31), timezones=st.just(NY)))
def test_default_schedule_matches_the_new_york_reading(now: datetime) -> None:
    hours = MarketHours()
    assert hours.is_open("EURUSD", now) is not fx_closed(now)
    opens = hours.next_open("EURUSD", now)
    assert hours.is_open("EURUSD", opens)
    if opens != now:
        assert not hours.is_open("EURUSD", opens - timedelta(seconds=1))
        assert opens.astimezone(NY).strftime("%a %H:%M:%S") == "Sun 17:00:00"
        assert opens - now <= timedelta(days=2, hours=1)
