"""Storing updates to a signal: a producer's (CONTRACTS 1a) and a subscriber's own controls.

Both become one ``SignalUpdate`` row and a ``signal.updated`` domain event, committed in one
transaction; ``engine.management.changes`` then applies the update to every position and order
it concerns, each exactly once. Idempotency is the database's, as for signals
(``engine.ingest.service``): unique ``(producer_id, idempotency_key)`` and ``(producer_id,
signature)`` for producers, ``(user_id, idempotency_key)`` for subscribers; a collision with the
same body is a replay (the original update), with another body a conflict (409).

The default key of a producer update is ``sha256:<signal id and canonical body>``: a retry of the
same update is recognised without any header, and a producer that means to send the same update
twice (close 50 %, then 50 % of the rest) sends its own ``Idempotency-Key`` each time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.ingest.service import IdempotencyConflict, check_idempotency_key, rfc3339
from engine.management import controls
from engine.management.controls import ControlOutcome, OwnPosition, Target, Verdict
from engine.management.plan import cancel_signal
from engine.management.schema import ValidUpdate, parse_update
from engine.store.db import Database, utcnow
from engine.store.events import SIGNAL_UPDATED, EventRelay, emit
from engine.store.ids import uuid4
from engine.store.models import PositionChange, Signal, SignalUpdate

SOURCE_PRODUCER = "producer"
SOURCE_SUBSCRIBER = "subscriber"


class SignalNotFound(Exception):
    """No signal of this producer has this id (HTTP 404; another producer's signal included)."""


@dataclass(frozen=True, slots=True)
class UpdateOutcome:
    update_id: str
    signal_id: str
    action: str
    status: str
    received_at: datetime
    replayed: bool


def update_payload(row: SignalUpdate) -> dict[str, Any]:
    """What ``signal.updated`` carries (also the outbound event's body)."""
    return {
        "update_id": row.id,
        "signal_id": row.signal_id,
        "source": SOURCE_SUBSCRIBER if row.user_id is not None else SOURCE_PRODUCER,
        "user_id": row.user_id,
        "position_id": row.position_id,
        "action": row.action,
        "params": dict(row.params or {}),
        "received_at": rfc3339(row.received_at),
    }


async def find_signal(session: AsyncSession, producer_id: str, ref: str) -> Signal | None:
    """The producer's signal by its id or by the producer's own ``id`` (the newest one with it)."""
    if not 1 <= len(ref) <= 64:
        return None
    return (
        await session.scalars(
            select(Signal)
            .where(
                Signal.producer_id == producer_id,
                or_(Signal.id == ref, Signal.external_id == ref),
            )
            .order_by(Signal.received_at.desc())
            .limit(1)
        )
    ).first()


class UpdateService:
    def __init__(self, db: Database, relay: EventRelay | None = None) -> None:
        self._db = db
        self._relay = relay

    def validate(self, raw: bytes) -> ValidUpdate:
        return parse_update(raw)

    async def submit(
        self,
        producer_id: str,
        signal_ref: str,
        raw: bytes,
        *,
        idempotency_key: str | None = None,
        signature: str | None = None,
    ) -> UpdateOutcome:
        """Validate and store a producer's update; raises ``BodyNotJSON``, ``SignalInvalid``,
        ``SignalNotFound`` or ``IdempotencyConflict``. Nothing is written for a refusal."""
        key = check_idempotency_key(idempotency_key)
        valid = self.validate(raw)
        async with self._db.sessions() as session:
            signal = await find_signal(session, producer_id, signal_ref)
        if signal is None:
            raise SignalNotFound(signal_ref)
        body_hash = hashlib.sha256(f"{signal.id}:{valid.body_hash}".encode()).hexdigest()
        key = key or f"sha256:{body_hash}"
        row = dict(
            signal_id=signal.id,
            producer_id=producer_id,
            idempotency_key=key,
            body_hash=body_hash,
            signature=signature,
            action=valid.action,
            params=valid.params,
        )
        return await self._store(
            row, select(SignalUpdate).where(_same_producer_key(producer_id, key, signature))
        )

    async def subscriber_update(
        self, telegram_id: int, target: Target, control: str, key: str
    ) -> ControlOutcome:
        """A subscriber's Close / Close 50 % / Stop → entry (``control``: a key of
        ``engine.management.controls.CONTROLS``) on one position or on the positions of one of
        their decisions. ``key`` names the button that was used: the same key again is a replay
        (the original request, nothing new). Everything is decided and stored in one transaction
        that locks the positions first (``engine.management.controls``)."""
        for _ in range(3):
            try:
                async with self._db.session() as session:
                    outcome = await controls.request(session, telegram_id, target, control, key)
            except IntegrityError:
                continue  # the same key stored meanwhile: the next round finds it as a replay
            if outcome.update_ids and outcome.verdict is Verdict.ACCEPTED and self._relay is not None:
                self._relay.notify()
            return outcome
        raise RuntimeError("subscriber control kept colliding with rows that then vanished")

    async def subscriber_target(self, telegram_id: int, target: Target) -> ControlOutcome:
        """What a control would act on and whether it may, without storing anything."""
        async with self._db.sessions() as session:
            return await controls.describe(session, telegram_id, target)

    async def subscriber_positions(self, telegram_id: int, limit: int = 20) -> list[OwnPosition]:
        """The subscriber's open positions (every account they own), oldest first."""
        async with self._db.sessions() as session:
            return await controls.own_positions(session, telegram_id, limit)

    async def _store(self, values: dict[str, Any], existing_query: Any) -> UpdateOutcome:
        for _ in range(3):
            try:
                async with self._db.session() as session:
                    row = SignalUpdate(id=uuid4(), received_at=utcnow(), status="accepted", **values)
                    session.add(row)
                    await session.flush()
                    if row.action == "cancel":
                        row.params = {
                            **row.params,
                            **await cancel_signal(session, row.signal_id, _actor(row)),
                        }
                    emit(session, SIGNAL_UPDATED, **update_payload(row))
                if self._relay is not None:
                    self._relay.notify()
                return UpdateOutcome(row.id, row.signal_id, row.action, row.status, row.received_at, False)
            except IntegrityError:
                async with self._db.sessions() as session:
                    found = (await session.scalars(existing_query)).first()
                if found is None:
                    continue  # the row we collided with was rolled back: try again
                if found.body_hash != values["body_hash"]:
                    raise IdempotencyConflict(found.idempotency_key, found.signal_id) from None
                return UpdateOutcome(
                    found.id, found.signal_id, found.action, found.status, found.received_at, True
                )
        raise RuntimeError("update insert kept colliding with rows that then vanished")

    async def progress(self, producer_id: str, signal_ref: str, update_id: str) -> dict[str, Any] | None:
        """``GET .../updates/<id>``: the update and, per position or order, where it stands."""
        async with self._db.sessions() as session:
            signal = await find_signal(session, producer_id, signal_ref)
            if signal is None or len(update_id) > 36:
                return None
            update = await session.get(SignalUpdate, update_id)
            if update is None or update.signal_id != signal.id or update.producer_id != producer_id:
                return None
            changes = (
                await session.scalars(
                    select(PositionChange)
                    .where(PositionChange.update_id == update.id)
                    .order_by(PositionChange.id)
                )
            ).all()
        return progress_view(update, list(changes))


def _actor(row: SignalUpdate) -> str:
    return f"producer:{row.producer_id}" if row.producer_id else f"user:{row.user_id}"


def _same_producer_key(producer_id: str, key: str, signature: str | None) -> Any:
    same_key = (SignalUpdate.producer_id == producer_id) & (SignalUpdate.idempotency_key == key)
    if signature is None:
        return same_key
    return same_key | ((SignalUpdate.producer_id == producer_id) & (SignalUpdate.signature == signature))


def progress_view(update: SignalUpdate, changes: list[PositionChange]) -> dict[str, Any]:
    counts = {"applied": 0, "refused": 0, "pending": 0}
    items = []
    for change in changes:
        state = change.status if change.status in ("applied", "refused") else "pending"
        counts[state] += 1
        items.append(
            {
                "id": change.id,
                "kind": change.target.split(":", 1)[0],
                "status": state,
                "reason_code": change.reason_code if state == "refused" else None,
                "reason": change.reason if state == "refused" else None,
            }
        )
    planned = update.status == "planned"
    return {
        "id": update.id,
        "signal_id": update.signal_id,
        "action": update.action,
        "params": dict(update.params or {}),
        "received_at": rfc3339(update.received_at),
        # done: planned and nothing pending any more (a note or an update with no position: at once)
        "status": "done" if planned and counts["pending"] == 0 else "in_progress",
        "counts": counts,
        "positions": items,
    }
