"""Billing's side of the bot: engine events -> outbox messages, and the wiring at bot start.

``BillingNotifier`` (a relay subscriber) queues, keyed so a replayed event queues nothing new:

- ``payment.received``: the receipt; ``payment.refunded``: the refund notice;
- ``subscription.expiring`` / ``.expired`` / ``.renewal``: reminder, drop to the free plan,
  renewal cancelled or failed;
- auto-executed decisions: the signal's DM loses its buttons, and the result is announced by DM
  (a filled order with a one-tap "close" button);
- ``referral.attributed``: the referrer hears that someone joined with their link.

``attach_billing(ctx, tasks)`` is called once per bot start: it subscribes the notifier and the
auto-executor to the event relay (after the fan-out, so the fan-out opens its pending DM decisions first), and starts the expiry/reminder sweep.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from typing import Any

from aiogram.utils.i18n import gettext as _
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.billing_texts import (
    AutoCb,
    expired_text,
    receipt_text,
    refund_text,
    reminder_text,
    renewal_text,
)
from bot.context import BotContext
from bot.fanout import signal_message_key
from bot.keyboards import NO_KEYBOARD
from bot.outbox import Outgoing, enqueue
from bot.render import esc, in_locale, price, result_line, side_label, signal_text
from engine.accounts.names import display_name
from engine.approvals.auto_execute import AutoExecutor
from engine.billing.entitlements import VIA_AUTO
from engine.billing.payments import PAYMENT_RECEIVED, PAYMENT_REFUNDED, SUBSCRIPTION_RENEWAL
from engine.billing.referrals import REFERRAL_ATTRIBUTED
from engine.billing.reminders import SUBSCRIPTION_EXPIRED, SUBSCRIPTION_EXPIRING
from engine.states import UserStatus
from engine.store import events as ev
from engine.store.events import Event, EventRelay
from engine.store.models import Decision, OutboxMessage, Signal, User

SWEEP_SECONDS = 60.0
_AUTO_RESULTS = (ev.POSITION_OPENED, ev.ORDER_PLACED, ev.ORDER_REJECTED, ev.ORDER_FAILED)
_HANDLED = frozenset(
    {
        PAYMENT_RECEIVED,
        PAYMENT_REFUNDED,
        SUBSCRIPTION_EXPIRING,
        SUBSCRIPTION_EXPIRED,
        SUBSCRIPTION_RENEWAL,
        REFERRAL_ATTRIBUTED,
        ev.DECISION_RECORDED,
        *_AUTO_RESULTS,
    }
)


def _dm(user: User, text: str, markup: dict[str, Any] | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"chat_id": user.telegram_id, "text": text, "parse_mode": "HTML"}
    if markup is not None:
        payload["reply_markup"] = markup
    return payload


class BillingNotifier:
    def __init__(self, ctx: BotContext) -> None:
        self._ctx = ctx
        self._catalog = ctx.engine.billing.catalog

    async def handle(self, event: Event) -> None:
        if event.type not in _HANDLED:
            return  # no transaction for events that never make a message
        async with self._ctx.engine.db.session() as session:
            messages = await self._messages(session, event)
            await enqueue(session, messages)
        if messages:
            self._ctx.wake_outbox()

    async def _user(self, session: AsyncSession, user_id: Any) -> User | None:
        user = await session.get(User, int(user_id)) if user_id is not None else None
        return user if user is not None and user.status == UserStatus.ACTIVE else None

    async def _messages(self, session: AsyncSession, event: Event) -> list[Outgoing]:
        p, t = event.payload, event.type
        texts = {
            PAYMENT_RECEIVED: (receipt_text, f"billing:receipt:{p.get('payment_id')}"),
            PAYMENT_REFUNDED: (refund_text, f"billing:refund:{p.get('payment_id')}"),
            SUBSCRIPTION_EXPIRING: (
                reminder_text,
                f"billing:remind:{p.get('subscription_id')}:{p.get('expires_at')}",
            ),
            SUBSCRIPTION_EXPIRED: (
                expired_text,
                f"billing:expired:{p.get('subscription_id')}:{p.get('expires_at')}",
            ),
            SUBSCRIPTION_RENEWAL: (renewal_text, f"ev:{event.event_id}"),
        }
        if t in texts:
            render, key = texts[t]
            user = await self._user(session, p.get("user_id"))
            if user is None:
                return []
            with in_locale(self._ctx.i18n, user.language):
                text = render(p, self._catalog)
            return [] if text is None else [Outgoing(key, user.telegram_id, "sendMessage", _dm(user, text))]
        if t == REFERRAL_ATTRIBUTED:
            return await self._joined(session, p)
        if t == ev.DECISION_RECORDED and p.get("via") == VIA_AUTO:
            return await self._auto_decided(session, p)
        if t in _AUTO_RESULTS:
            return await self._auto_result(session, event)
        return []

    async def _joined(self, session: AsyncSession, p: dict[str, Any]) -> list[Outgoing]:
        referrer = await self._user(session, p.get("referrer_id"))
        joined = await session.get(User, int(p["user_id"])) if p.get("user_id") is not None else None
        if referrer is None or joined is None:
            return []
        with in_locale(self._ctx.i18n, referrer.language):
            text = _("🎉 {name} joined with your invite link. /referrals shows your invitations.").format(
                name=esc(display_name(joined))
            )
        return [Outgoing(f"ref:joined:{joined.id}", referrer.telegram_id, "sendMessage", _dm(referrer, text))]

    async def _auto_decided(self, session: AsyncSession, p: dict[str, Any]) -> list[Outgoing]:
        """The signal's DM (if the fan-out sent one) loses its buttons: it is being auto-executed."""
        decision = await session.get(Decision, p.get("decision_id"))
        if decision is None or decision.chat_id is None:
            return []
        ref = signal_message_key(decision.signal_id, decision.chat_id)
        if await session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == ref)) is None:
            return []  # channel mode, or no DM: the result announcement is enough
        signal = await session.get(Signal, decision.signal_id)
        user = await session.get(User, decision.user_id)
        if signal is None or user is None:
            return []
        with in_locale(self._ctx.i18n, user.language):
            text = (
                signal_text(signal, self._ctx.settings.order_expiry_hours)
                + "\n\n"
                + _("🤖 Auto-executing with your risk settings…")
            )
        payload = {**_dm(user, text, NO_KEYBOARD), "_meta": {"ref": ref}}
        return [Outgoing(f"auto:decision:{decision.id}", decision.chat_id, "editMessageText", payload)]

    async def _auto_result(self, session: AsyncSession, event: Event) -> list[Outgoing]:
        p = event.payload
        decision = await session.get(Decision, p.get("decision_id")) if p.get("decision_id") else None
        if decision is None or decision.via != VIA_AUTO:
            return []
        user = await self._user(session, decision.user_id)
        if user is None:
            return []
        with in_locale(self._ctx.i18n, user.language):
            if event.type == ev.POSITION_OPENED:
                text = _("🤖 Auto-executed: {side} {volume} {symbol} at {price} (SL {sl}, TP {tp}).").format(
                    side=side_label(str(p.get("side") or "")),
                    volume=price(p.get("volume")),
                    symbol=esc(p.get("symbol") or ""),
                    price=price(p.get("price")),
                    sl=price(p.get("sl")),
                    tp=price(p.get("tp")),
                )
                close = AutoCb(action="close", position_id=int(p["position_id"])).pack()
                markup = {"inline_keyboard": [[{"text": _("❌ Close position"), "callback_data": close}]]}
                payload = _dm(user, text, markup)
            else:
                payload = _dm(user, _("🤖 Auto-execution:") + " " + result_line(event.type, p))
        return [Outgoing(f"auto:{event.type}:{p.get('order_id')}", user.telegram_id, "sendMessage", payload)]


class _Hook:
    """One relay subscription per relay, pointing at the newest runtime's notifier."""

    def __init__(self) -> None:
        self.notifier: BillingNotifier | None = None
        self.auto: AutoExecutor | None = None

    async def on_event(self, event: Event) -> None:
        if self.notifier is not None:
            await self.notifier.handle(event)

    async def on_auto(self, events: Sequence[Event]) -> None:
        if self.auto is not None:
            await self.auto.handle_batch(events)


_hooks: weakref.WeakKeyDictionary[EventRelay, _Hook] = weakref.WeakKeyDictionary()


def attach_billing(ctx: BotContext, tasks: list[asyncio.Task[Any]]) -> None:
    relay = ctx.engine.relay
    hook = _hooks.get(relay)
    if hook is None:
        hook = _hooks[relay] = _Hook()
        relay.subscribe_batch("billing.auto_execute", hook.on_auto)
        relay.subscribe("billing.notifier", hook.on_event)
    hook.notifier, hook.auto = BillingNotifier(ctx), ctx.engine.auto_execute
    tasks.append(asyncio.create_task(ctx.engine.billing_sweeper.run(SWEEP_SECONDS), name="billing-sweep"))
