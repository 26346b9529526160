"""Bearer tokens for the admin REST API (``tradebot admin token add|list|revoke``).

A token is ``tba_`` plus 32 random bytes (URL-safe base64), shown once when it is made; the store
keeps only its SHA-256 (a fast hash is right for a secret of that entropy: nothing to guess), so a
copy of the database grants nothing. Scopes: ``read`` (status, positions) and ``trade`` (also
pause, resume, close-all). A revoked token stays listed and is refused (401) from then on.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from engine.store.audit import audit
from engine.store.db import Database, utcnow
from engine.store.models import AdminToken

PREFIX = "tba_"
READ = "read"
TRADE = "trade"
SCOPES = (READ, TRADE)
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per token


class TokenError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class AdminTokenInfo:
    name: str
    scope: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def allows(self, scope: str) -> bool:
        return self.scope == TRADE or scope == READ


@dataclass(frozen=True, slots=True)
class NewAdminToken:
    name: str
    scope: str
    token: str  # shown once


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _info(row: AdminToken) -> AdminTokenInfo:
    return AdminTokenInfo(row.name, row.scope, row.created_at, row.last_used_at, row.revoked_at)


class AdminTokens:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, name: str, scope: str, *, actor: str = "cli") -> NewAdminToken:
        if not _NAME.match(name):
            raise TokenError("bad_name", "the name must be 1 to 64 of A-Z a-z 0-9 . _ -")
        if scope not in SCOPES:
            raise TokenError("bad_scope", "the scope must be read or trade")
        token = PREFIX + secrets.token_urlsafe(32)
        try:
            async with self._db.session() as session:
                session.add(AdminToken(name=name, scope=scope, digest=digest_of(token), created_at=utcnow()))
                await session.flush()
                audit(session, actor, "admin_token.added", f"admin_token:{name}", scope=scope)
        except IntegrityError:
            raise TokenError("exists", f"a token named {name!r} exists already") from None
        return NewAdminToken(name, scope, token)

    async def list(self) -> tuple[AdminTokenInfo, ...]:
        async with self._db.session() as session:
            rows = (await session.scalars(select(AdminToken).order_by(AdminToken.created_at))).all()
        return tuple(_info(row) for row in rows)

    async def revoke(self, name: str, *, actor: str = "cli") -> bool:
        """False when there is no live token of that name (unknown, or revoked already)."""
        async with self._db.session() as session:
            row = await session.scalar(select(AdminToken).where(AdminToken.name == name).with_for_update())
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = utcnow()
            audit(session, actor, "admin_token.revoked", f"admin_token:{name}")
        return True

    async def authenticate(self, token: str) -> AdminTokenInfo | None:
        """The live token this secret is, or None (unknown, malformed or revoked)."""
        if not token.startswith(PREFIX) or len(token) > 128:
            return None
        async with self._db.session() as session:
            row = await session.scalar(select(AdminToken).where(AdminToken.digest == digest_of(token)))
            if row is None or row.revoked_at is not None:
                return None
            now = utcnow()
            if row.last_used_at is None or now - row.last_used_at >= _TOUCH_EVERY:
                row.last_used_at = now
            return _info(row)
