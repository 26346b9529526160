"""The orders one decision becomes: one, or one per target on a hedging account.

``plan_legs`` turns the order built for the whole signal (``build_order``: volume sized on the
whole risk, take profit at the furthest target) into the requests actually sent:
- one target: the built order as it is;
- several targets on a netting account (``AccountSnapshot.hedging`` false): one order for the
  whole volume, its take profit at the last share's target, and the plan stored with it so the
  trading loop closes the earlier shares when the price reaches them;
- several targets on a hedging account: one order per share (``engine.execution.targets``), each
  with its share's volume, its target as take profit and the common stop loss. Leg 1 is the
  decision's existing order row (same client id as a single order); legs 2.. are new rows with
  their own client id (``client_order_id_for(decision, leg)``), so exactly-once holds per leg.
An order that already carries a plan (a retry after a requote, say) keeps the volume and take
profit it was planned with; only its price is fresh.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from engine.brokers.base import OrderRequest, Side, SymbolSpec
from engine.execution.orders import BuiltOrder
from engine.execution.targets import plan_to_json, round_targets, split_volume, targets_of
from engine.store.models import Order, Signal, new_uuid


@dataclass(frozen=True, slots=True)
class Leg:
    number: int
    order_id: str
    request: OrderRequest
    plan: list[dict[str, Any]] | None


def plan_legs(
    order: Order,
    signal: Signal,
    built: BuiltOrder,
    spec: SymbolSpec,
    hedging: bool,
    client_id_for: Callable[[str, int], str],
) -> list[Leg]:
    request = built.request
    if order.targets is not None and order.volume is not None and order.tp is not None:
        planned = replace(request, volume=order.volume, tp=order.tp)
        return [Leg(order.leg, order.id, planned, order.targets)]
    targets = round_targets(targets_of(signal.targets, signal.tp), Side(signal.side), spec)
    if len(targets) == 1 or order.decision_id is None:
        return [Leg(order.leg, order.id, request, None)]
    shares = split_volume(request.volume, targets, spec)
    if not hedging or len(shares) == 1:
        return [Leg(1, order.id, replace(request, tp=shares[-1].price), plan_to_json(shares))]
    legs = []
    for n, share in enumerate(shares, 1):
        cid = order.client_order_id if n == 1 else client_id_for(order.decision_id, n)
        leg_request = replace(request, client_order_id=cid, volume=share.volume, tp=share.price)
        legs.append(Leg(n, order.id if n == 1 else new_uuid(), leg_request, plan_to_json((share,))))
    return legs
