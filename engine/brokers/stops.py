"""The trade server's rules for changing a position: stops level, freeze level, close volumes.

Pure functions over ``Decimal``, used by every broker before it sends a stop change or a partial
close, so a change the server would refuse is refused here with a named reason
(``ChangeRefusal``) and nothing is sent. The caller (the trading loop) skips the change and tries
again on its next tick, when the price may have moved out of the way.

The rules (MT5 help, "Requirements and Limitations in Making Trades"):
- a position's levels are measured from the price it would close at: the bid for a buy, the ask
  for a sell;
- a stop loss must be on the losing side of that price and a take profit on the winning side,
  each at least ``stops_level`` points away (``STOPS_LEVEL``; on the wrong side: ``WRONG_SIDE``);
- while the price is within ``freeze_level`` points of the position's current stop loss or take
  profit, the position can be neither modified nor closed (``FREEZE_LEVEL``);
- a partial close needs a volume on the ``volume_step`` grid, at least ``volume_min``, and must
  leave either nothing or at least ``volume_min`` (``INVALID_VOLUME``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from engine.brokers.base import Side, SymbolSpec


class ChangeRefusal(StrEnum):
    STOPS_LEVEL = "stops_level"
    FREEZE_LEVEL = "freeze_level"
    WRONG_SIDE = "wrong_side"
    INVALID_VOLUME = "invalid_volume"
    POSITION_GONE = "position_gone"


@dataclass(frozen=True, slots=True)
class Refused:
    code: ChangeRefusal
    message: str


def close_price(side: Side, bid: Decimal, ask: Decimal) -> Decimal:
    """The price a position closes at: the bid for a buy, the ask for a sell."""
    return bid if side is Side.BUY else ask


def frozen(spec: SymbolSpec, price: Decimal, *levels: Decimal | None) -> Refused | None:
    """FREEZE_LEVEL when ``price`` is within the freeze band of any of the existing levels."""
    if spec.freeze_level <= 0:
        return None
    band = spec.point * spec.freeze_level
    for level in levels:
        if level and abs(price - level) <= band:
            return Refused(
                ChangeRefusal.FREEZE_LEVEL,
                f"price {price} is within the freeze level ({spec.freeze_level} points) of {level}",
            )
    return None


def stop_change_refusal(
    spec: SymbolSpec,
    side: Side,
    bid: Decimal,
    ask: Decimal,
    *,
    sl: Decimal | None,
    tp: Decimal | None,
    current_sl: Decimal | None,
    current_tp: Decimal | None,
) -> Refused | None:
    """Why setting a position's levels to ``sl``/``tp`` (None: none) would be refused, or None."""
    price = close_price(side, bid, ask)
    refused = frozen(spec, price, current_sl, current_tp)
    if refused is not None:
        return refused
    minimum = spec.point * spec.stops_level
    buy = side is Side.BUY
    for name, level, below in (("stop loss", sl, buy), ("take profit", tp, not buy)):
        if level is None:
            continue
        gap = (price - level) if below else (level - price)
        where = "below" if below else "above"
        if gap <= 0:
            return Refused(ChangeRefusal.WRONG_SIDE, f"the {name} {level} must be {where} the price {price}")
        if gap < minimum:
            return Refused(
                ChangeRefusal.STOPS_LEVEL,
                f"the {name} {level} is {gap / spec.point:f} points from the price {price}; "
                f"the symbol's stops level is {spec.stops_level} points",
            )
    return None


def close_volume_refusal(spec: SymbolSpec, position_volume: Decimal, volume: Decimal) -> Refused | None:
    """Why closing ``volume`` of a position of ``position_volume`` lots would be refused, or None."""
    rest = position_volume - volume
    if volume <= 0 or volume > position_volume:
        return Refused(
            ChangeRefusal.INVALID_VOLUME, f"cannot close {volume} lots of a {position_volume}-lot position"
        )
    if volume % spec.volume_step or volume < spec.volume_min:
        return Refused(
            ChangeRefusal.INVALID_VOLUME,
            f"{volume} lots is not a multiple of {spec.volume_step} of at least {spec.volume_min}",
        )
    if 0 < rest < spec.volume_min:
        return Refused(
            ChangeRefusal.INVALID_VOLUME,
            f"closing {volume} lots would leave {rest}, below the minimum {spec.volume_min}",
        )
    return None
