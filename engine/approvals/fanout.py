"""Fan-out planning: who an accepted signal goes to, their decisions, and the move to DISPATCHED.

A relay batch subscriber (``signal.accepted``, and ``engine.resumed`` for what arrived while
trading was paused). For a batch of signals it runs one transaction of a few set-based
statements, however many subscribers there are:

1. ``UPDATE signals SET status = 'dispatched' WHERE id IN (...) AND status = 'accepted' AND not
   expired RETURNING id``: the planner that changes the row owns the signal, so a second planner
   (another instance, a replayed event) plans nothing twice;
2. DM mode: one ``INSERT INTO decisions ... SELECT`` per signal opens a pending decision for
   every recipient (active, consented to the current disclaimer, with an active execution
   account: the newest one), ids made by the database, the unique ``(signal_id, user_id)`` pair
   skipping any that exist; no row passes through Python. Channel mode opens no decisions (a tap
   in the channel records one);
3. one audit line per signal and one ``signal.dispatched`` event for the whole batch, which the
   bot turns into messages (one channel post per signal, or one DM per decision).

While trading is paused nothing moves: the signals stay ACCEPTED until ``engine.resumed``. With
no recipients (DM mode) the signals are dispatched and audited, and no per-subscriber work or
event follows. On a SQLite file the transaction runs on the store's writer thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Connection,
    String,
    Table,
    and_,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.elements import ColumnElement

from engine.accounts.subscribers import recipients_query
from engine.observability.logs import correlation_id
from engine.risk.control import PAUSE_KEY
from engine.risk.limits import LimitDefaults, OfferRule, offer_rule
from engine.settings import Settings
from engine.states import SIGNAL, DecisionStatus, SignalStatus
from engine.store.db import Database, UTCDateTime, utcnow
from engine.store.events import ENGINE_RESUMED, SIGNAL_ACCEPTED, SIGNAL_DISPATCHED, Event, EventRelay
from engine.store.ids import uuid4
from engine.store.models import AuditLog, Decision, DomainEvent, EngineState, RiskLimits, Signal

MODE_DM = "dm"
MODE_CHANNEL = "channel"
VIA_DM = "dm"
_CHUNK = 500  # ids per IN (...) list
_AUDIT = cast(Table, AuditLog.__table__)
_EVENTS = cast(Table, DomainEvent.__table__)
_DECISIONS = cast(Table, Decision.__table__)


@dataclass(frozen=True, slots=True)
class PlannedSignal:
    signal_id: str
    recipients: int  # DM mode: the recipients it was planned for; channel mode: 0


@dataclass(frozen=True, slots=True)
class Plan:
    mode: str
    signals: list[PlannedSignal]
    paused: bool = False

    @property
    def decisions(self) -> int:
        return sum(s.recipients for s in self.signals)


class FanoutPlanner:
    def __init__(self, db: Database, settings: Settings, relay: EventRelay | None = None) -> None:
        self._db = db
        self._settings = settings
        self._relay = relay
        self._limits = LimitDefaults.from_settings(settings)  # subscribers' own limits filter offers

    @property
    def mode(self) -> str:
        return MODE_CHANNEL if self._settings.signal_channel_id is not None else MODE_DM

    async def handle_batch(self, events: Sequence[Event]) -> None:
        """The relay subscriber: plans every accepted signal of the batch in one transaction."""
        ids = [str(e.payload["signal_id"]) for e in events if e.type == SIGNAL_ACCEPTED]
        backlog = any(e.type == ENGINE_RESUMED for e in events)
        if ids or backlog:
            await self.plan(ids, backlog=backlog)

    async def plan(self, signal_ids: Sequence[str], *, backlog: bool = False) -> Plan:
        """Dispatch the given signals (and, with ``backlog``, every open ACCEPTED one)."""
        mode = self.mode
        consent = self._settings.consent_version
        now = utcnow()
        cid = correlation_id.get()

        def run(conn: Connection) -> Plan:
            return _plan(conn, list(signal_ids), backlog, mode, consent, now, cid, self._limits)

        plan = await self._db.writer.call(run)
        if plan.signals and self._relay is not None:
            self._relay.notify()
        return plan


def _plan(
    conn: Connection,
    signal_ids: list[str],
    backlog: bool,
    mode: str,
    consent: str,
    now: datetime,
    cid: str | None,
    limits: LimitDefaults,
) -> Plan:
    if _paused(conn):
        return Plan(mode, [], paused=True)
    claimed = _claim(conn, signal_ids, backlog, now)
    if not claimed:
        return Plan(mode, [])
    counts = dict.fromkeys(claimed, 0)
    if mode == MODE_DM:
        recipients = int(
            conn.scalar(select(func.count()).select_from(recipients_query(consent).subquery())) or 0
        )
        if recipients:
            # each subscriber's own limits may keep a signal from them (engine.risk.limits): below
            # their minimum R:R, an instrument they turned off, paused by their daily loss limit
            rows = conn.execute(select(RiskLimits)).all()  # only subscribers who changed a limit
            if not rows and limits.min_rr is None:  # nobody's limits rule anything out
                _open_decisions(conn, claimed, consent, now)
                counts = dict.fromkeys(claimed, recipients)
            else:
                signals = conn.execute(
                    select(Signal.id, Signal.instrument, Signal.entry, Signal.sl, Signal.tp).where(
                        Signal.id.in_(claimed)
                    )
                ).all()
                rules = {signal.id: offer_rule(signal, rows, limits, now) for signal in signals}
                _open_decisions(conn, claimed, consent, now, rules)
                opened = conn.execute(
                    select(Decision.signal_id, func.count())
                    .where(Decision.signal_id.in_(claimed), Decision.via == VIA_DM)
                    .group_by(Decision.signal_id)
                ).all()
                counts.update({signal_id: int(n) for signal_id, n in opened})
    conn.execute(
        insert(_AUDIT),
        [
            {
                "at": now,
                "actor": "engine",
                "action": "signal.dispatched",
                "target": f"signal:{signal_id}",
                "details": {"mode": mode, "recipients": counts[signal_id]},
                "correlation_id": cid,
            }
            for signal_id in claimed
        ],
    )
    planned = [PlannedSignal(signal_id, counts[signal_id]) for signal_id in claimed]
    if mode == MODE_CHANNEL or any(p.recipients for p in planned):
        payload: dict[str, Any] = {
            "mode": mode,
            "signals": [{"signal_id": p.signal_id, "recipients": p.recipients} for p in planned],
        }
        conn.execute(
            insert(_EVENTS),
            {"event_id": uuid4(), "type": SIGNAL_DISPATCHED, "payload": payload, "created_at": now},
        )
    return Plan(mode, planned)


def _paused(conn: Connection) -> bool:
    value = conn.scalar(select(EngineState.value).where(EngineState.key == PAUSE_KEY))
    return bool(value and value.get("paused"))


def _claim(conn: Connection, signal_ids: list[str], backlog: bool, now: datetime) -> list[str]:
    """Move the open ACCEPTED signals among ``signal_ids`` (or all, with ``backlog``) to DISPATCHED;
    returns the ids this transaction moved, oldest first."""
    target = SIGNAL.check(SignalStatus.ACCEPTED, SignalStatus.DISPATCHED).value
    base = (
        update(Signal)
        .where(Signal.status == SignalStatus.ACCEPTED.value, Signal.expires_at > now)
        .values(status=target)
        .returning(Signal.id, Signal.received_at)
    )
    moved: list[tuple[str, datetime]] = []
    if backlog:
        moved += [(r[0], r[1]) for r in conn.execute(base)]
    else:
        for start in range(0, len(signal_ids), _CHUNK):
            chunk = signal_ids[start : start + _CHUNK]
            moved += [(r[0], r[1]) for r in conn.execute(base.where(Signal.id.in_(chunk)))]
    order = {signal_id: i for i, signal_id in enumerate(signal_ids)}
    moved.sort(key=lambda r: (order.get(r[0], len(order)), r[1]))
    return [signal_id for signal_id, _ in moved]


def _open_decisions(
    conn: Connection,
    signal_ids: list[str],
    consent: str,
    now: datetime,
    rules: dict[str, OfferRule] | None = None,
) -> int:
    """One pending DM decision per signal and recipient, in one INSERT ... SELECT (ids made by the
    database); a (signal, user) pair that has a decision already is skipped; with ``rules``, only
    the recipients each signal's rule offers it to. Returns how many were opened."""
    r = recipients_query(consent).subquery()
    rows = (
        select(
            new_uuid_sql(conn.dialect.name),
            Signal.id,
            r.c.id,
            r.c.account_id,
            literal(DecisionStatus.PENDING.value, String()),
            literal(VIA_DM, String()),
            r.c.telegram_id,
            r.c.consent_version,
            literal(now, UTCDateTime()),
        )
        .select_from(Signal)
        .join(r, true())
    )  # every signal of the batch with every recipient
    rows = rows.where(Signal.id.in_(signal_ids))
    if rules is not None:
        offered = []
        for signal_id, rule in rules.items():
            who: ColumnElement[bool]
            if rule.default:
                who = r.c.id.not_in(rule.flipped) if rule.flipped else true()
            else:
                who = r.c.id.in_(rule.flipped) if rule.flipped else false()
            offered.append(and_(Signal.id == signal_id, who))
        rows = rows.where(or_(*offered)) if offered else rows.where(false())
    columns = [
        "id",
        "signal_id",
        "user_id",
        "account_id",
        "status",
        "via",
        "chat_id",
        "consent_version",
        "created_at",
    ]
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = (
        dialect_insert(_DECISIONS)
        .from_select(columns, rows)
        .on_conflict_do_nothing(index_elements=["signal_id", "user_id"])
    )
    return int(conn.execute(statement).rowcount)


def new_uuid_sql(dialect: str) -> ColumnElement[str]:
    """A random (version 4) UUID as text, made by the database for each row."""
    if dialect == "postgresql":
        return sql_cast(func.gen_random_uuid(), String())

    def hexes(n: int) -> ColumnElement[str]:
        return func.lower(func.hex(func.randomblob(n)))

    variant = func.substr("89ab", 1 + func.abs(func.random()) % 4, 1)
    return (
        hexes(4)
        + "-"
        + hexes(2)
        + "-4"
        + func.substr(hexes(2), 2)
        + "-"
        + variant
        + func.substr(hexes(2), 2)
        + "-"
        + hexes(6)
    )
