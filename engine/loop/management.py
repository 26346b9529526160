"""Trade management on every tick: target and stop fills, engine-side targets, break-even, trailing.

For each open position opened from a signal with several targets (its order carries a plan,
``engine.execution.targets``), one pass of ``TradeManager.manage`` per account and tick:

1. Netting accounts: an earlier target the price has reached is closed by the engine
   (``close_partial`` of that share, client id ``close_share_id(position, target)``). Exactly
   once: a share is done when its deal is recorded; after an UNKNOWN answer the client id is looked
   up at the broker before anything is sent again.
2. Fills: a position whose volume at the broker is below what it was filled with minus what is
   recorded (a target, a stop, a close by hand) or that vanished has its closing deals read
   (``position_deals``) and each new one recorded once (``PositionFill``, unique per deal):
   ``position.partially_closed``, or ``position.closed`` with the realized P&L when nothing is
   left. A deal is a *target* (reason TP, or one of our share closes), a *stop* (SL), *manual*
   (client, mobile, web: closed by hand in the terminal, recorded as such and never undone) or
   *engine* (another close the engine sent, e.g. close-all).
3. Stops: once target ``breakeven_after`` has filled (counted over every position of the
   decision), the stop of what remains moves to the entry; once the first target has filled, it
   trails the best price by ``trail_points``; a stop only ever tightens
   (``engine.loop.stop_rules``). A change the stops or freeze level forbids is skipped and tried
   again on the next tick. A stop someone moved by hand in the terminal is left alone from then
   on (``Position.stop_managed``), and said so in ``position.modified``.
"""

from __future__ import annotations

import base64
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from loguru import logger
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from engine.brokers.base import Broker, BrokerPosition, Deal, Side, SubmitStatus, SymbolSpec, Tick
from engine.execution.positions import apply_close
from engine.execution.targets import Share, plan_from_json
from engine.loop.stop_rules import breakeven_stop, desired_stop, tighter
from engine.states import PositionStatus
from engine.store.audit import audit
from engine.store.db import Database
from engine.store.events import POSITION_MODIFIED, POSITION_PARTIALLY_CLOSED, EventRelay, emit
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

    @property
    def side(self) -> Side:
        return Side(self.position.side)

    def done_targets(self) -> set[int]:
        return {n for f in self.fills if f.kind == "target" for n in f.targets}


class TradeManager:
    def __init__(self, db: Database, relay: EventRelay | None = None) -> None:
        self._db = db
        self._relay = relay
        self._unknown: set[str] = set()  # share client ids whose close answer was lost

    async def _load(self, account_id: int) -> list[Managed]:
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(Position, Order, Signal)
                    .join(Order, Order.id == Position.order_id)
                    .join(Signal, Signal.id == Order.signal_id)
                    .where(
                        Position.account_id == account_id,
                        Position.status == PositionStatus.OPEN.value,
                        Order.targets.is_not(None),
                    )
                    .order_by(Position.id)
                )
            ).all()
            managed = [Managed(p, o, s, plan_from_json(o.targets)) for p, o, s in rows]
            ids = [m.position.id for m in managed]
            fills = (
                (await session.scalars(select(PositionFill).where(PositionFill.position_id.in_(ids)))).all()
                if ids
                else []
            )
            by_position: dict[int, list[PositionFill]] = defaultdict(list)
            for fill in fills:
                by_position[fill.position_id].append(fill)
            for m in managed:
                m.fills = by_position[m.position.id]
            session.expunge_all()
        return managed

    async def manage(self, account: ExecutionAccount, broker: Broker) -> None:
        managed = await self._load(account.id)
        if not managed:
            return
        at_broker = {p.ticket: p for p in await broker.positions()}
        ticks: dict[str, Tick] = {}
        specs: dict[str, SymbolSpec] = {}
        for m in managed:
            symbol = m.position.symbol
            if symbol not in ticks:
                ticks[symbol] = await broker.tick(symbol)
                spec = await broker.symbol_spec(symbol)
                if spec is None:
                    logger.warning("account {}: no spec for {}; not managed", account.id, symbol)
                    return
                specs[symbol] = spec
        if await self._engine_targets(broker, managed, at_broker, ticks):
            at_broker = {p.ticket: p for p in await broker.positions()}
        events = await self._record_fills(account, broker, managed, at_broker)
        moved = await self._stops(broker, managed, at_broker, ticks, specs)
        await self._emit(account, events, moved)

    # ---- 1. engine-side targets (netting) ----------------------------------------------------------

    async def _engine_targets(
        self,
        broker: Broker,
        managed: list[Managed],
        at_broker: dict[str, BrokerPosition],
        ticks: dict[str, Tick],
    ) -> bool:
        sent = False
        for m in managed:
            bp = at_broker.get(m.position.ticket)
            if bp is None or len(m.plan) < 2:
                continue
            done = m.done_targets()
            tick = ticks[m.position.symbol]
            price = tick.bid if m.side is Side.BUY else tick.ask
            for share in m.plan[:-1]:
                if share.number in done:
                    continue
                reached = price >= share.price if m.side is Side.BUY else price <= share.price
                if not reached:
                    break
                cid = close_share_id(m.position.id, share.number)
                if cid in self._unknown:
                    found = await broker.find_by_client_id(cid)
                    if found is not None and found.state == "filled":
                        self._unknown.discard(cid)
                        sent = True  # executed: recorded from the deals below
                        break
                result = await broker.close_partial(m.position.ticket, share.volume, cid)
                if result.status is SubmitStatus.UNKNOWN:
                    self._unknown.add(cid)
                elif result.status is SubmitStatus.ACCEPTED:
                    self._unknown.discard(cid)
                    sent = True
                else:
                    logger.info(
                        "position {}: target {} close not sent: {}",
                        m.position.id,
                        share.number,
                        result.reason,
                    )
                break  # one share per position and tick: the next is checked against fresh volumes
        return sent

    # ---- 2. fills ---------------------------------------------------------------------------------

    def _classify(self, m: Managed, deal: Deal) -> tuple[str, list[int]]:
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

    async def _record_fills(
        self,
        account: ExecutionAccount,
        broker: Broker,
        managed: list[Managed],
        at_broker: dict[str, BrokerPosition],
    ) -> list[tuple[Managed, PositionFill, bool]]:
        events: list[tuple[Managed, PositionFill, bool]] = []
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
            async with self._db.session() as session:
                position = await session.get(Position, m.position.id, with_for_update=True)
                if position is None or position.status != PositionStatus.OPEN.value:
                    continue
                added: list[PositionFill] = []
                for deal in new:
                    kind, numbers = self._classify(m, deal)
                    fill = PositionFill(
                        account_id=account.id, position_id=position.id, deal_ticket=deal.ticket, kind=kind,
                        targets=numbers, volume=deal.volume, price=deal.price, profit=deal.profit,
                        reason=deal.reason or "", at=deal.time,
                    )  # fmt: skip
                    session.add(fill)
                    added.append(fill)
                try:
                    await session.flush()
                except IntegrityError:
                    await session.rollback()
                    continue
                m.fills.extend(added)
                for fill in added:
                    events.append((m, fill, bp is None and fill is added[-1]))
                if bp is None:
                    last = added[-1]
                    reason = "manual" if last.kind == "manual" else last.reason or "broker"
                    apply_close(
                        session, position, deals, reason, ACTOR,
                        targets=last.targets, kind=last.kind, decision_id=m.order.decision_id,
                        currency=account.currency,
                    )  # fmt: skip
                    m.position.status = PositionStatus.CLOSED.value
                else:
                    position.volume = bp.volume
                    position.profit = sum((f.profit for f in m.fills), Decimal(0))
                    m.position.volume = bp.volume
                if any(f.kind == "manual" for f in added):
                    audit(session, ACTOR, "position.closed_by_hand", f"position:{position.id}",
                          volume=str(sum((f.volume for f in added if f.kind == "manual"), Decimal(0))))  # fmt: skip
        return events

    # ---- 3. stops -----------------------------------------------------------------------------------

    async def _stops(
        self,
        broker: Broker,
        managed: list[Managed],
        at_broker: dict[str, BrokerPosition],
        ticks: dict[str, Tick],
        specs: dict[str, SymbolSpec],
    ) -> dict[str | None, str]:
        hits: dict[str | None, set[int]] = defaultdict(set)
        for m in managed:
            hits[m.order.decision_id] |= m.done_targets()
        moved: dict[str | None, str] = {}  # decision -> "breakeven" | "trailing"
        for m in managed:
            bp = at_broker.get(m.position.ticket)
            if bp is None or m.position.status != PositionStatus.OPEN.value:
                continue
            expected = m.position.engine_sl if m.position.engine_sl is not None else m.order.sl
            if m.position.stop_managed and bp.sl != expected:
                await self._by_hand(m, bp)
                continue
            if not m.position.stop_managed:
                continue
            spec, tick = specs[m.position.symbol], ticks[m.position.symbol]
            price = tick.bid if m.side is Side.BUY else tick.ask
            hit = len(hits[m.order.decision_id])
            best = price if m.position.best_price is None or hit == 0 else m.position.best_price
            best = max(best, price) if m.side is Side.BUY else min(best, price)
            stop = desired_stop(
                m.side, bp.sl, entry=m.position.open_price, spread=tick.ask - tick.bid, best=best,
                point=spec.point, targets_hit=hit, breakeven_after=m.signal.breakeven_after,
                trail_points=m.signal.trail_points,
            )  # fmt: skip
            if hit and best != m.position.best_price:
                await self._save(m.position.id, best_price=best)
                m.position.best_price = best
            if stop is None or stop == bp.sl or tighter(m.side, bp.sl, stop) != stop:
                continue
            result = await broker.modify_position(bp.ticket, stop, bp.tp)
            if result.status is not SubmitStatus.ACCEPTED:
                logger.info(
                    "position {}: stop {} not set now ({}); next tick",
                    m.position.id,
                    stop,
                    result.code or result.reason,
                )
                continue
            breakeven = breakeven_stop(m.side, m.position.open_price, tick.ask - tick.bid)
            at_entry = (
                bool(m.signal.breakeven_after) and hit >= m.signal.breakeven_after and stop == breakeven
            )
            why = "breakeven" if at_entry else "trailing"
            if moved.get(m.order.decision_id) != "breakeven":
                moved[m.order.decision_id] = why
            m.position.engine_sl = stop
            await self._save(m.position.id, engine_sl=stop, sl=stop)
            await self._modified(m, bp.sl, stop, why)
        return moved

    async def _save(self, position_id: int, **values: Any) -> None:
        async with self._db.session() as session:
            position = await session.get(Position, position_id, with_for_update=True)
            if position is not None:
                for name, value in values.items():
                    setattr(position, name, value)

    async def _by_hand(self, m: Managed, bp: BrokerPosition) -> None:
        m.position.stop_managed = False
        async with self._db.session() as session:
            position = await session.get(Position, m.position.id, with_for_update=True)
            if position is None:
                return
            position.stop_managed = False
            before = position.sl
            position.sl, position.tp = bp.sl, bp.tp
            audit(session, ACTOR, "position.stop_changed_by_hand", f"position:{position.id}",
                  before=str(before), after=str(bp.sl))  # fmt: skip
            emit(
                session,
                POSITION_MODIFIED,
                **_ids(m),
                sl_before=_s(before),
                sl=_s(bp.sl),
                tp=_s(bp.tp),
                by="hand",
            )

    async def _modified(self, m: Managed, before: Decimal | None, after: Decimal, why: str) -> None:
        async with self._db.session() as session:
            audit(
                session,
                ACTOR,
                f"position.{why}",
                f"position:{m.position.id}",
                before=str(before),
                after=str(after),
            )
            emit(
                session,
                POSITION_MODIFIED,
                **_ids(m),
                sl_before=_s(before),
                sl=_s(after),
                tp=_s(m.position.tp),
                by=why,
            )

    async def _emit(
        self,
        account: ExecutionAccount,
        events: list[tuple[Managed, PositionFill, bool]],
        moved: dict[str | None, str],
    ) -> None:
        partials = [(m, f) for m, f, final in events if not final]
        if partials:
            async with self._db.session() as session:
                for m, fill in partials:
                    emit(
                        session, POSITION_PARTIALLY_CLOSED, **_ids(m), kind=fill.kind, targets=fill.targets,
                        joined=_joined(m, fill.targets), volume=str(fill.volume), price=str(fill.price),
                        profit=str(fill.profit), currency=account.currency, remaining=str(m.position.volume),
                        stop_moved=moved.get(m.order.decision_id) == "breakeven",
                    )  # fmt: skip
        if (events or moved) and self._relay is not None:
            self._relay.notify()


def _s(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _ids(m: Managed) -> dict[str, Any]:
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


def _joined(m: Managed, numbers: list[int]) -> list[int]:
    """Targets whose share was too small and closed with this one."""
    for share in m.plan:
        if share.number in numbers:
            return list(share.joined)
    return []
