"""Engine events -> Telegram messages, queued in the outbox (a relay subscriber).

- ``decision.recorded``: the DM is edited to show the decision (buttons gone).
- ``order.filled|placed|rejected|failed``: the DM is edited again with the execution result
  (channel-mode approvals get the result by DM); ``order.failed`` also alerts ops.
- ``signal.expired``: the signal's DMs and channel post lose their buttons.
- ``position.closed``, ``drawdown.triggered`` and ``risk.daily_loss_reached`` (their daily loss
  limit paused them until the next trading day): the account's owner is told.
- a managed position's fills and stop moves (``position.partially_closed|closed|modified`` from
  ``engine.loop.management``): the subscriber, as a reply to the signal message in their DM
  (``bot.render_trades``); a break-even move caused by a target fill is told with that fill.
- what a provider's update or the subscriber's own control did to a position (the same events
  carrying ``source``, and ``position.change_refused``), and ``order.expired``: the same reply.
- ``order.filled`` (and any later result) while the approval has a position open: the signal
  message gets Close / Close 50 % / Stop → entry (``bot.routers.positions``); when its last
  position closes, the buttons go.
- engine start/stop, pause/resume, drawdown, broker connection: an ops alert; ``heartbeat``: an
  ops summary at most once per ``OPS_HEARTBEAT_SECONDS``.

Every message is keyed by the event id (or the decision), so an event handed over twice
queues nothing new.
"""

from __future__ import annotations

from typing import Any

from aiogram.utils.i18n import gettext as _
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import BotContext
from bot.fanout import signal_message_key
from bot.keyboards import NO_KEYBOARD, controls_markup
from bot.outbox import Outgoing, enqueue, pending_count
from bot.render import (
    decision_line,
    drawdown_owner_text,
    esc,
    in_locale,
    money,
    position_closed_text,
    price,
    refusal_reason,
    result_line,
    side_label,
    signal_text,
    signed_money,
)
from bot.render_risk import daily_loss_text
from bot.render_trades import change_text, expired_text, fill_text, joined_note, stop_moved_text
from bot.status import actor_name, heartbeat_text
from engine.accounts.subscribers import STATUS_ACTIVE
from engine.approvals.service import VIA_CHANNEL, VIA_DM
from engine.ops.queries import account_currencies
from engine.risk.control import is_paused
from engine.states import DecisionStatus, OrderStatus, PositionStatus
from engine.store import events as ev
from engine.store.models import Decision, ExecutionAccount, Order, OutboxMessage, Position, Signal, User

OPEN_POSITIONS = (PositionStatus.OPEN.value, PositionStatus.CLOSING.value)
ORDER_RESULTS = (ev.ORDER_FILLED, ev.ORDER_PLACED, ev.ORDER_REJECTED, ev.ORDER_FAILED)
# What an update or a subscriber's control did to one position (the payload carries ``source``).
CHANGE_OUTCOMES = (
    ev.POSITION_CLOSED,
    ev.POSITION_PARTIALLY_CLOSED,
    ev.POSITION_MODIFIED,
    ev.CHANGE_REFUSED,
)
OPS_ONLY = (
    ev.ENGINE_STARTED,
    ev.ENGINE_STOPPING,
    ev.ENGINE_PAUSED,
    ev.ENGINE_RESUMED,
    ev.BROKER_DISCONNECTED,
    ev.BROKER_RECONNECTED,
    ev.DRAWDOWN_WARNING,
)
# Every event type ``_messages`` turns into a message; the others never open a transaction. A type
# handled there and missing here is silently never told (tests/bot/test_notifier_types.py checks).
HANDLED = frozenset(
    {
        ev.DECISION_RECORDED,
        ev.SIGNAL_EXPIRED,
        ev.POSITION_CLOSED,
        ev.POSITION_PARTIALLY_CLOSED,
        ev.POSITION_MODIFIED,
        ev.ORDER_EXPIRED,
        ev.CHANGE_REFUSED,
        ev.DAILY_LOSS_REACHED,
        ev.DRAWDOWN_TRIGGERED,
        ev.ENGINE_PAUSED,
        ev.ENGINE_RESUMED,
        ev.HEARTBEAT,
    }
    | set(ORDER_RESULTS)
    | set(OPS_ONLY)
)


def _edit(chat_id: int, ref: str, text: str) -> dict[str, Any]:
    return {
        "chat_id": chat_id,
        "text": text,
        "parse_mode": "HTML",
        "reply_markup": NO_KEYBOARD,
        "_meta": {"ref": ref},
    }


class Notifier:
    def __init__(self, ctx: BotContext) -> None:
        self._ctx = ctx

    async def handle(self, event: ev.Event) -> None:
        if event.type not in HANDLED:
            return  # no transaction for events that never make a message (signal.accepted, ...)
        async with self._ctx.engine.db.session() as session:
            messages = await self._messages(session, event)
            await enqueue(session, messages)
        if messages:
            self._ctx.wake_outbox()

    async def _messages(self, session: AsyncSession, event: ev.Event) -> list[Outgoing]:
        out: list[Outgoing] = []
        t = event.type
        if t == ev.DECISION_RECORDED:
            out += await self._decision(session, event)
        elif t in ORDER_RESULTS:
            out += await self._order_result(session, event)
            if t == ev.ORDER_FAILED:
                out += self._ops(event, self._ops_text(event))
            elif t == ev.ORDER_REJECTED:
                out += await self._refusals(session, event)
        elif t == ev.SIGNAL_EXPIRED:
            out += await self._expired(session, event)
        elif t == ev.ORDER_EXPIRED:
            out += await self._trade(session, event, lambda p, _c: expired_text(p))
        elif t in CHANGE_OUTCOMES and "source" in event.payload:
            out += await self._trade(session, event, lambda p, c: change_text(t, p, c))
        elif t == ev.POSITION_CLOSED and "kind" not in event.payload:
            out += await self._owner(session, event, self._position_closed)
        elif t in (ev.POSITION_CLOSED, ev.POSITION_PARTIALLY_CLOSED):
            out += await self._trade(session, event, fill_text)
        elif t == ev.POSITION_MODIFIED:
            out += await self._trade(session, event, lambda p, _c: stop_moved_text(p))
        elif t == ev.DAILY_LOSS_REACHED:
            out += await self._owner(session, event, lambda p, _c: daily_loss_text(p))
        elif t == ev.DRAWDOWN_TRIGGERED:
            out += await self._owner(session, event, lambda p, _c: drawdown_owner_text(p))
            out += self._ops(event, self._ops_text(event))
        elif t in (ev.ENGINE_PAUSED, ev.ENGINE_RESUMED):
            by = await actor_name(session, event.payload.get("by"))
            out += self._ops(event, self._ops_text(event, {**event.payload, "by": by}))
        elif t in OPS_ONLY:
            out += self._ops(event, self._ops_text(event))
        elif t == ev.HEARTBEAT:
            out += await self._heartbeat(session, event)
        if t == ev.POSITION_CLOSED:  # the last position of an approval closed: its buttons go
            out += await self._controls_gone(session, event)
        return out

    # ------------------------------------------------------------------ subscribers' DMs

    async def _decision(self, session: AsyncSession, event: ev.Event) -> list[Outgoing]:
        decision = await session.get(Decision, event.payload.get("decision_id"))
        if decision is None or decision.via != VIA_DM or decision.chat_id is None:
            return []
        signal = await session.get(Signal, decision.signal_id)
        user = await session.get(User, decision.user_id)
        if signal is None or user is None:
            return []
        with in_locale(self._ctx.i18n, user.language):
            text = (
                signal_text(signal, self._ctx.settings.order_expiry_hours)
                + "\n\n"
                + decision_line(decision.status, decision.decided_at)
            )
        ref = signal_message_key(signal.id, decision.chat_id)
        return [
            Outgoing(
                f"decision:{decision.id}",
                decision.chat_id,
                "editMessageText",
                _edit(decision.chat_id, ref, text),
            )
        ]

    async def _order_result(self, session: AsyncSession, event: ev.Event) -> list[Outgoing]:
        decision_id = event.payload.get("decision_id")
        decision = await session.get(Decision, decision_id) if decision_id else None
        if decision is None:
            return []
        signal = await session.get(Signal, decision.signal_id)
        user = await session.get(User, decision.user_id)
        if signal is None or user is None:
            return []
        key = f"ev:{event.event_id}"
        plans = (await session.scalars(select(Order.targets).where(Order.decision_id == decision.id))).all()
        with in_locale(self._ctx.i18n, user.language):
            result = result_line(event.type, event.payload)
            note = joined_note(list(plans)) if event.type == ev.ORDER_FILLED else None
            if note:
                result += "\n" + note
            # Close / Close 50 % / Stop → entry while the approval has a position open
            controls = controls_markup(decision.id) if await _has_open(session, decision.id) else None
            if decision.via == VIA_DM and decision.chat_id is not None:
                text = "\n\n".join(
                    [
                        signal_text(signal, self._ctx.settings.order_expiry_hours),
                        decision_line(decision.status, decision.decided_at),
                        result,
                    ]
                )
                ref = signal_message_key(signal.id, decision.chat_id)
                edit = _edit(decision.chat_id, ref, text)
                if controls is not None:
                    edit["reply_markup"] = controls
                return [Outgoing(key, decision.chat_id, "editMessageText", edit)]
            if decision.via == VIA_CHANNEL and user.status == STATUS_ACTIVE:
                text = signal_text(signal, self._ctx.settings.order_expiry_hours) + "\n\n" + result
                payload: dict[str, Any] = {"chat_id": user.telegram_id, "text": text, "parse_mode": "HTML"}
                if controls is not None:
                    payload["reply_markup"] = controls
                return [Outgoing(key, user.telegram_id, "sendMessage", payload)]
        return []

    async def _expired(self, session: AsyncSession, event: ev.Event) -> list[Outgoing]:
        signal = await session.get(Signal, event.payload.get("signal_id"))
        if signal is None:
            return []
        out: list[Outgoing] = []
        channel = self._ctx.settings.signal_channel_id
        if channel is not None and signal.channel_message_id is not None:
            with in_locale(self._ctx.i18n, self._ctx.config.channel_language):
                text = (
                    signal_text(signal, self._ctx.settings.order_expiry_hours)
                    + "\n\n"
                    + decision_line(DecisionStatus.EXPIRED.value, None)
                )
            ref = signal_message_key(signal.id, channel)
            out.append(
                Outgoing(
                    f"expire:{signal.id}:{channel}", channel, "editMessageText", _edit(channel, ref, text)
                )
            )
        rows = (
            await session.execute(
                select(Decision, User)
                .join(User, User.id == Decision.user_id)
                .where(
                    Decision.signal_id == signal.id,
                    Decision.via == VIA_DM,
                    Decision.status == DecisionStatus.EXPIRED.value,
                )
            )
        ).all()
        for decision, user in rows:
            if decision.chat_id is None:
                continue
            with in_locale(self._ctx.i18n, user.language):
                text = (
                    signal_text(signal, self._ctx.settings.order_expiry_hours)
                    + "\n\n"
                    + decision_line(DecisionStatus.EXPIRED.value, None)
                )
            ref = signal_message_key(signal.id, decision.chat_id)
            out.append(
                Outgoing(
                    f"expire:{decision.id}",
                    decision.chat_id,
                    "editMessageText",
                    _edit(decision.chat_id, ref, text),
                )
            )
        return out

    async def _owner(self, session: AsyncSession, event: ev.Event, render: Any) -> list[Outgoing]:
        account = await session.get(ExecutionAccount, event.payload.get("account_id"))
        if account is None or account.owner_id is None:
            return []
        user = await session.get(User, account.owner_id)
        if user is None or user.status != STATUS_ACTIVE:
            return []
        with in_locale(self._ctx.i18n, user.language):
            text = render(event.payload, account.currency)
        payload = {
            "chat_id": user.telegram_id,
            "text": text,
            "parse_mode": "HTML",
            "disable_notification": not user.notifications,
        }
        return [Outgoing(f"ev:{event.event_id}:{user.telegram_id}", user.telegram_id, "sendMessage", payload)]

    async def _trade(self, session: AsyncSession, event: ev.Event, render: Any) -> list[Outgoing]:
        """A managed position's fill or stop move, to the subscriber whose decision opened it: a
        reply to the signal message in their DM (channel mode: a plain DM)."""
        decision = await session.get(Decision, event.payload.get("decision_id") or "")
        if decision is None:
            return []
        user = await session.get(User, decision.user_id)
        if user is None or user.status != STATUS_ACTIVE:
            return []
        currency = str(event.payload.get("currency") or "")
        if not currency:
            account = await session.get(ExecutionAccount, event.payload.get("account_id"))
            currency = account.currency if account is not None else ""
        with in_locale(self._ctx.i18n, user.language):
            text = render(event.payload, currency)
        if not text:
            return []
        payload: dict[str, Any] = {
            "chat_id": user.telegram_id,
            "text": text,
            "parse_mode": "HTML",
            "disable_notification": not user.notifications,
        }
        if decision.via == VIA_DM and decision.chat_id is not None:
            payload["chat_id"] = decision.chat_id
            payload["_meta"] = {"reply_to": signal_message_key(decision.signal_id, decision.chat_id)}
        chat = int(payload["chat_id"])
        return [Outgoing(f"ev:{event.event_id}:{chat}", chat, "sendMessage", payload)]

    async def _controls_gone(self, session: AsyncSession, event: ev.Event) -> list[Outgoing]:
        """The approval's last position closed: the buttons under the signal message go."""
        order = await session.get(Order, event.payload.get("order_id") or "")
        decision = await session.get(Decision, order.decision_id) if order is not None else None
        if decision is None or decision.via != VIA_DM or decision.chat_id is None:
            return []
        if await _has_open(session, decision.id):
            return []
        payload = {
            "chat_id": decision.chat_id,
            "reply_markup": NO_KEYBOARD,
            "_meta": {"ref": signal_message_key(decision.signal_id, decision.chat_id)},
        }
        return [Outgoing(f"controls-gone:{decision.id}", decision.chat_id, "editMessageReplyMarkup", payload)]

    @staticmethod
    def _position_closed(payload: dict[str, Any], currency: str) -> str:
        return position_closed_text(payload, currency)

    # ------------------------------------------------------------------ ops

    def _ops(self, event: ev.Event, text: str | None, key: str | None = None) -> list[Outgoing]:
        chat = self._ctx.settings.ops_chat_id
        if chat is None or not text:
            return []
        payload = {"chat_id": chat, "text": text, "parse_mode": "HTML"}
        return [Outgoing(key or f"ops:{event.event_id}", chat, "sendMessage", payload)]

    def _ops_text(self, event: ev.Event, payload: dict[str, Any] | None = None) -> str | None:
        with in_locale(self._ctx.i18n, self._ctx.config.ops_language):
            return ops_text(event.type, event.payload if payload is None else payload)

    async def _refusals(self, session: AsyncSession, event: ev.Event) -> list[Outgoing]:
        """One ops message per signal whose orders were refused, edited as more are refused."""
        chat = self._ctx.settings.ops_chat_id
        signal_id = event.payload.get("signal_id")
        if chat is None or not signal_id:
            return []
        signal = await session.get(Signal, signal_id)
        if signal is None:
            return []
        counts = (
            await session.execute(
                select(Order.reason_code, func.count(Order.id))
                .where(Order.signal_id == signal_id, Order.status == OrderStatus.REFUSED.value)
                .group_by(Order.reason_code)
                .order_by(func.count(Order.id).desc(), Order.reason_code)
            )
        ).all()
        if not counts:
            return []
        with in_locale(self._ctx.i18n, self._ctx.config.ops_language):
            text = refusals_text(signal, [(code, int(n)) for code, n in counts])
        key = f"ops:refused:{signal_id}"
        if await session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == key)) is None:
            return [Outgoing(key, chat, "sendMessage", {"chat_id": chat, "text": text, "parse_mode": "HTML"})]
        edit = {"chat_id": chat, "text": text, "parse_mode": "HTML", "_meta": {"ref": key}}
        return [Outgoing(f"{key}:{event.event_id}", chat, "editMessageText", edit)]

    async def _heartbeat(self, session: AsyncSession, event: ev.Event) -> list[Outgoing]:
        if self._ctx.settings.ops_chat_id is None:
            return []
        bucket = int(event.created_at.timestamp() // self._ctx.settings.ops_heartbeat_seconds)
        key = f"ops:heartbeat:{bucket}"
        if await session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == key)) is not None:
            return []  # this period's summary is already out
        depth = await pending_count(session)
        paused = await is_paused(session)
        currencies = await account_currencies(session)
        with in_locale(self._ctx.i18n, self._ctx.config.ops_language):
            text = heartbeat_text(event.payload, depth, paused, currencies)
        return self._ops(event, text, key)


def refusals_text(signal: Signal, counts: list[tuple[str | None, int]]) -> str:
    """The ops summary of one signal's refused orders (current locale): how many, and why."""
    total = sum(n for _code, n in counts)
    lines = [
        _("⚠️ {count} orders refused for {side} {symbol} (signal {signal}):").format(
            count=total,
            side=side_label(signal.side),
            symbol=esc(signal.instrument),
            signal=esc(signal.id[:8]),
        )
    ]
    lines += [f"• {n} × {refusal_reason(code, None)}" for code, n in counts]
    return "\n".join(lines)


async def _has_open(session: AsyncSession, decision_id: str) -> bool:
    """Whether a position opened by this approval (any target leg) is still open."""
    found = await session.scalar(
        select(Position.id)
        .join(Order, Order.id == Position.order_id)
        .where(Order.decision_id == decision_id, Position.status.in_(OPEN_POSITIONS))
        .limit(1)
    )
    return found is not None


def ops_text(event_type: str, p: dict[str, Any]) -> str | None:
    """The ops alert for an event (current locale), or None for events ops does not hear about."""
    account = p.get("account_id", "?")
    if event_type == ev.ENGINE_STARTED:
        return _("🚀 Engine started.")
    if event_type == ev.ENGINE_STOPPING:
        return _("🛑 Engine stopping.")
    if event_type == ev.ENGINE_PAUSED:  # ``by``: a display name (the notifier resolves the actor)
        return _("⏸ Trading paused by {actor}.").format(actor=p.get("by", "?"))
    if event_type == ev.ENGINE_RESUMED:
        return _("▶️ Trading resumed by {actor}.").format(actor=p.get("by", "?"))
    if event_type == ev.BROKER_DISCONNECTED:
        return _("🔌 Broker disconnected (account #{account}): {detail}").format(
            account=account, detail=esc(p.get("detail") or p.get("reason") or "")
        )
    if event_type == ev.BROKER_RECONNECTED:
        return _("🔌 Broker reconnected (account #{account}).").format(account=account)
    if event_type == ev.DRAWDOWN_WARNING:
        return _("⚠️ Drawdown warning on account #{account}: {percent}% (equity {equity}).").format(
            account=account,
            percent=price(p.get("drawdown_percent")),
            equity=money(p.get("equity"), str(p.get("currency") or "")),
        )
    if event_type == ev.DRAWDOWN_TRIGGERED:
        return _(
            "🛑 Drawdown limit hit on account #{account}: {percent}% (equity {equity}). "
            "Closed {closed} positions ({failed} failed), P&L {pnl}. Execution on it is paused."
        ).format(
            account=account,
            percent=price(p.get("drawdown_percent")),
            equity=money(p.get("equity"), str(p.get("currency") or "")),
            closed=p.get("closed", 0),
            failed=p.get("failed", 0),
            pnl=signed_money(p.get("pnl"), str(p.get("currency") or "")),
        )
    if event_type == ev.ORDER_FAILED:
        return _("❗ Order failed after retries: {side} {symbol} on account #{account}: {reason}").format(
            side=esc(str(p.get("side") or "").upper()),
            symbol=esc(p.get("symbol") or ""),
            account=account,
            reason=esc(p.get("reason") or ""),
        )
    return None
