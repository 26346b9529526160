"""Rows a test starts from: producers, subscribers with paper accounts, signals and approved decisions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from engine.states import DecisionStatus
from engine.store.db import Database
from engine.store.models import Decision, ExecutionAccount, Producer, Signal, User

CONSENT = "2026-11"  # the consent version every factory-made subscriber agreed to


async def paper_subscribers(db, *, balance="10000", users=1):
    """A producer, N subscribers each with a paper account. Returns (producer_id, [(user, account)])."""
    async with db.session() as s:
        producer = Producer(name="p1", secret_enc="x", token_digest="d" * 64)
        s.add(producer)
        pairs = []
        for n in range(users):
            user = User(telegram_id=1000 + n, referral_code=f"r{n}", consent_version=CONSENT)
            s.add(user)
            await s.flush()
            acct = ExecutionAccount(
                owner_id=user.id, kind="paper", balance=Decimal(balance), reference_equity=Decimal(balance)
            )
            s.add(acct)
            await s.flush()
            pairs.append((user, acct))
    return producer.id, pairs


async def make_approval(
    db,
    producer_id,
    user,
    account,
    *,
    side="buy",
    sl="1.09800",
    tp="1.10400",
    entry=None,
    order_type="market",
    risk="1",
    ttl=900,
    key=None,
):
    async with db.session() as s:
        now = datetime.now(UTC)
        sig = Signal(
            producer_id=producer_id,
            idempotency_key=key or f"k-{uuid.uuid4().hex}",
            body_hash="h",
            instrument="EURUSD",
            side=side,
            order_type=order_type,
            entry=Decimal(entry) if entry else None,
            sl=Decimal(sl),
            tp=Decimal(tp),
            risk_percent=Decimal(risk),
            ttl_seconds=ttl,
            received_at=now,
            expires_at=now + timedelta(seconds=ttl),
        )
        s.add(sig)
        await s.flush()
        dec = Decision(
            signal_id=sig.id,
            user_id=user.id,
            account_id=account.id,
            status=DecisionStatus.APPROVED.value,
            decided_at=now,
            consent_version=CONSENT,
        )
        s.add(dec)
        await s.flush()
    return dec.id


async def make_user(
    db: Database,
    telegram_id: int,
    *,
    referred_by: int | None = None,
    kind: str | None = "paper",
    username: str | None = None,
    status: str = "active",
) -> User:
    """A consented subscriber with (optionally) an active account of ``kind``."""
    async with db.session() as s:
        user = User(
            telegram_id=telegram_id,
            username=username,
            first_name=f"U{telegram_id}",
            referral_code=f"C{telegram_id}",
            referred_by_id=referred_by,
            consent_version=CONSENT,
            status=status,
        )
        s.add(user)
        await s.flush()
        if kind is not None:
            s.add(
                ExecutionAccount(
                    owner_id=user.id,
                    kind=kind,
                    balance=Decimal(10000),
                    reference_equity=Decimal(10000),
                    login="5001" if kind == "mt5" else None,
                )
            )
    return user


async def account_of(db: Database, user: User) -> ExecutionAccount:
    async with db.session() as s:
        account = await s.scalar(select(ExecutionAccount).where(ExecutionAccount.owner_id == user.id))
        assert account is not None
        return account
