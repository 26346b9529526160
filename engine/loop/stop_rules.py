"""Where the stop of a managed position should be: break-even and trailing (pure, ``Decimal``).

- Break-even: once target ``breakeven_after`` has filled, the stop of what remains moves to the
  entry. A buy closes at the bid, so its entry is the break-even price; a sell closes at the ask,
  which is the bid plus the spread, so its stop goes to entry + spread to really break even.
- Trailing: once the first target has filled, the stop follows the best price seen by
  ``trail_points`` points: below the bid for a buy, above the ask for a sell.
- Either way a stop only ever tightens: ``tighter`` keeps the current stop when the new one would
  be looser, so a trailing stop never gives back what it has locked in.
"""

from __future__ import annotations

from decimal import Decimal

from engine.brokers.base import Side


def tighter(side: Side, current: Decimal | None, proposed: Decimal | None) -> Decimal | None:
    """The tighter of two stops (higher for a buy, lower for a sell); None means no stop."""
    if proposed is None:
        return current
    if current is None:
        return proposed
    return max(current, proposed) if side is Side.BUY else min(current, proposed)


def breakeven_stop(side: Side, entry: Decimal, spread: Decimal) -> Decimal:
    return entry if side is Side.BUY else entry + spread


def trailing_stop(side: Side, best: Decimal, trail_points: int, point: Decimal) -> Decimal:
    """``best`` is the best closing price seen: the highest bid for a buy, the lowest ask for a sell."""
    distance = point * trail_points
    return best - distance if side is Side.BUY else best + distance


def desired_stop(
    side: Side,
    current: Decimal | None,
    *,
    entry: Decimal,
    spread: Decimal,
    best: Decimal,
    point: Decimal,
    targets_hit: int,
    breakeven_after: int,
    trail_points: int | None,
) -> Decimal | None:
    """The stop the position should have now: never looser than ``current``."""
    stop = current
    if breakeven_after and targets_hit >= breakeven_after:
        stop = tighter(side, stop, breakeven_stop(side, entry, spread))
    if trail_points and targets_hit >= 1:
        stop = tighter(side, stop, trailing_stop(side, best, trail_points, point))
    return stop
