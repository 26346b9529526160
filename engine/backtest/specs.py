"""Symbol specs for backtests: what ``engine.execution.orders.build_order`` sizes and rounds with.

Built in: the usual retail contract specs of the default instruments whose profit currency is
USD (so a backtest's money is in USD): EURUSD, GBPUSD (100,000 units a lot), XAUUSD (100 oz),
US500 (1 unit, tick 0.25), BTCUSD (1 coin). Stops and freeze levels are 0 (they vary by broker).
``--tick T`` overrides the tick size of a known symbol (its tick value scales with it) or defines
an unknown one: one lot is one unit of the quoted price, so money is in the quote currency.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from engine.brokers.base import FillingMode, SymbolSpec


def _spec(
    name: str,
    digits: int,
    tick: str,
    contract: str,
    vmin: str = "0.01",
    vmax: str = "100",
    step: str = "0.01",
) -> SymbolSpec:
    tick_size, contract_size = Decimal(tick), Decimal(contract)
    return SymbolSpec(
        name=name,
        digits=digits,
        point=Decimal(1).scaleb(-digits),
        tick_size=tick_size,
        tick_value=tick_size * contract_size,
        contract_size=contract_size,
        volume_min=Decimal(vmin),
        volume_max=Decimal(vmax),
        volume_step=Decimal(step),
        filling_modes=frozenset({FillingMode.FOK, FillingMode.IOC, FillingMode.RETURN}),
    )


BACKTEST_SPECS: dict[str, SymbolSpec] = {
    s.name: s
    for s in (
        _spec("EURUSD", 5, "0.00001", "100000"),
        _spec("GBPUSD", 5, "0.00001", "100000"),
        _spec("XAUUSD", 2, "0.01", "100", vmax="50"),
        _spec("US500", 2, "0.25", "1", vmin="0.1", step="0.1"),
        _spec("BTCUSD", 2, "0.01", "1", vmax="10"),
    )
}


class SpecError(ValueError):
    pass


def backtest_spec(symbol: str, tick: Decimal | None = None) -> SymbolSpec:
    """The spec to backtest ``symbol`` with; ``SpecError`` when there is none and no tick."""
    name = symbol.strip().upper()
    if not name:
        raise SpecError("--symbol must not be empty")
    if tick is not None and not (tick.is_finite() and tick > 0):
        raise SpecError(f"--tick must be a positive number, got {tick}")
    known = BACKTEST_SPECS.get(name)
    if known is None:
        if tick is None:
            raise SpecError(
                f"no symbol spec for {name}: pass --tick (its price step), or use one of "
                f"{', '.join(sorted(BACKTEST_SPECS))}"
            )
        exponent = tick.normalize().as_tuple().exponent
        digits = max(0, -exponent) if isinstance(exponent, int) else 0
        made = _spec(name, digits, str(tick), "1", vmax="1000000")
        return dataclasses.replace(
            made, currency_profit=name[3:6] if len(name) == 6 and name.isalpha() else ""
        )
    if tick is None:
        return known
    point = known.point if tick % known.point == 0 else tick
    exponent = point.normalize().as_tuple().exponent
    return SymbolSpec(
        name=name,
        digits=max(0, -exponent) if isinstance(exponent, int) else known.digits,
        point=point,
        tick_size=tick,
        tick_value=tick * known.contract_size,
        contract_size=known.contract_size,
        volume_min=known.volume_min,
        volume_max=known.volume_max,
        volume_step=known.volume_step,
        filling_modes=known.filling_modes,
    )
