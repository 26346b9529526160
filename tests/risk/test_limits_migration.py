"""Migration 0010 keeps what subscribers set for auto-execution: their risk % and volume cap become
their risk limits, and a downgrade puts them back (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from engine.store.db import create_engine
from engine.store.migrate import downgrade, upgrade
from tests.support.databases import PG_ADMIN_URL, pg_admin


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
        return
    name = f"tradebot_mig_{uuid.uuid4().hex[:8]}"
    asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def run(url: str, *statements: str) -> list[tuple[object, ...]]:
    async def go() -> list[tuple[object, ...]]:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                rows: list[tuple[object, ...]] = []
                for statement in statements:
                    result = await conn.execute(text(statement))
                    if result.returns_rows:
                        rows = [tuple(r) for r in result.all()]
                return rows
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_auto_execution_sizing_becomes_the_risk_limits(empty_url: str) -> None:
    upgrade(empty_url, "0009")
    run(
        empty_url,
        "INSERT INTO users (id, telegram_id, language, status, role, referral_code, notifications, created_at) "
        "VALUES (1, 501, 'en', 'active', 'subscriber', 'c501', true, '2026-12-01 10:00:00+00:00'), "
        "(2, 502, 'en', 'active', 'subscriber', 'c502', true, '2026-12-01 10:00:00+00:00')",
        "INSERT INTO auto_trade_settings (user_id, enabled, risk_percent, max_volume, updated_at) "
        "VALUES (1, true, 0.5, 0.2, '2026-12-01 10:00:00+00:00'), "
        "(2, false, 1, NULL, '2026-12-01 10:00:00+00:00')",
    )
    upgrade(empty_url)
    rows = run(empty_url, "SELECT user_id, sizing, risk_percent, max_lots FROM risk_limits ORDER BY user_id")
    assert [(r[0], r[1], Decimal(str(r[2])), None if r[3] is None else Decimal(str(r[3]))) for r in rows] == [
        (1, "risk_percent", Decimal("0.5"), Decimal("0.2")),
        (2, "risk_percent", Decimal(1), None),
    ]
    assert run(empty_url, "SELECT user_id, enabled FROM auto_trade_settings ORDER BY user_id") == [
        (1, True),
        (2, False),
    ]

    downgrade(empty_url, "0009")
    rows = run(
        empty_url, "SELECT user_id, risk_percent, max_volume FROM auto_trade_settings ORDER BY user_id"
    )
    assert [(r[0], Decimal(str(r[1])), None if r[2] is None else Decimal(str(r[2]))) for r in rows] == [
        (1, Decimal("0.5"), Decimal("0.2")),
        (2, Decimal(1), None),
    ]
