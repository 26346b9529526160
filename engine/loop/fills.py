"""A managed position's closing deals: read from the terminal, classified, then recorded.

Reading and writing are two steps of a tick (``engine.loop.management``): the deals are read and
classified first (the stops of the tick count them), and written after the stops, so a target
fill that moved the stop to the entry says so in its own event (``stop_moved``). A crash in
between only loses that note: the deals are not recorded yet and are read again next tick.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError

from engine.brokers.base import Broker, BrokerPosition, Deal, Side
from engine.execution.positions import apply_close
from engine.execution.targets import Share
from engine.states import PositionStatus
from engine.store.audit import audit
from engine.store.db import Database
from engine.store.models import ExecutionAccount, Order, Position, PositionFill, Signal

ACTOR = "trade-manager"
_MANUAL = frozenset({"client", "mobile", "web"})


def close_share_id(position_id: int, target: int) -> str:
    digest = hashlib.sha256(f"share:{position_id}:{target}".encode()).digest()
    return "tt-" + base64.b32encode(digest).decode().rstrip("=").lower()[:22]


@dataclass
class Managed:
    position: Position
    order: Order
    signal: Signal
    plan: tuple[Share, ...]
    fills: list[PositionFill] = field(default_factory=list)
    closed_targets: set[int] = field(default_factory=set)  # filled on the decision's closed positions
    stop_moved_told: bool = False  # this tick's fill event says the stop moved to the entry

    @property
    def side(self) -> Side:
        return Side(self.position.side)

    def done_targets(self) -> set[int]:
        return {n for f in self.fills if f.kind == "target" for n in f.targets}


def classify(m: Managed, deal: Deal) -> tuple[str, list[int]]:
    for share in m.plan:
        if deal.client_order_id == close_share_id(m.position.id, share.number):
            return "target", list(share.numbers)
    if deal.reason == "tp":
        return "target", list(m.plan[-1].numbers) if m.plan else []
    if deal.reason == "sl":
        return "stop", []
    if deal.reason in _MANUAL:
        return "manual", []
    return "engine", []


async def read_fills(
    broker: Broker,
    managed: list[Managed],
    at_broker: dict[str, BrokerPosition],
) -> list[tuple[Managed, list[Deal], list[PositionFill]]]:
    """New closing deals, classified; kept in memory until the stops are done (see ``_write_fills``)."""
    found: list[tuple[Managed, list[Deal], list[PositionFill]]] = []
    for m in managed:
        bp = at_broker.get(m.position.ticket)
        filled = m.order.filled_volume or m.position.volume
        recorded = sum((f.volume for f in m.fills), Decimal(0))
        gone = filled - (bp.volume if bp is not None else Decimal(0))
        if gone <= recorded:
            continue
        deals = [d for d in await broker.position_deals(m.position.ticket) if d.entry == "out"]
        known = {f.deal_ticket for f in m.fills}
        new = [d for d in deals if d.ticket not in known]
        if not new:
            continue
        added: list[PositionFill] = []
        for deal in new:
            kind, numbers = classify(m, deal)
            added.append(
                PositionFill(
                    account_id=m.position.account_id,
                    position_id=m.position.id,
                    deal_ticket=deal.ticket,
                    kind=kind,
                    targets=numbers,
                    volume=deal.volume,
                    price=deal.price,
                    profit=deal.profit,
                    reason=deal.reason or "",
                    at=deal.time,
                )
            )
        m.fills.extend(added)  # counted by the stops of this tick
        found.append((m, deals, added))
    return found


async def write_fills(
    db: Database,
    account: ExecutionAccount,
    found: list[tuple[Managed, list[Deal], list[PositionFill]]],
    at_broker: dict[str, BrokerPosition],
    moved: dict[str | None, str],
) -> list[tuple[Managed, PositionFill]]:
    """Record the fills read this tick, after the stops: a target fill that brought the stop to
    the entry says so (``stop_moved``), so the subscriber hears both facts in one message."""
    partials: list[tuple[Managed, PositionFill]] = []
    told: set[str | None] = set()  # decisions whose stop move is already in a fill's event
    for m, deals, added in found:
        bp = at_broker.get(m.position.ticket)
        decision = m.order.decision_id
        hit = any(f.kind == "target" for f in added)
        stop_moved = moved.get(decision) == "breakeven" and hit and decision not in told
        if stop_moved:
            told.add(decision)
        m.stop_moved_told = stop_moved
        async with db.session() as session:
            position = await session.get(Position, m.position.id, with_for_update=True)
            if position is None or position.status != PositionStatus.OPEN.value:
                continue
            for fill in added:
                session.add(fill)
            try:
                await session.flush()
            except IntegrityError:
                await session.rollback()
                continue
            if bp is None:
                last = added[-1]
                partials += [(m, f) for f in added[:-1]]
                reason = "manual" if last.kind == "manual" else last.reason or "broker"
                apply_close(
                    session, position, deals, reason, ACTOR,
                    targets=last.targets, kind=last.kind, decision_id=m.order.decision_id,
                    signal_id=m.order.signal_id, joined=joined_of(m, last.targets),
                    fill_volume=str(last.volume), fill_price=str(last.price), fill_profit=str(last.profit),
                    currency=account.currency, stop_moved=stop_moved,
                )  # fmt: skip
                m.position.status = PositionStatus.CLOSED.value
            else:
                partials += [(m, f) for f in added]
                position.volume = bp.volume
                position.profit = sum((f.profit for f in m.fills), Decimal(0))
                m.position.volume = bp.volume
            if any(f.kind == "manual" for f in added):
                audit(session, ACTOR, "position.closed_by_hand", f"position:{position.id}",
                      volume=str(sum((f.volume for f in added if f.kind == "manual"), Decimal(0))))  # fmt: skip
    return partials


def text_or_none(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def event_ids(m: Managed) -> dict[str, Any]:
    return {
        "position_id": m.position.id,
        "account_id": m.position.account_id,
        "order_id": m.order.id,
        "decision_id": m.order.decision_id,
        "signal_id": m.order.signal_id,
        "ticket": m.position.ticket,
        "symbol": m.position.symbol,
        "side": m.position.side,
    }


def joined_of(m: Managed, numbers: list[int]) -> list[int]:
    """Targets whose share was too small and closed with this one."""
    for share in m.plan:
        if share.number in numbers:
            return list(share.joined)
    return []
