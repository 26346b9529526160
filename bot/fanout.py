"""The bot's half of a signal's fan-out: render and queue what the engine planned.

The engine (``engine.approvals.fanout.FanoutPlanner``) moves accepted signals to DISPATCHED and
opens their pending decisions, then emits ``signal.dispatched``. This relay subscriber turns that
event into outbox rows: one channel post per signal (``SIGNAL_CHANNEL_ID``), or one DM with
Approve/Reject per decision (the planner opened decisions only for the subscribers whose own risk
limits let the signal be offered; in channel mode those limits refuse at execution, when they tap). The text is rendered once per signal and language; the rows for all
the recipients reading that language are built by the database in one INSERT ... SELECT (on a
SQLite file, on the store's writer thread, so a large fan-out does not hold the event loop). Each row is keyed ``signal:<id>:<chat>``, so a replayed
event queues nothing twice. A signal that expired before its turn is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, String, case, func, literal, not_, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.callbacks import APPROVE, REJECT, DecisionCb
from bot.context import BotContext
from bot.keyboards import channel_keyboard, decision_labels
from bot.outbox import PENDING, Outgoing, enqueue_on
from bot.render import in_locale, signal_text
from engine.approvals.fanout import MODE_CHANNEL, MODE_DM
from engine.states import SignalStatus
from engine.store.db import UTCDateTime, utcnow
from engine.store.events import SIGNAL_DISPATCHED, Event
from engine.store.models import Decision, OutboxMessage, Signal, User

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
        """Queue the messages of one ``signal.dispatched`` payload; returns how many rows it added
        (0 when they were queued before)."""
        ids = [str(s["signal_id"]) for s in planned.get("signals") or []]
        if not ids:
            return 0
        ctx = self._ctx
        channel = ctx.settings.signal_channel_id
        mode = planned.get("mode")
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
            groups: list[tuple[str, str]] = []
            if mode == MODE_DM and signals:
                groups = [
                    (signal_id, language)
                    for signal_id, language in (
                        await session.execute(
                            select(Decision.signal_id, User.language)
                            .join(User, User.id == Decision.user_id)
                            .where(Decision.signal_id.in_(list(signals)), Decision.chat_id.is_not(None))
                            .distinct()
                        )
                    ).all()
                ]
        if mode == MODE_CHANNEL and channel is not None:
            posts = [self._channel_post(signals[i], channel) for i in ids if i in signals]

            def write(conn: Connection) -> int:
                enqueue_on(conn, posts)
                return len(posts)

        elif mode == MODE_DM and groups:
            # queued in the planned order: each chat receives the signals in the order they arrived
            position = {signal_id: n for n, signal_id in enumerate(ids)}
            groups.sort(key=lambda g: (position.get(g[0], len(position)), g[1]))
            texts = [self._dm_text(signals[signal_id], language) for signal_id, language in groups]

            def write(conn: Connection) -> int:
                return sum(queue_dms(conn, text) for text in texts)

        else:
            return 0
        queued = await ctx.engine.db.writer.call(write)
        ctx.wake_outbox()
        return queued

    def _channel_post(self, signal: Signal, channel: int) -> Outgoing:
        ctx = self._ctx
        with in_locale(ctx.i18n, ctx.config.channel_language):
            markup = channel_keyboard(signal.id, ctx.start_link(CHANNEL_START_PAYLOAD))
            payload = {
                "chat_id": channel,
                "text": signal_text(signal, ctx.settings.order_expiry_hours),
                "parse_mode": "HTML",
                "reply_markup": markup.model_dump(mode="json", exclude_none=True),
                "_meta": {"channel_signal_id": signal.id},
            }
        return Outgoing(signal_message_key(signal.id, channel), channel, "sendMessage", payload)

    def _dm_text(self, signal: Signal, language: str) -> DmText:
        with in_locale(self._ctx.i18n, language):
            approve, reject = decision_labels()
            return DmText(
                signal.id,
                language,
                signal_text(signal, self._ctx.settings.order_expiry_hours),
                approve,
                DecisionCb(action=APPROVE, decision_id=_ID).pack().split(_ID),
                reject,
                DecisionCb(action=REJECT, decision_id=_ID).pack().split(_ID),
            )


_ID = "\x00"  # where the decision id goes in packed callback data


@dataclass(frozen=True, slots=True)
class DmText:
    """A signal's DM in one language: the text and the Approve/Reject buttons around a decision id."""

    signal_id: str
    language: str
    text: str
    approve: str
    approve_data: list[str]  # [before the id, after it]
    reject: str
    reject_data: list[str]


def queue_dms(conn: Connection, dm: DmText) -> int:
    """One outbox row per decision of ``dm.signal_id`` whose subscriber reads ``dm.language``, built
    by the database in one INSERT ... SELECT (``signal:<id>:<chat>`` keys: existing rows are kept).
    Returns how many rows were added."""
    pg = conn.dialect.name == "postgresql"
    obj = func.json_build_object if pg else func.json_object
    arr = func.json_build_array if pg else func.json_array
    silent: Any = (
        not_(User.notifications) if pg else func.json(case((User.notifications, "false"), else_="true"))
    )
    decision_id = Decision.id

    def button(label: str, data: list[str]) -> Any:
        return obj("text", label, "callback_data", literal(data[0]) + decision_id + literal(data[1]))

    payload = obj(
        "chat_id",
        Decision.chat_id,
        "text",
        literal(dm.text),
        "parse_mode",
        "HTML",
        "reply_markup",
        obj(
            "inline_keyboard",
            arr(arr(button(dm.approve, dm.approve_data), button(dm.reject, dm.reject_data))),
        ),
        "disable_notification",
        silent,
        "_meta",
        obj("decision_id", decision_id),
    )
    now = utcnow()
    key = literal("signal:") + Decision.signal_id + literal(":") + sql_cast(Decision.chat_id, String())
    rows = (
        select(
            key,
            Decision.chat_id,
            literal("sendMessage"),
            payload,
            literal(PENDING),
            literal(0),
            literal(now, UTCDateTime()),
            literal(now, UTCDateTime()),
        )
        .join(User, User.id == Decision.user_id)
        .where(
            Decision.signal_id == dm.signal_id,
            Decision.chat_id.is_not(None),
            User.language == dm.language,
        )
        .order_by(Decision.user_id)
    )
    columns = [
        "dedupe_key",
        "chat_id",
        "method",
        "payload",
        "status",
        "attempts",
        "next_attempt_at",
        "created_at",
    ]
    dialect_insert = pg_insert if pg else sqlite_insert
    statement = (
        dialect_insert(OutboxMessage)
        .from_select(columns, rows)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
    )
    return int(conn.execute(statement).rowcount)
