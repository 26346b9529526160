"""Where a setup's limit order goes, given the market when it is emitted (the legacy rule).

A limit at or beyond the market (a sell limit at or below the bid, a buy limit at or above the
ask), compared after rounding, is moved to 10 points beyond the market, rounded to the nearest
tick; its stop and target stay as computed. If that puts the entry at or beyond its own stop, the
order is not placed (``refused``), and it cancels nothing. The live producer and the backtest
both call this, so they move and refuse the same orders.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from engine.brokers.base import Side
from engine.execution.orders import round_to_step
from engine.strategies.base import Setup

MOVE_POINTS = 10


@dataclass(frozen=True)
class Placement:
    entry: Decimal
    moved: bool = False
    refused: str | None = None  # why the order is not placed


def place_limit(setup: Setup, bid: Decimal, ask: Decimal, point: Decimal, tick_size: Decimal) -> Placement:
    entry = setup.entry
    if setup.side is Side.SELL:
        if entry > bid:
            return Placement(entry)
        moved = round_to_step(bid + MOVE_POINTS * point, tick_size, "nearest")
        if moved >= setup.sl:
            return Placement(
                moved, True, f"sell limit {entry} is at or below the bid {bid}; moved to {moved} it "
                f"would be at or above its stop {setup.sl}"
            )  # fmt: skip
        return Placement(moved, True)
    if entry < ask:
        return Placement(entry)
    moved = round_to_step(ask - MOVE_POINTS * point, tick_size, "nearest")
    if moved <= setup.sl:
        return Placement(
            moved, True, f"buy limit {entry} is at or above the ask {ask}; moved to {moved} it "
            f"would be at or below its stop {setup.sl}"
        )  # fmt: skip
    return Placement(moved, True)
