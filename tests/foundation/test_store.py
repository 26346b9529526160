"""Store behaviour on both databases: exact money, aware datetimes, append-only audit."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError

from engine.store.audit import audit
from engine.store.models import AppendOnlyViolation, AuditLog, EquityPoint, ExecutionAccount, User

VALUES = [
    Decimal("1950.55"),
    Decimal("0.00001"),
    Decimal("123456789012.123456789012"),
    Decimal("-0.5"),
    Decimal(0),
]


async def _account(session):
    user = User(telegram_id=42, referral_code="abc")
    session.add(user)
    await session.flush()
    acct = ExecutionAccount(owner_id=user.id, kind="paper", balance=Decimal("10000"))
    session.add(acct)
    await session.flush()
    return acct


async def test_money_round_trip_is_exact(db):
    async with db.session() as s:
        acct = await _account(s)
        for v in VALUES:
            s.add(EquityPoint(account_id=acct.id, balance=v, equity=v))
    async with db.session() as s:
        rows = (await s.scalars(select(EquityPoint).order_by(EquityPoint.id))).all()
    assert [r.equity for r in rows] == VALUES
    assert all(isinstance(r.equity, Decimal) for r in rows)
    assert str(rows[0].equity) == "1950.55" and str(rows[1].equity) == "0.00001"


async def test_float_is_refused_for_money(db):
    with pytest.raises(StatementError, match="never float"):
        async with db.session() as s:
            acct = await _account(s)
            s.add(EquityPoint(account_id=acct.id, balance=1.1, equity=Decimal(1)))
            await s.flush()


async def test_datetimes_are_aware_utc(db):
    at = datetime(2026, 3, 8, 12, 30, tzinfo=timezone(timedelta(hours=-5)))
    async with db.session() as s:
        acct = await _account(s)
        s.add(EquityPoint(account_id=acct.id, at=at, balance=Decimal(1), equity=Decimal(1)))
    async with db.session() as s:
        row = (await s.scalars(select(EquityPoint))).one()
    assert row.at == at and row.at.tzinfo is not None and row.at.utcoffset() == timedelta(0)
    with pytest.raises(StatementError, match="naive datetime"):
        async with db.session() as s:
            s.add(
                EquityPoint(
                    account_id=acct.id, at=datetime(2026, 1, 1), balance=Decimal(1), equity=Decimal(1)
                )
            )
            await s.flush()


async def test_unique_and_foreign_keys_are_enforced(db):
    with pytest.raises(IntegrityError):
        async with db.session() as s:
            s.add(EquityPoint(account_id=999, balance=Decimal(1), equity=Decimal(1)))
    with pytest.raises(IntegrityError):
        async with db.session() as s:
            s.add_all([User(telegram_id=1, referral_code="a"), User(telegram_id=1, referral_code="b")])


async def test_audit_log_is_append_only(db):
    async with db.session() as s:
        audit(s, "admin:1", "pause", None, password="hunter22", note="ok")
    with pytest.raises(AppendOnlyViolation):
        async with db.session() as s:
            row = (await s.scalars(select(AuditLog))).one()
            assert row.details == {"password": "***", "note": "ok"}
            row.action = "tampered"
            await s.flush()
    for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.session() as s:
                await s.execute(text(statement))
    async with db.session() as s:
        assert (await s.scalars(select(AuditLog.action))).all() == ["pause"]
    assert datetime.now(UTC)  # keep the import honest
