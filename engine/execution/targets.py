"""Splitting one subscriber's volume across a signal's targets (pure, ``Decimal``).

The volume sized for the whole signal (``engine.execution.orders.build_order``) is split by the
targets' ``close_percent``: each share is floored to the symbol's ``volume_step`` and what the
flooring leaves goes to the last target, so the shares always add up to the whole volume. A
share below the symbol's ``volume_min`` cannot be traded on its own: it joins the previous target
(it is closed there, earlier than the producer asked; the fill message says so), or, for the
first target, the next one.

The resulting ``Share`` list is the plan for one decision:
- on a hedging account every share is its own order and position, with the share's target as
  its broker-side take profit and the common stop loss (``leg`` 1, 2, ...);
- on a netting account there is one position for the whole volume with the last share's target
  as its take profit; the trading loop closes the earlier shares when the price reaches them.
It is stored with the order as JSON (``plan_to_json``), prices and volumes as exact strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from engine.brokers.base import Side, SymbolSpec
from engine.execution.orders import Rounding, round_to_step


@dataclass(frozen=True, slots=True)
class TargetLevel:
    number: int  # 1-based, nearest first
    price: Decimal
    close_percent: int


@dataclass(frozen=True, slots=True)
class Share:
    """The volume closed at one target; ``joined`` are later (or earlier) targets merged into it."""

    number: int
    price: Decimal
    volume: Decimal
    joined: tuple[int, ...] = ()

    @property
    def numbers(self) -> tuple[int, ...]:
        return tuple(sorted((self.number, *self.joined)))


def targets_of(targets_json: list[dict[str, Any]] | None, tp: Decimal) -> tuple[TargetLevel, ...]:
    """A stored signal's targets (``tp`` alone is one target of 100 %)."""
    if not targets_json:
        return (TargetLevel(1, tp, 100),)
    return tuple(
        TargetLevel(n, Decimal(str(t["price"])), int(t["close_percent"]))
        for n, t in enumerate(targets_json, 1)
    )


def round_targets(targets: tuple[TargetLevel, ...], side: Side, spec: SymbolSpec) -> tuple[TargetLevel, ...]:
    """Each target on the tick grid, rounded toward the entry (never further than asked)."""
    rounding: Rounding = "down" if side is Side.BUY else "up"
    return tuple(
        TargetLevel(t.number, round_to_step(t.price, spec.tick_size, rounding), t.close_percent)
        for t in targets
    )


def split_volume(volume: Decimal, targets: tuple[TargetLevel, ...], spec: SymbolSpec) -> tuple[Share, ...]:
    """The shares of ``volume`` (on the step grid, at least ``volume_min``) per target."""
    if volume < spec.volume_min:
        raise ValueError(f"volume {volume} is below the minimum {spec.volume_min}")
    step = spec.volume_step
    raw = [(volume * t.close_percent / 100) // step * step for t in targets]
    raw[-1] += volume - sum(raw, Decimal(0))
    shares: list[Share] = []
    carried: list[tuple[int, Decimal]] = []  # targets too small before the first tradable one
    for target, amount in zip(targets, raw, strict=True):
        if amount < spec.volume_min:
            if shares:
                last = shares[-1]
                shares[-1] = Share(
                    last.number, last.price, last.volume + amount, (*last.joined, target.number)
                )
            else:
                carried.append((target.number, amount))
            continue
        extra = sum((a for _, a in carried), Decimal(0))
        shares.append(Share(target.number, target.price, amount + extra, tuple(n for n, _ in carried)))
        carried = []
    if carried:  # only possible when every share is below the minimum: everything at the last target
        last_target = targets[-1]
        shares.append(Share(last_target.number, last_target.price, volume, tuple(n for n, _ in carried[:-1])))
    return tuple(shares)


def plan_to_json(shares: tuple[Share, ...]) -> list[dict[str, Any]]:
    return [
        {
            "number": s.number,
            "price": format(s.price, "f"),
            "volume": format(s.volume, "f"),
            "joined": list(s.joined),
        }
        for s in shares
    ]


def plan_from_json(data: list[dict[str, Any]] | None) -> tuple[Share, ...]:
    if not data:
        return ()
    return tuple(
        Share(
            int(s["number"]),
            Decimal(s["price"]),
            Decimal(s["volume"]),
            tuple(int(n) for n in s.get("joined", ())),
        )
        for s in data
    )
