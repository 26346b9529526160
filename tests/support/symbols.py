"""Symbol specs as a broker reports them (MT5 ``symbol_info``), one definition per symbol."""

from __future__ import annotations

import dataclasses
from decimal import Decimal as D

from engine.brokers.base import FillingMode, SymbolSpec

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
    stops_level=10,
    filling_modes=frozenset({FillingMode.FOK, FillingMode.IOC}),
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


def with_spec(spec: SymbolSpec, **changes: object) -> SymbolSpec:
    """``spec`` with some fields changed (a broker that reports something unusual)."""
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]
