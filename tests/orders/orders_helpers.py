"""Symbol specs and small builders shared by the order-construction tests."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal as D

from engine.brokers.base import AccountSnapshot, FillingMode, OrderType, Side, SymbolSpec, Tick
from engine.execution.orders import BuiltOrder, OrderRefusal, OrderRules, SignalParams, build_order

# Wednesday 2024-06-05 12:00 UTC: every default schedule is open.
WEDNESDAY = datetime(2024, 6, 5, 12, 0, tzinfo=UTC)
# Saturday 2024-06-08 12:00 UTC: the FX/metals week is closed.
SATURDAY = datetime(2024, 6, 8, 12, 0, tzinfo=UTC)

EURUSD = SymbolSpec(
    name="EURUSD",
    digits=5,
    point=D("0.00001"),
    tick_size=D("0.00001"),
    tick_value=D("1"),
    contract_size=D("100000"),
    volume_min=D("0.01"),
    volume_max=D("100"),
    volume_step=D("0.01"),
)
USDJPY = SymbolSpec(
    name="USDJPY",
    digits=3,
    point=D("0.001"),
    tick_size=D("0.001"),
    tick_value=D("0.64"),
    contract_size=D("100000"),
    volume_min=D("0.01"),
    volume_max=D("100"),
    volume_step=D("0.01"),
)
XAUUSD = SymbolSpec(
    name="XAUUSD",
    digits=2,
    point=D("0.01"),
    tick_size=D("0.01"),
    tick_value=D("1"),
    contract_size=D("100"),
    volume_min=D("0.01"),
    volume_max=D("50"),
    volume_step=D("0.01"),
)
US500 = SymbolSpec(
    name="US500",
    digits=2,
    point=D("0.01"),
    tick_size=D("0.25"),
    tick_value=D("0.25"),
    contract_size=D("1"),
    volume_min=D("0.1"),
    volume_max=D("500"),
    volume_step=D("0.1"),
)
BTCUSD = SymbolSpec(
    name="BTCUSD",
    digits=2,
    point=D("0.01"),
    tick_size=D("0.01"),
    tick_value=D("0.01"),
    contract_size=D("1"),
    volume_min=D("0.01"),
    volume_max=D("10"),
    volume_step=D("0.01"),
    filling_modes=frozenset({FillingMode.IOC}),
)

# A typical price for each, so generated quotes look like the real market.
TYPICAL_PRICE = {
    "EURUSD": D("1.1"),
    "USDJPY": D("156.5"),
    "XAUUSD": D("2350"),
    "US500": D("5000"),
    "BTCUSD": D("60000"),
}


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
    spec: SymbolSpec = EURUSD,
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


def with_spec(spec: SymbolSpec, **changes: object) -> SymbolSpec:
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]
