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

from collections import defaultdict
from decimal import Decimal
from typing import Any

from loguru import logger
from sqlalchemy import select

from engine.brokers.base import Broker, BrokerPosition, Side, SubmitStatus, SymbolSpec, Tick
from engine.execution.targets import plan_from_json
from engine.loop.fills import (
    ACTOR,
    Managed,
    close_share_id,
    event_ids,
    joined_of,
    read_fills,
    text_or_none,
    write_fills,
)
from engine.loop.stop_rules import breakeven_stop, desired_stop, tighter
from engine.states import PositionStatus
from engine.store.audit import audit
from engine.store.db import Database
from engine.store.events import POSITION_MODIFIED, POSITION_PARTIALLY_CLOSED, EventRelay, emit
from engine.store.models import ExecutionAccount, Order, Position, PositionFill, Signal


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
            # Targets filled on the decision's closed positions (a hedging account's earlier legs).
            decisions = {m.order.decision_id for m in managed if m.order.decision_id is not None}
            closed: dict[str | None, set[int]] = defaultdict(set)
            if decisions:
                filled = (
                    await session.execute(
                        select(Order.decision_id, PositionFill.targets)
                        .join(Position, Position.id == PositionFill.position_id)
                        .join(Order, Order.id == Position.order_id)
                        .where(
                            Order.decision_id.in_(decisions),
                            Position.status != PositionStatus.OPEN.value,
                            PositionFill.kind == "target",
                        )
                    )
                ).all()
                for decision_id, numbers in filled:
                    closed[decision_id].update(int(n) for n in numbers)
            for m in managed:
                m.closed_targets = closed[m.order.decision_id]
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
        found = await read_fills(broker, managed, at_broker)
        with_fill = {m.order.decision_id for m, _, added in found if any(f.kind == "target" for f in added)}
        moved = await self._stops(broker, managed, at_broker, ticks, specs, with_fill)
        partials = await write_fills(self._db, account, found, at_broker, moved)
        await self._emit(account, partials, moved, bool(found))

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
    # ---- 3. stops -----------------------------------------------------------------------------------

    async def _stops(
        self,
        broker: Broker,
        managed: list[Managed],
        at_broker: dict[str, BrokerPosition],
        ticks: dict[str, Tick],
        specs: dict[str, SymbolSpec],
        with_fill: set[str | None],
    ) -> dict[str | None, str]:
        hits: dict[str | None, set[int]] = defaultdict(set)
        for m in managed:
            hits[m.order.decision_id] |= m.done_targets() | m.closed_targets
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
            # A break-even move caused by this tick's target fill is told with that fill.
            await self._modified(m, bp.sl, stop, why, why == "breakeven" and m.order.decision_id in with_fill)
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
                **event_ids(m),
                sl_before=text_or_none(before),
                sl=text_or_none(bp.sl),
                tp=text_or_none(bp.tp),
                by="hand",
            )

    async def _modified(
        self, m: Managed, before: Decimal | None, after: Decimal, why: str, with_fill: bool
    ) -> None:
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
                **event_ids(m),
                sl_before=text_or_none(before),
                sl=text_or_none(after),
                tp=text_or_none(m.position.tp),
                by=why,
                with_fill=with_fill,
            )

    async def _emit(
        self,
        account: ExecutionAccount,
        partials: list[tuple[Managed, PositionFill]],
        moved: dict[str | None, str],
        filled: bool,
    ) -> None:
        if partials:
            async with self._db.session() as session:
                for m, fill in partials:
                    emit(
                        session, POSITION_PARTIALLY_CLOSED, **event_ids(m), kind=fill.kind, targets=fill.targets,
                        joined=joined_of(m, fill.targets), volume=str(fill.volume), price=str(fill.price),
                        profit=str(fill.profit), currency=account.currency, remaining=str(m.position.volume),
                        stop_moved=m.stop_moved_told and fill.kind == "target",
                    )  # fmt: skip
        if (filled or moved) and self._relay is not None:
            self._relay.notify()
