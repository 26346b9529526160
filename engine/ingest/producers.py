"""Producers: who may post signals, with what secret and token, at what rate.

A producer has an HMAC secret (stored encrypted with ``SECRET_KEY``) and a URL token for
clients that cannot sign (only its SHA-256 is stored). The secret and the token are shown once,
when the producer is created. Lookups on the request path are cached for ``cache_seconds``
(decrypting a secret on every request would be wasted work), so disabling a producer from
another process (``tradebot producer disable``) takes effect within that many seconds; in the
same process it takes effect at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from engine.observability.logs import register_secret
from engine.store.audit import audit
from engine.store.crypto import SecretBox, constant_time_equal, new_secret, token_digest
from engine.store.db import Database
from engine.store.models import Producer
from engine.store.text import control_character

ACTIVE = "active"
DISABLED = "disabled"


class ProducerError(Exception):
    """A producer operation that cannot be done (duplicate name, no such producer, no key)."""


@dataclass(frozen=True, slots=True)
class ProducerAuth:
    """What the request path needs to know about a producer."""

    id: str
    name: str
    secret: str | None  # None when the process has no SECRET_KEY (token route only)
    active: bool
    rate_per_second: Decimal | None
    burst: int | None


@dataclass(frozen=True, slots=True)
class ProducerInfo:
    id: str
    name: str
    status: str
    rate_per_second: Decimal | None
    burst: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewProducer:
    id: str
    name: str
    secret: str
    token: str


class ProducerService:
    def __init__(self, db: Database, box: SecretBox | None, *, cache_seconds: float = 2.0) -> None:
        self._db = db
        self._box = box
        self._ttl = cache_seconds
        self._by_id: dict[str, tuple[float, ProducerAuth | None]] = {}
        self._by_digest: dict[str, tuple[float, ProducerAuth | None]] = {}

    # --- management -------------------------------------------------------------------------

    async def add(
        self, name: str, *, rate_per_second: Decimal | None = None, burst: int | None = None
    ) -> NewProducer:
        if self._box is None:
            raise ProducerError("SECRET_KEY: required to create a producer (it encrypts the secret)")
        name = name.strip()
        if not 1 <= len(name) <= 64:
            raise ProducerError("a producer name is 1 to 64 characters")
        if (found := control_character(name)) is not None:
            raise ProducerError(f"a producer name has no control characters ({found})")
        if rate_per_second is not None and rate_per_second <= 0:
            raise ProducerError("the rate must be above 0")
        if burst is not None and burst < 1:
            raise ProducerError("the burst must be at least 1")
        secret = new_secret(32)
        token = new_secret(32)
        row = Producer(
            name=name,
            secret_enc=self._box.encrypt(secret),
            token_digest=token_digest(token),
            status=ACTIVE,
            rate_per_second=rate_per_second,
            burst=burst,
        )
        try:
            async with self._db.session() as session:
                session.add(row)
                await session.flush()
                audit(session, "cli", "producer.added", row.id, name=name)
        except IntegrityError:
            raise ProducerError(f"a producer named {name!r} already exists") from None
        return NewProducer(row.id, name, secret, token)

    async def list(self) -> list[ProducerInfo]:
        async with self._db.session() as session:
            rows = (await session.scalars(select(Producer).order_by(Producer.created_at))).all()
        return [ProducerInfo(r.id, r.name, r.status, r.rate_per_second, r.burst, r.created_at) for r in rows]

    async def set_status(self, producer_id: str, status: str, *, actor: str = "cli") -> bool:
        """Enable or disable; returns False when there is no such producer."""
        if status not in (ACTIVE, DISABLED):
            raise ProducerError(f"unknown producer status {status!r}")
        async with self._db.session() as session:
            result = await session.execute(
                update(Producer).where(Producer.id == producer_id).values(status=status)
            )
            found = bool(getattr(result, "rowcount", 0))
            if found:
                audit(
                    session, actor, f"producer.{'enabled' if status == ACTIVE else 'disabled'}", producer_id
                )
        self.invalidate()
        return found

    async def disable(self, producer_id: str, *, actor: str = "cli") -> bool:
        return await self.set_status(producer_id, DISABLED, actor=actor)

    async def enable(self, producer_id: str, *, actor: str = "cli") -> bool:
        return await self.set_status(producer_id, ACTIVE, actor=actor)

    def invalidate(self) -> None:
        self._by_id.clear()
        self._by_digest.clear()

    # --- request path -----------------------------------------------------------------------

    async def by_id(self, producer_id: str) -> ProducerAuth | None:
        now = time.monotonic()
        hit = self._by_id.get(producer_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        async with self._db.sessions() as session:
            row = await session.get(Producer, producer_id)
        auth = self._auth(row)
        self._remember(self._by_id, producer_id, auth, now)
        return auth

    async def by_token(self, token: str) -> ProducerAuth | None:
        """The producer whose URL token this is (looked up by digest, compared in constant time)."""
        digest = token_digest(token)
        now = time.monotonic()
        hit = self._by_digest.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        async with self._db.sessions() as session:
            row = (
                await session.scalars(select(Producer).where(Producer.token_digest == digest))
            ).one_or_none()
        if row is not None and not constant_time_equal(row.token_digest, digest):
            row = None
        auth = self._auth(row)
        if auth is not None:
            register_secret(token)  # a token that works must never reach a log line
        self._remember(self._by_digest, digest, auth, now)
        return auth

    def _remember(
        self,
        cache: dict[str, tuple[float, ProducerAuth | None]],
        key: str,
        auth: ProducerAuth | None,
        now: float,
    ) -> None:
        if len(cache) > 10_000:  # unknown ids from a scanner must not grow memory without bound
            cache.clear()
        cache[key] = (now + self._ttl, auth)

    def _auth(self, row: Producer | None) -> ProducerAuth | None:
        if row is None:
            return None
        secret = self._box.decrypt(row.secret_enc) if self._box is not None else None
        return ProducerAuth(
            id=row.id,
            name=row.name,
            secret=secret,
            active=row.status == ACTIVE,
            rate_per_second=row.rate_per_second,
            burst=row.burst,
        )
