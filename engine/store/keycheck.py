"""Is ``SECRET_KEY`` the key the stored secrets were encrypted with? And re-encrypting them all.

The store keeps a key check value in ``engine_state`` (key ``secret_key_check``): an HMAC of a
fixed label under a key derived from ``SECRET_KEY`` (``engine.store.crypto.key_check_value``),
never the key. It is written on the first start that has a key: the value of the key that decrypts
a stored secret when there is one (a wrong key is refused even then), else of ``SECRET_KEY``.
Every later start compares it: a mismatch is ``KeyMismatch`` (one line naming ``SECRET_KEY``),
raised before anything starts.

Rotation: start with the new ``SECRET_KEY`` and the retired one as ``SECRET_KEY_OLD`` (either
check value is accepted, every secret decrypts), then ``rotate_secrets`` re-encrypts every stored
secret under the new key and records the new key's check value, in one transaction. Running it
again changes nothing that matters (the values are re-encrypted under the same key).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.store.crypto import CryptoError, SecretBox
from engine.store.db import Database, utcnow
from engine.store.models import EngineState, ExecutionAccount, Producer

KEY_CHECK = "secret_key_check"
ROTATE_HINT = "see 'Rotating SECRET_KEY' in docs/security.md"


class KeyMismatch(Exception):
    """``SECRET_KEY`` (or its absence) does not fit the stored secrets. The message is one line."""


@dataclass(frozen=True)
class Rotated:
    producer_secrets: int
    account_credentials: int


def box_for(secret_key: str | None, old_key: str | None = None) -> SecretBox | None:
    return SecretBox(secret_key, old_key) if secret_key else None


async def _stored_check(session: AsyncSession, *, lock: bool = False) -> EngineState | None:
    return await session.get(EngineState, KEY_CHECK, with_for_update=lock)


async def _sample_secret(session: AsyncSession) -> str | None:
    """One stored encrypted value, if any (what a first start verifies the key against)."""
    producer = await session.scalar(select(Producer.secret_enc).limit(1))
    if producer:
        return producer
    return await session.scalar(
        select(ExecutionAccount.credentials_enc).where(ExecutionAccount.credentials_enc.is_not(None)).limit(1)
    )


def _matches(row: EngineState, box: SecretBox) -> bool:
    stored = str(row.value.get("hmac", ""))
    return any(hmac.compare_digest(stored, value) for value in box.check_values)


def _record(value: str) -> dict[str, Any]:
    return {"hmac": value, "alg": "HMAC-SHA256", "recorded_at": utcnow().isoformat()}


async def verify_key(db: Database, box: SecretBox | None) -> None:
    """Raise ``KeyMismatch`` unless ``box`` holds the key the stored secrets were encrypted with.

    Records the key check value when the store has none yet.
    """
    for attempt in range(2):
        try:
            async with db.session() as session:
                await _verify(session, box)
            return
        except IntegrityError:  # another process recorded the check value first: compare with it
            if attempt:
                raise


async def _verify(session: AsyncSession, box: SecretBox | None) -> None:
    row = await _stored_check(session)
    if box is None:
        if row is not None or await _sample_secret(session) is not None:
            raise KeyMismatch("SECRET_KEY: not set, but the database holds secrets encrypted with a key")
        return
    if row is not None:
        if not _matches(row, box):
            raise KeyMismatch(
                "SECRET_KEY: not the key the stored secrets were encrypted with "
                f"(the key check value differs); set that key, or {ROTATE_HINT}"
            )
        return
    sample = await _sample_secret(session)
    index = 0
    if sample is not None:
        try:
            index = box.key_index(sample)
        except CryptoError:
            raise KeyMismatch(
                f"SECRET_KEY: cannot decrypt the stored secrets with this key; set the key they were "
                f"encrypted with, or {ROTATE_HINT}"
            ) from None
    session.add(EngineState(key=KEY_CHECK, value=_record(box.check_values[index])))


async def rotate_secrets(db: Database, box: SecretBox) -> Rotated:
    """Re-encrypt every stored secret under ``box``'s new key and record its check value, atomically."""
    async with db.session() as session:
        row = await _stored_check(session, lock=True)
        if row is not None and not _matches(row, box):
            raise KeyMismatch(
                "SECRET_KEY: neither SECRET_KEY nor SECRET_KEY_OLD is the key the stored secrets "
                "were encrypted with (the key check value differs)"
            )
        producers = list((await session.scalars(select(Producer).with_for_update())).all())
        accounts = list(
            (
                await session.scalars(
                    select(ExecutionAccount)
                    .where(ExecutionAccount.credentials_enc.is_not(None))
                    .with_for_update()
                )
            ).all()
        )
        try:
            for producer in producers:
                producer.secret_enc = box.rotate(producer.secret_enc)
            for account in accounts:
                assert account.credentials_enc is not None
                account.credentials_enc = box.rotate(account.credentials_enc)
        except CryptoError:
            raise KeyMismatch(
                "SECRET_KEY: a stored secret decrypts with neither SECRET_KEY nor SECRET_KEY_OLD; "
                "nothing was changed"
            ) from None
        if row is None:
            session.add(EngineState(key=KEY_CHECK, value=_record(box.check_value)))
        else:
            row.value = _record(box.check_value)
            row.updated_at = utcnow()
    return Rotated(producer_secrets=len(producers), account_credentials=len(accounts))


async def verify_key_if_migrated(db: Database, box: SecretBox | None) -> None:
    """``verify_key`` on a store that has a schema; a database never migrated holds no secrets."""
    from sqlalchemy import inspect

    async with db.engine.connect() as conn:
        migrated = await conn.run_sync(lambda sync: inspect(sync).has_table(EngineState.__tablename__))
    if migrated:
        await verify_key(db, box)
