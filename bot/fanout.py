"""The bot's half of a signal's fan-out: render and queue what the engine planned.

The engine (``engine.approvals.fanout.FanoutPlanner``) moves accepted signals to DISPATCHED and
opens their pending decisions, then emits ``signal.dispatched``. This relay subscriber turns that
event into outbox rows: one channel post per signal (``SIGNAL_CHANNEL_ID``), or one DM with
Approve/Reject per decision. The text is rendered once per signal and language; the rows for all
recipients go in with one bulk insert (on a SQLite file, on the store's writer thread, so a large
fan-out does not hold the event loop). Each row is keyed ``signal:<id>:<chat>``, so a replayed
event queues nothing twice. A signal that expired before its turn is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from bot.context import BotContext
from bot.keyboards import channel_keyboard, decision_labels, decision_markups
from bot.outbox import Outgoing, enqueue_on
from bot.render import in_locale, signal_text
from engine.approvals.fanout import MODE_CHANNEL, MODE_DM
from engine.states import SignalStatus
from engine.store.events import SIGNAL_DISPATCHED, Event
from engine.store.models import Decision, Signal, User

CHANNEL_START_PAYLOAD = "channel"


def signal_message_key(signal_id: str, chat_id: int) -> str:
    """The outbox key of the message that carries a signal to one chat (edits refer to it)."""
    return f"signal:{signal_id}:{chat_id}"


class Fanout:
    def __init__(self, ctx: BotContext) -> None:
        self._ctx = ctx

    async def handle_batch(self, events: Sequence[Event]) -> None:
        for event in events:
            if event.type == SIGNAL_DISPATCHED:
                await self.render(event.payload)

    async def render(self, planned: dict[str, Any]) -> int:
        """Queue the messages of one ``signal.dispatched`` payload; returns how many rows it built."""
        ids = [str(s["signal_id"]) for s in planned.get("signals") or []]
        if not ids:
            return 0
        ctx = self._ctx
        channel = ctx.settings.signal_channel_id
        async with ctx.engine.db.sessions() as session:
            signals = {
                s.id: s
                for s in (
                    await session.scalars(
                        select(Signal).where(
                            Signal.id.in_(ids), Signal.status == SignalStatus.DISPATCHED.value
                        )
                    )
                ).all()
            }
            recipients: list[Any] = []
            if planned.get("mode") == MODE_DM and signals:
                recipients = list(
                    (
                        await session.execute(
                            select(
                                Decision.id,
                                Decision.signal_id,
                                Decision.chat_id,
                                User.language,
                                User.notifications,
                            )
                            .join(User, User.id == Decision.user_id)
                            .where(Decision.signal_id.in_(list(signals)), Decision.chat_id.is_not(None))
                            .order_by(Decision.signal_id, User.id)
                        )
                    ).all()
                )
        if planned.get("mode") == MODE_CHANNEL and channel is not None:
            messages = [self._channel_post(signals[i], channel) for i in ids if i in signals]
        elif planned.get("mode") == MODE_DM:
            messages = self._dms(signals, recipients)
        else:
            messages = []
        if messages:

            def write(conn: Connection) -> None:
                enqueue_on(conn, messages)

            await ctx.engine.db.writer.call(write)
            ctx.wake_outbox()
        return len(messages)

    def _channel_post(self, signal: Signal, channel: int) -> Outgoing:
        ctx = self._ctx
        with in_locale(ctx.i18n, ctx.config.channel_language):
            markup = channel_keyboard(signal.id, ctx.start_link(CHANNEL_START_PAYLOAD))
            payload = {
                "chat_id": channel,
                "text": signal_text(signal),
                "parse_mode": "HTML",
                "reply_markup": markup.model_dump(mode="json", exclude_none=True),
                "_meta": {"channel_signal_id": signal.id},
            }
        return Outgoing(signal_message_key(signal.id, channel), channel, "sendMessage", payload)

    def _dms(self, signals: dict[str, Signal], recipients: list[Any]) -> list[Outgoing]:
        rendered: dict[tuple[str, str], tuple[str, Any]] = {}  # (signal, language) -> text, markups
        messages: list[Outgoing] = []
        for decision_id, signal_id, chat_id, language, notifications in recipients:
            key = (signal_id, language)
            if key not in rendered:
                with in_locale(self._ctx.i18n, language):
                    rendered[key] = (signal_text(signals[signal_id]), decision_markups(decision_labels()))
            text, markup = rendered[key]
            payload = {
                "chat_id": chat_id,
                "text": text,
                "parse_mode": "HTML",
                "reply_markup": markup(decision_id),
                "disable_notification": not notifications,
                "_meta": {"decision_id": decision_id},
            }
            messages.append(Outgoing(signal_message_key(signal_id, chat_id), chat_id, "sendMessage", payload))
        return messages
