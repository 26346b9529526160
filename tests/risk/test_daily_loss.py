"""The daily loss limit: the trading day, the day's starting equity, the pause until the next
trading day (set once, told once), and the gate that refuses meanwhile (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from engine.brokers.base import AccountSnapshot
from engine.risk.chain import TradeContext
from engine.risk.limit_gates import DailyLossGate
from engine.risk.limits import LimitDefaults
from engine.risk.trading_day import TradingDay
from engine.settings import SettingsError, load_settings
from engine.states import OrderStatus
from engine.store.db import Database, utcnow
from engine.store.events import DAILY_LOSS_REACHED
from engine.store.models import AuditLog, EquityPoint, ExecutionAccount, RiskLimits, Signal, User
from tests.support.factories import make_approval
from tests.support.ops import OpsWorld, ops_world
from tests.support.queries import events

D = Decimal
NEW_YORK = TradingDay.parse("17:00 America/New_York")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "start", "next_start"),
    [
        ("2026-07-15 12:00", "2026-07-14 21:00", "2026-07-15 21:00"),  # summer: 17:00 EDT = 21:00 UTC
        ("2026-07-15 21:00", "2026-07-15 21:00", "2026-07-16 21:00"),  # a new day starts at its start
        ("2026-07-15 20:59", "2026-07-14 21:00", "2026-07-15 21:00"),
        ("2026-12-15 12:00", "2026-12-14 22:00", "2026-12-15 22:00"),  # winter: 17:00 EST = 22:00 UTC
        ("2026-11-02 12:00", "2026-11-01 22:00", "2026-11-02 22:00"),  # the day after the clocks change
        ("2026-07-18 12:00", "2026-07-17 21:00", "2026-07-18 21:00"),  # Saturday
    ],
)
def test_the_trading_day_starts_at_the_rollover(now: str, start: str, next_start: str) -> None:
    assert NEW_YORK.start(at(now)) == at(start)
    assert NEW_YORK.next_start(at(now)) == at(next_start)


def test_a_bad_trading_day_start_is_one_line_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in ("5pm", "25:00 UTC", "17:00 Mars/Olympus"):
        monkeypatch.setenv("TRADING_DAY_START", bad)
        with pytest.raises(SettingsError, match=r"^TRADING_DAY_START: "):
            load_settings(_env_file=None)
    monkeypatch.setenv("TRADING_DAY_START", "00:00 UTC")
    monkeypatch.setenv("RISK_SIZING", "martingale")
    with pytest.raises(SettingsError, match=r"^RISK_SIZING"):
        load_settings(_env_file=None)


def snapshot(equity: str) -> AccountSnapshot:
    value = D(equity)
    return AccountSnapshot(login="1", balance=D(10000), equity=value, margin=D(0), free_margin=value)


async def gate_refusal(world: OpsWorld, now: datetime) -> str | None:
    user, account = world.pairs[0]
    async with world.db.session() as s:
        signal = Signal(instrument="EURUSD", entry=None, sl=D("1.098"), tp=D("1.104"))
        ctx = TradeContext(s, account, await s.get(User, user.id), signal, now)  # type: ignore[arg-type]
        refusal = await DailyLossGate(world.services.risk_limits.defaults).check(ctx)
    return None if refusal is None else refusal.code


async def test_reaching_the_limit_pauses_until_the_next_trading_day_once(db: Database) -> None:
    async with ops_world(db, risk_daily_loss_percent="3") as world:
        watch = world.services.trading_loop.daily_loss
        assert watch is not None
        account_id = world.pairs[0][1].id
        now = utcnow()
        day = world.services.risk_limits.defaults.trading_day
        async with world.db.session() as s:  # the close of the day before, and a reading since
            s.add(EquityPoint(account_id=account_id, at=day.start(now) - timedelta(minutes=1), balance=D(10000),
                              equity=D(10000), margin=D(0)))  # fmt: skip
            s.add(EquityPoint(account_id=account_id, at=day.start(now) + timedelta(seconds=1), balance=D(10000),
                              equity=D(9990), margin=D(0)))  # fmt: skip

        reading = await watch.observe(account_id, snapshot("9750.00"), now)
        assert reading is not None and reading.day_start_equity == D(10000)
        assert reading.loss_percent == D("2.5") and reading.paused_until is None
        assert await events(world.db, DAILY_LOSS_REACHED) == []

        reading = await watch.observe(account_id, snapshot("9700"), now)  # exactly 3 %
        assert reading is not None and reading.paused_until == day.next_start(now)
        again = await watch.observe(account_id, snapshot("9600"), now + timedelta(seconds=1))
        assert again is not None and again.paused_until is None  # paused already: told once
        [event] = await events(world.db, DAILY_LOSS_REACHED)
        assert event.payload["account_id"] == account_id and event.payload["user_id"] == world.pairs[0][0].id
        assert (event.payload["loss_percent"], event.payload["limit_percent"]) == ("3.00", "3")
        assert event.payload["until"] == day.next_start(now).isoformat()
        async with world.db.session() as s:
            assert (
                len((await s.scalars(select(AuditLog).where(AuditLog.action == "risk.daily_loss"))).all())
                == 1
            )
            row = await s.get(RiskLimits, world.pairs[0][0].id)
            assert row is not None and row.paused_until == day.next_start(now)

        # Execution stops for this subscriber, with the reason; the other one trades on.
        user, account = world.pairs[0]
        order = await world.services.execution.execute_decision(
            await make_approval(world.db, world.producer, user, account)
        )
        assert order is not None and order.status == OrderStatus.REFUSED
        assert order.reason_code == "limit_daily_loss"
        other, other_account = world.pairs[1]
        order = await world.services.execution.execute_decision(
            await make_approval(world.db, world.producer, other, other_account)
        )
        assert order is not None and order.status == OrderStatus.FILLED

        # The next trading day: the pause is over, and the day counts from its own start.
        tomorrow = day.next_start(now) + timedelta(minutes=1)
        assert await gate_refusal(world, now) == "limit_daily_loss"
        assert await gate_refusal(world, tomorrow) is None
        async with world.db.session() as s:  # the loop's last reading of the day
            s.add(EquityPoint(account_id=account_id, at=day.next_start(now) - timedelta(minutes=1),
                              balance=D(10000), equity=D(9700), margin=D(0)))  # fmt: skip
        reading = await watch.observe(account_id, snapshot("9650"), tomorrow)
        assert reading is not None and reading.day_start == day.next_start(now)
        assert reading.day_start_equity == D(9700) and reading.paused_until is None  # 0.52 % down
        async with world.db.session() as s:
            account_row = await s.get(ExecutionAccount, account_id)
            assert account_row is not None and account_row.day_start_at == day.next_start(now)


async def test_no_limit_no_watching(db: Database) -> None:
    async with ops_world(db) as world:
        watch = world.services.trading_loop.daily_loss
        assert watch is not None
        account_id = world.pairs[0][1].id
        assert await watch.observe(account_id, snapshot("100")) is None
        await world.services.risk_limits.change(
            world.pairs[0][0].telegram_id, "test", daily_loss_percent=D(5)
        )
        reading = await watch.observe(account_id, snapshot("9000"))  # no history: counts from now
        assert reading is not None and reading.day_start_equity == D(9000) and reading.paused_until is None
        reading = await watch.observe(account_id, snapshot("8500"))
        assert reading is not None and reading.paused_until is not None  # 5.6 % down from 9,000


async def test_the_trading_loop_watches_the_daily_loss(db: Database) -> None:
    async with ops_world(db, risk_daily_loss_percent="0.5") as world:
        await world.fill()  # 0.47 lots of EURUSD
        loop = world.services.trading_loop
        await loop.tick()
        assert await events(world.db, DAILY_LOSS_REACHED) == []
        world.prices.set("EURUSD", "1.09850", "1.09860")  # -16 pips on 0.47 lots: about -0.75 %
        await loop.tick()
        [event] = await events(world.db, DAILY_LOSS_REACHED)
        assert event.payload["account_id"] == world.pairs[0][1].id


def test_defaults_come_from_settings() -> None:
    settings = load_settings(
        _env_file=None, risk_daily_loss_percent="4", trading_day_start="00:00 UTC", max_volume="2"
    )
    defaults = LimitDefaults.from_settings(settings)
    assert defaults.daily_loss_percent == D(4) and defaults.max_lots == D(2)
    assert defaults.trading_day.start(at("2026-07-15 12:00")) == at("2026-07-15 00:00")
