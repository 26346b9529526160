"""Signal ingestion: validate a producer's body, store it once, announce it.

Idempotency is enforced by the database, not by a check before the insert: ``signals`` has
unique ``(producer_id, idempotency_key)`` and ``(producer_id, signature)``. The service inserts;
on an ``IntegrityError`` it reads the row that won and answers with it (same body: a replay) or
refuses (same key, other body: a conflict). Twenty identical deliveries at once store one signal.

The idempotency key is the ``Idempotency-Key`` header, else the body's ``id``, else
``sha256:<hash of the canonical body>``: a producer that sends neither can still retry safely,
and one that wants to send the same levels twice gives each signal its own ``id``.

The signal and its ``signal.accepted`` domain event are committed in one transaction before the
caller acknowledges anything; then the relay is woken.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.exc import IntegrityError

from engine.ingest.market import QuoteLookup, market_errors
from engine.ingest.schema import FieldError, SignalInvalid, ValidSignal, parse_signal
from engine.settings import Settings
from engine.states import SignalStatus
from engine.store.db import Database, utcnow
from engine.store.events import SIGNAL_ACCEPTED, EventRelay
from engine.store.ids import uuid4
from engine.store.models import DomainEvent, Signal

MAX_BODY_BYTES = 32 * 1024
MAX_KEY_LENGTH = 128
_INSERT_SIGNAL = insert(cast(Table, Signal.__table__))
_INSERT_EVENT = insert(cast(Table, DomainEvent.__table__))


class IdempotencyConflict(Exception):
    """The idempotency key was used before with a different body (HTTP 409)."""

    def __init__(self, key: str, signal_id: str) -> None:
        super().__init__(f"idempotency key already used for signal {signal_id} with a different body")
        self.key = key
        self.signal_id = signal_id


@dataclass(frozen=True, slots=True)
class Outcome:
    signal_id: str
    status: str
    received_at: datetime
    replayed: bool


def check_idempotency_key(value: str | None) -> str | None:
    """1..128 printable ASCII characters, else a 422 naming the header."""
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_KEY_LENGTH or not all(" " <= ch <= "~" for ch in value):
        raise SignalInvalid([FieldError("Idempotency-Key", "must be 1 to 128 printable ASCII characters")])
    return value


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


class IngestService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        relay: EventRelay | None = None,
        quotes: QuoteLookup | None = None,
    ) -> None:
        """``quotes``: the market price of an instrument when the engine knows it (``MarketQuotes``);
        signals that could never execute there are refused (``engine.ingest.market``)."""
        self._db = db
        self._settings = settings
        self._relay = relay
        self._quotes = quotes
        self._instruments = frozenset(i.upper() for i in settings.instruments)
        self._writer = db.writer

    def validate(self, raw: bytes) -> ValidSignal:
        return parse_signal(raw, self._instruments)

    async def ingest(
        self,
        producer_id: str,
        raw: bytes,
        *,
        idempotency_key: str | None = None,
        signature: str | None = None,
    ) -> Outcome:
        """Validate and store; raises ``BodyNotJSON``, ``SignalInvalid`` or ``IdempotencyConflict``."""
        key = check_idempotency_key(idempotency_key)
        valid = self.validate(raw)
        await self._check_market(valid)
        key = key or valid.body.id or f"sha256:{valid.body_hash}"
        for _ in range(3):
            try:
                return await self._insert(producer_id, valid, key, signature)
            except IntegrityError:
                existing = await self._find(producer_id, key, signature)
                if existing is None:
                    continue  # the row we collided with was rolled back: try again
                if existing.idempotency_key == key and existing.body_hash != valid.body_hash:
                    raise IdempotencyConflict(key, existing.id) from None
                return Outcome(existing.id, existing.status, existing.received_at, replayed=True)
        raise RuntimeError("signal insert kept colliding with rows that then vanished")

    async def _check_market(self, valid: ValidSignal) -> None:
        if self._quotes is None:
            return
        tick = await self._quotes(valid.instrument)
        if tick is None:
            return  # no price known: accepted as before; orders are checked at approval
        errors = market_errors(valid.body, tick, self._settings.max_entry_deviation_percent)
        if errors:
            raise SignalInvalid(errors)

    async def _insert(self, producer_id: str, valid: ValidSignal, key: str, signature: str | None) -> Outcome:
        body = valid.body
        settings = self._settings
        received = utcnow()
        ttl = body.ttl_seconds if body.ttl_seconds is not None else settings.approval_ttl_seconds
        risk = body.risk_percent if body.risk_percent is not None else settings.default_risk_percent
        values: dict[str, Any] = {
            "id": uuid4(),
            "producer_id": producer_id,
            "external_id": body.id,
            "idempotency_key": key,
            "body_hash": valid.body_hash,
            "signature": signature,
            "instrument": valid.instrument,
            "side": body.side,
            "order_type": body.order_type,
            "entry": body.entry,
            "sl": body.sl,
            "tp": valid.tp,
            "targets": None
            if body.targets is None
            else [{"price": format(t.price, "f"), "close_percent": t.close_percent} for t in valid.targets],
            "breakeven_after": valid.breakeven_after,
            "trail_points": body.trail_points,
            "risk_percent": risk,
            "ttl_seconds": ttl,
            "strategy": body.strategy,
            "confidence": body.confidence,
            "note": body.note,
            "status": SignalStatus.ACCEPTED.value,
            "received_at": received,
            "expires_at": received + timedelta(seconds=ttl),
        }
        # The signal and its domain event in one transaction (the event row is what
        # ``engine.store.events.emit`` would add; Core statements keep the hot path cheap).
        await self._writer.run(
            [
                (_INSERT_SIGNAL, values),
                (
                    _INSERT_EVENT,
                    {"event_id": uuid4(), "type": SIGNAL_ACCEPTED, "payload": event_payload(values)},
                ),
            ]
        )
        if self._relay is not None:
            self._relay.notify()
        return Outcome(values["id"], values["status"], received, replayed=False)

    async def _find(self, producer_id: str, key: str, signature: str | None) -> Signal | None:
        async with self._db.sessions() as session:
            row = (
                await session.scalars(
                    select(Signal).where(Signal.producer_id == producer_id, Signal.idempotency_key == key)
                )
            ).one_or_none()
            if row is None and signature is not None:
                row = (
                    await session.scalars(
                        select(Signal).where(Signal.producer_id == producer_id, Signal.signature == signature)
                    )
                ).one_or_none()
        return row

    async def get(self, producer_id: str, signal_id: str) -> Signal | None:
        """The producer's own signal, or None (another producer's signal is not found either)."""
        async with self._db.sessions() as session:
            row = await session.get(Signal, signal_id)
        if row is None or row.producer_id != producer_id:
            return None
        return row


def event_payload(signal: dict[str, Any]) -> dict[str, Any]:
    """What ``signal.accepted`` carries (JSON-safe: decimals as strings, times as RFC 3339)."""
    return {
        "signal_id": signal["id"],
        "producer_id": signal["producer_id"],
        "instrument": signal["instrument"],
        "side": signal["side"],
        "order_type": signal["order_type"],
        "entry": _money(signal["entry"]),
        "sl": _money(signal["sl"]),
        "tp": _money(signal["tp"]),
        "targets": signal.get("targets"),
        "breakeven_after": signal.get("breakeven_after", 0),
        "trail_points": signal.get("trail_points"),
        "risk_percent": _money(signal["risk_percent"]),
        "ttl_seconds": signal["ttl_seconds"],
        "expires_at": rfc3339(signal["expires_at"]),
        "strategy": signal["strategy"],
        "confidence": _money(signal["confidence"]),
        "note": signal["note"],
    }


def rfc3339(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def signal_view(signal: Signal) -> dict[str, Any]:
    """The full signal as ``GET /api/v1/signals/<id>`` shows it (decimals as exact strings)."""
    return {
        "id": signal.id,
        "status": signal.status,
        "received_at": rfc3339(signal.received_at),
        "expires_at": rfc3339(signal.expires_at),
        "client_id": signal.external_id,
        "idempotency_key": signal.idempotency_key,
        "instrument": signal.instrument,
        "side": signal.side,
        "order_type": signal.order_type,
        "entry": _money(signal.entry),
        "sl": _money(signal.sl),
        "tp": _money(signal.tp),
        "targets": signal.targets,
        "breakeven_after": signal.breakeven_after,
        "trail_points": signal.trail_points,
        "risk_percent": _money(signal.risk_percent),
        "ttl_seconds": signal.ttl_seconds,
        "strategy": signal.strategy,
        "confidence": _money(signal.confidence),
        "note": signal.note,
    }
