"""What one update does to one position or order: the broker request, its outcome, its record.

``plan_request`` turns (update, position | order) into a ``Planned`` broker call, or settles it
at once (``Outcome``: the position is already closed, the stop is already there, a volume that
cannot be split). ``outcome_of`` reads the broker's answer; ``resolve_lost`` looks at the terminal
when the answer was lost. ``Outcome.record`` writes the row's result, the position's or order's
new state and the events (``position.modified``, ``position.partially_closed``,
``position.closed``, ``position.change_refused``) in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from engine.brokers.base import Broker, Deal, SubmitResult, SubmitStatus
from engine.execution.positions import apply_close
from engine.states import CHANGE, ORDER, ChangeStatus, OrderStatus, PositionStatus
from engine.store.audit import audit
from engine.store.db import utcnow
from engine.store.events import (
    CHANGE_REFUSED,
    ORDER_REJECTED,
    POSITION_MODIFIED,
    POSITION_PARTIALLY_CLOSED,
    EventRelay,
    emit,
)
from engine.store.models import Order, Position, PositionChange, SignalUpdate

MODIFY, CLOSE, CLOSE_PART, CANCEL = "modify", "close", "close_partial", "cancel_order"
# What ``position.closed`` carries besides the position when an update closed it (the subscriber
# is told as a reply to the signal message: ``decision_id``; ``source`` says who asked).
_CLOSE_EXTRA = ("change_id", "update_id", "signal_id", "action", "params", "source", "decision_id")


def _s(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _d(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


@dataclass(frozen=True, slots=True)
class Planned:
    kind: str
    ticket: str
    client_id: str
    sl: Decimal | None = None
    tp: Decimal | None = None
    volume: Decimal | None = None
    remaining: Decimal | None = None  # a partial close: the position's volume after it

    def send(self, broker: Broker) -> Awaitable[SubmitResult]:
        calls: dict[str, Callable[[], Awaitable[SubmitResult]]] = {
            MODIFY: lambda: broker.modify_position(self.ticket, self.sl, self.tp),
            CLOSE: lambda: broker.close_position(self.ticket, self.client_id),
            CLOSE_PART: lambda: broker.close_partial(self.ticket, self.volume or Decimal(0), self.client_id),
            CANCEL: lambda: broker.cancel_order(self.ticket),
        }
        return calls[self.kind]()

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ticket": self.ticket,
            "sl": _s(self.sl),
            "tp": _s(self.tp),
            "volume": _s(self.volume),
            "remaining": _s(self.remaining),
        }


@dataclass
class Outcome:
    status: ChangeStatus
    code: str | None = None
    message: str | None = None
    sl: Decimal | None = None  # a modification: the levels now set
    tp: Decimal | None = None
    modified: bool = False
    deals: list[Deal] = field(default_factory=list)  # a close: the deals it made
    full_close: bool = False
    cancelled: bool = False  # a resting order removed

    async def record(self, session: AsyncSession, row: PositionChange, relay: EventRelay | None) -> None:
        CHANGE.move(row, self.status)
        row.reason_code = self.code
        row.reason = None if self.message is None else self.message[:300]
        row.done_at = utcnow()
        upd = await session.get(SignalUpdate, row.update_id)
        assert upd is not None
        position = (
            await session.get(Position, row.position_id, with_for_update=True) if row.position_id else None
        )
        order = await session.get(Order, row.order_id) if row.order_id else None
        base = _payload(row, upd, position, order)
        result: dict[str, Any] = dict(row.result or {})
        if self.status is ChangeStatus.REFUSED:
            audit(
                session, "engine", "position.change_refused", row.target, code=self.code, reason=self.message
            )
            emit(session, CHANGE_REFUSED, **base, reason_code=self.code, reason=self.message)
        elif self.modified and position is not None:
            before = {"sl": _s(position.sl), "tp": _s(position.tp)}
            position.sl, position.tp = self.sl, self.tp
            result.update(sl=_s(self.sl), tp=_s(self.tp))
            audit(
                session,
                "engine",
                "position.modified",
                row.target,
                before=before,
                sl=_s(self.sl),
                tp=_s(self.tp),
            )
            emit(session, POSITION_MODIFIED, **base, sl=_s(self.sl), tp=_s(self.tp), previous=before)
        elif self.deals and position is not None and position.status != PositionStatus.CLOSED.value:
            closed = sum((d.volume for d in self.deals), Decimal(0))
            price = sum((d.price * d.volume for d in self.deals), Decimal(0)) / closed if closed else None
            profit = sum((d.profit + d.commission + d.swap for d in self.deals), Decimal(0))
            result.update(volume=_s(closed), price=_s(price), profit=_s(profit))
            if self.full_close or closed >= position.volume:
                apply_close(
                    session,
                    position,
                    self.deals,
                    f"closed_by_{base['source']}",
                    "engine",
                    **{k: base[k] for k in _CLOSE_EXTRA},
                )
            else:
                # What the position holds after this close, as planned: reconciliation may already
                # have read the smaller volume from the terminal, so never subtract twice.
                planned_rest = _d(((row.result or {}).get("request") or {}).get("remaining"))
                position.volume = planned_rest if planned_rest is not None else position.volume - closed
                position.profit = position.profit + profit
                audit(
                    session,
                    "engine",
                    "position.partially_closed",
                    row.target,
                    volume=_s(closed),
                    price=_s(price),
                )
                emit(
                    session,
                    POSITION_PARTIALLY_CLOSED,
                    **base,
                    closed_volume=_s(closed),
                    remaining_volume=_s(position.volume),
                    price=_s(price),
                    profit=_s(profit),
                )
        elif self.cancelled and order is not None and ORDER.can(order.status, OrderStatus.CANCELLED):
            ORDER.move(order, OrderStatus.CANCELLED)
            order.reason_code = "cancelled_by_provider"
            order.reason = "cancelled by the provider"
            audit(session, "engine", "order.cancelled", f"order:{order.id}", ticket=order.broker_ticket)
            emit(
                session,
                ORDER_REJECTED,
                **{k: base[k] for k in ("order_id", "signal_id", "account_id", "symbol", "side")},
                decision_id=order.decision_id,
                client_order_id=order.client_order_id,
                order_type=order.order_type,
                volume=_s(order.volume),
                price=_s(order.price),
                status=order.status,
                reason_code=order.reason_code,
                reason=order.reason,
            )
        row.result = result
        if relay is not None:
            relay.notify()


def _payload(
    row: PositionChange, upd: SignalUpdate, position: Position | None, order: Order | None
) -> dict[str, Any]:
    return {
        "change_id": row.id,
        "update_id": upd.id,
        "signal_id": upd.signal_id,
        "action": upd.action,
        "params": dict(upd.params or {}),
        "source": "subscriber" if upd.user_id is not None else "producer",
        "decision_id": order.decision_id if order is not None else None,
        "account_id": row.account_id,
        "position_id": row.position_id,
        "order_id": row.order_id,
        "ticket": position.ticket if position is not None else (order.broker_ticket if order else None),
        "symbol": position.symbol if position is not None else (order.symbol if order else None),
        "side": position.side if position is not None else (order.side if order else None),
        "open_price": _s(position.open_price) if position is not None else None,
    }


def _refused(code: str, message: str) -> Outcome:
    return Outcome(ChangeStatus.REFUSED, code, message)


def new_levels(upd: SignalUpdate, position: Position) -> tuple[Decimal | None, Decimal | None]:
    params = upd.params or {}
    if upd.action == "move_sl":
        sl = position.open_price if params.get("sl") == "entry" else _d(params.get("sl"))
        return sl, position.tp
    return position.sl, _d(params.get("price"))


async def plan_request(
    broker: Broker, upd: SignalUpdate, position: Position | None, order: Order | None, client_id: str
) -> Planned | Outcome:
    if position is None:
        assert order is not None
        if upd.action != "cancel":
            return _refused("not_filled", "the order has not filled yet: its levels are not changed")
        if order.status in (OrderStatus.CANCELLED.value, OrderStatus.EXPIRED.value):
            return Outcome(ChangeStatus.APPLIED, "already_removed", "the order was already removed")
        if order.status != OrderStatus.PLACED.value or not order.broker_ticket:
            return _refused("order_filled", "the order has already filled: it is a position now")
        return Planned(CANCEL, order.broker_ticket, client_id)
    if position.status == PositionStatus.CLOSED.value:
        return _refused("position_closed", "the position is already closed")
    if upd.action in ("move_sl", "move_tp"):
        sl, tp = new_levels(upd, position)
        if sl == position.sl and tp == position.tp:
            return Outcome(ChangeStatus.APPLIED, "no_change", "the levels were already there", sl=sl, tp=tp)
        return Planned(MODIFY, position.ticket, client_id, sl=sl, tp=tp)
    percent = Decimal(int((upd.params or {}).get("percent", 100)))
    if percent >= 100:
        return Planned(CLOSE, position.ticket, client_id, volume=position.volume)
    spec = await broker.symbol_spec(position.symbol)
    if spec is None:
        return _refused("unknown_symbol", f"{position.symbol} is not a symbol this account can trade")
    step = spec.volume_step
    volume = (position.volume * percent / 100 / step).to_integral_value(rounding=ROUND_DOWN) * step
    rest = position.volume - volume
    if volume < spec.volume_min or (rest > 0 and rest < spec.volume_min):
        return _refused(
            "invalid_volume",
            f"{percent}% of {position.volume} lots cannot be closed: the minimum is {spec.volume_min} lots "
            f"in steps of {step}",
        )
    return Planned(CLOSE_PART, position.ticket, client_id, volume=volume, remaining=rest)


def _ours(deals: list[Deal], client_id: str) -> list[Deal]:
    return [d for d in deals if d.entry == "out" and d.client_order_id == client_id]


async def outcome_of(broker: Broker, planned: Planned, result: SubmitResult) -> Outcome:
    if result.status is SubmitStatus.REFUSED:
        return _refused(result.code or f"retcode_{result.retcode}", result.reason or "refused by the broker")
    if planned.kind == MODIFY:
        return Outcome(ChangeStatus.APPLIED, sl=planned.sl, tp=planned.tp, modified=True)
    if planned.kind == CANCEL:
        return Outcome(ChangeStatus.APPLIED, cancelled=True)
    deals = await broker.position_deals(planned.ticket)
    mine = _ours(deals, planned.client_id)
    if planned.kind == CLOSE and not mine:  # some brokers tag a full close differently: its out deals
        mine = [d for d in deals if d.entry == "out"]
    return Outcome(ChangeStatus.APPLIED, deals=mine, full_close=planned.kind == CLOSE)


async def resolve_lost(
    broker: Broker, upd: SignalUpdate, row: PositionChange, position: Position | None, order: Order | None
) -> Outcome | None:
    """What the terminal says about a change whose answer was lost; None: not done, send again."""
    request = (row.result or {}).get("request") or {}
    kind = request.get("kind")
    if kind is None:  # claimed but the request was never recorded: nothing was sent
        return None
    ticket = str(request["ticket"])
    if kind == MODIFY:
        live = {p.ticket: p for p in await broker.positions()}
        current = live.get(ticket)
        if current is None:
            return _refused("position_gone", "the position is no longer open at the terminal")
        sl, tp = _d(request.get("sl")), _d(request.get("tp"))
        if current.sl == sl and current.tp == tp:
            return Outcome(ChangeStatus.APPLIED, sl=sl, tp=tp, modified=True)
        return None
    if kind in (CLOSE, CLOSE_PART):
        mine = _ours(await broker.position_deals(ticket), row.client_id)
        if mine:
            return Outcome(ChangeStatus.APPLIED, deals=mine, full_close=kind == CLOSE)
        return None
    resting = {o.ticket for o in await broker.pending_orders()}
    if ticket in resting:
        return None
    if order is not None:
        found = await broker.find_by_client_id(order.client_order_id)
        if found is not None and found.state == "filled":
            return _refused("order_filled", "the order filled before it could be removed")
    return Outcome(ChangeStatus.APPLIED, cancelled=True)
