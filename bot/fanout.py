"""Fan-out of an accepted signal: a DM with Approve/Reject to every eligible subscriber, or one
channel post (``SIGNAL_CHANNEL_ID``). A subscriber whose own risk limits rule the signal out (below
their minimum R:R, an instrument they turned off, paused by their daily loss limit) is left out;
in channel mode the same limits refuse at execution, with the reason, when they tap.

Runs as a relay subscriber on ``signal.accepted``. In one transaction it opens a pending
decision per recipient, queues one outbox message each (keyed ``signal:<id>:<chat>``, so a
replayed event queues nothing) and moves the signal to DISPATCHED. While trading is paused the
signal stays ACCEPTED; ``engine.resumed`` fans out whatever is still open.
"""

from __future__ import annotations

from sqlalchemy import select

from bot.context import BotContext
from bot.keyboards import channel_keyboard, decision_labels, decision_markup
from bot.outbox import Outgoing, enqueue
from bot.render import in_locale, signal_text
from engine.risk.control import is_paused
from engine.states import SIGNAL, SignalStatus
from engine.store.audit import audit
from engine.store.db import utcnow
from engine.store.events import ENGINE_RESUMED, SIGNAL_ACCEPTED, Event
from engine.store.models import Signal

CHANNEL_START_PAYLOAD = "channel"


def signal_message_key(signal_id: str, chat_id: int) -> str:
    """The outbox key of the message that carries a signal to one chat (edits refer to it)."""
    return f"signal:{signal_id}:{chat_id}"


class Fanout:
    def __init__(self, ctx: BotContext) -> None:
        self._ctx = ctx

    async def handle(self, event: Event) -> None:
        if event.type == SIGNAL_ACCEPTED:
            await self.dispatch(str(event.payload["signal_id"]))
        elif event.type == ENGINE_RESUMED:
            await self.dispatch_backlog()

    async def dispatch_backlog(self) -> int:
        async with self._ctx.engine.db.session() as session:
            ids = (
                await session.scalars(
                    select(Signal.id)
                    .where(Signal.status == SignalStatus.ACCEPTED.value, Signal.expires_at > utcnow())
                    .order_by(Signal.received_at)
                )
            ).all()
        total = 0
        for signal_id in ids:
            total += await self.dispatch(signal_id)
        return total

    async def dispatch(self, signal_id: str) -> int:
        """Queue the signal's messages; returns how many (0 when it was already sent, expired or paused)."""
        ctx = self._ctx
        channel = ctx.settings.signal_channel_id
        async with ctx.engine.db.session() as session:
            signal = await session.get(Signal, signal_id, with_for_update=True)
            if signal is None or signal.status != SignalStatus.ACCEPTED or signal.expires_at <= utcnow():
                return 0
            if await is_paused(session):
                return 0
            if channel is not None:
                with in_locale(ctx.i18n, ctx.config.channel_language):
                    markup = channel_keyboard(signal.id, ctx.start_link(CHANNEL_START_PAYLOAD))
                    payload = {
                        "chat_id": channel,
                        "text": signal_text(signal),
                        "parse_mode": "HTML",
                        "reply_markup": markup.model_dump(mode="json", exclude_none=True),
                        "_meta": {"channel_signal_id": signal.id},
                    }
                messages = [Outgoing(signal_message_key(signal.id, channel), channel, "sendMessage", payload)]
            else:
                # Each subscriber's own limits may keep the signal from them (engine.risk.limits).
                recipients = await ctx.engine.risk_limits.offered(
                    session, signal, await ctx.subscribers.recipients(session)
                )
                decision_of = await ctx.approvals.open_pending(session, signal, recipients)
                rendered: dict[str, tuple[str, tuple[str, str]]] = {}  # one text per language
                messages = []
                for r in recipients:
                    if r.language not in rendered:
                        with in_locale(ctx.i18n, r.language):
                            rendered[r.language] = (signal_text(signal), decision_labels())
                    text, labels = rendered[r.language]
                    decision_id = decision_of[r.user_id]
                    payload = {
                        "chat_id": r.telegram_id,
                        "text": text,
                        "parse_mode": "HTML",
                        "reply_markup": decision_markup(decision_id, labels),
                        "disable_notification": not r.notifications,
                        "_meta": {"decision_id": decision_id},
                    }
                    key = signal_message_key(signal.id, r.telegram_id)
                    messages.append(Outgoing(key, r.telegram_id, "sendMessage", payload))
            await enqueue(session, messages)
            SIGNAL.move(signal, SignalStatus.DISPATCHED)
            audit(
                session,
                "bot",
                "signal.dispatched",
                f"signal:{signal.id}",
                mode="channel" if channel is not None else "dm",
                messages=len(messages),
            )
        ctx.wake_outbox()
        return len(messages)
