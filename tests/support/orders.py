"""Small builders for the order-construction tests (specs are in tests.support.symbols)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

from engine.brokers.base import AccountSnapshot, OrderType, Side, SymbolSpec, Tick
from engine.execution.orders import BuiltOrder, OrderRefusal, OrderRules, SignalParams, build_order
from tests.support.symbols import EURUSD, with_spec

# Wednesday 2024-06-05 12:00 UTC: every default schedule is open.
WEDNESDAY = datetime(2024, 6, 5, 12, 0, tzinfo=UTC)
# Saturday 2024-06-08 12:00 UTC: the FX/metals week is closed.
SATURDAY = datetime(2024, 6, 8, 12, 0, tzinfo=UTC)


# EURUSD from a broker that sets no stops level, so only the rules' own minimums apply (the order
# tests measure MIN_STOP_POINTS and friends; the stops level has tests of its own).
EURUSD_NO_STOPS_LEVEL = with_spec(EURUSD, stops_level=0)


def account(equity: str = "10000", free_margin: str | None = None) -> AccountSnapshot:
    return AccountSnapshot(
        login="1001",
        balance=D(equity),
        equity=D(equity),
        margin=D(0),
        free_margin=D(free_margin if free_margin is not None else equity),
    )


def tick(spec: SymbolSpec, bid: str, ask: str) -> Tick:
    return Tick(symbol=spec.name, bid=D(bid), ask=D(ask), time=WEDNESDAY)


def signal(
    side: Side = Side.BUY,
    sl: str = "1.09812",
    tp: str = "1.10400",
    *,
    order_type: OrderType = OrderType.MARKET,
    entry: str | None = None,
    risk: str = "1",
) -> SignalParams:
    return SignalParams(
        side=side,
        order_type=order_type,
        entry=D(entry) if entry is not None else None,
        sl=D(sl),
        tp=D(tp),
        risk_percent=D(risk),
    )


def build(
    sig: SignalParams,
    *,
    spec: SymbolSpec = EURUSD_NO_STOPS_LEVEL,
    bid: str = "1.10000",
    ask: str = "1.10012",
    acct: AccountSnapshot | None = None,
    rules: OrderRules | None = None,
    now: datetime = WEDNESDAY,
) -> BuiltOrder | OrderRefusal:
    return build_order(
        client_order_id="appr-1",
        signal=sig,
        account=acct or account(),
        spec=spec,
        tick=tick(spec, bid, ask),
        rules=rules or OrderRules(),
        now=now,
    )


def built(result: BuiltOrder | OrderRefusal) -> BuiltOrder:
    assert isinstance(result, BuiltOrder), result
    return result


def refused(result: BuiltOrder | OrderRefusal) -> OrderRefusal:
    assert isinstance(result, OrderRefusal), result
    return result
