from decimal import Decimal

from sqlalchemy import select

from engine.risk.drawdown import GuardConfig, ResumeOutcome, Tier
from engine.settings import DrawdownReference
from engine.states import OrderStatus
from engine.store.events import DRAWDOWN_TRIGGERED, DRAWDOWN_WARNING, POSITION_CLOSED
from engine.store.models import AuditLog, EngineState, EquityPoint, Order, Position, User
from tests.support.factories import make_approval, paper_subscribers
from tests.support.loop_world import account_row, build_engine, open_at_broker, open_recorded, set_balance
from tests.support.queries import count, events

# Two buys of 2.5 lots at 1.10010: each point on the bid moves equity by $5 (10000 balance).
SOFT_12 = ("1.09770", "1.09780")  # -240 points from the entry: equity 8800 -> 12 %
HARD_21 = ("1.09590", "1.09600")  # -420 points: 7900 -> 21 %


async def two_positions(engine, account_id):
    await open_recorded(engine, account_id, volume="2.5")
    await open_recorded(engine, account_id, volume="2.5")


async def test_soft_then_hard_closes_pauses_alerts_once_and_stays_paused_after_rearm(db):
    producer, [(user, acct)] = await paper_subscribers(db)
    engine = build_engine(db)
    await two_positions(engine, acct.id)
    loop = engine.loop

    await loop.tick()
    assert (await account_row(db, acct.id)).drawdown_state == "ok"

    engine.prices.set("EURUSD", *SOFT_12)
    for _ in range(4):
        await loop.tick()
    account = await account_row(db, acct.id)
    assert account.drawdown_state == "soft" and not account.paused
    [warning] = await events(db, DRAWDOWN_WARNING)
    assert warning.payload["drawdown_percent"] == "12.00" and warning.payload["owner_id"] == user.id
    # The soft tier blocks new orders on the account.
    order = await engine.execution.execute_decision(await make_approval(db, producer, user, acct))
    assert order.status == OrderStatus.REFUSED and order.reason_code == "drawdown"

    engine.prices.set("EURUSD", *HARD_21)
    for _ in range(6):
        await loop.tick()
    account = await account_row(db, acct.id)
    assert account.drawdown_state == "hard" and account.paused and account.paused_reason == "drawdown"
    assert await count(db, Position, Position.status != "closed") == 0
    async with db.session() as s:
        reasons = {p.close_reason for p in (await s.scalars(select(Position))).all()}
    assert reasons == {"drawdown"}
    assert not await (await engine.broker(acct.id)).positions()
    [alert] = await events(db, DRAWDOWN_TRIGGERED)  # once, not once per tick
    p = alert.payload
    assert p["account_id"] == acct.id and p["owner_id"] == user.id
    assert (
        Decimal(p["reference"]) == 10000
        and Decimal(p["equity"]) == Decimal("7900")
        and p["drawdown_percent"] == "21.00"
    )
    assert (
        p["cap"] == "20"
        and p["closed"] == 2
        and p["failed"] == 0
        and Decimal(p["pnl"]) == Decimal("-2100.00")
    )
    assert p["resume_required"] is True and "resumes" in p["message"]
    assert len(await events(db, POSITION_CLOSED)) == 2
    assert len(await events(db, DRAWDOWN_WARNING)) == 1
    order = await engine.execution.execute_decision(await make_approval(db, producer, user, acct, key="k2"))
    assert order.status == OrderStatus.REFUSED and order.reason_code == "account_halted"

    # A deposit brings it back to 15 %: still at or above half the cap, no re-arm.
    await set_balance(db, acct.id, "8500")
    await loop.tick()
    assert (await account_row(db, acct.id)).drawdown_state == "hard"
    # Under half the cap: re-armed, but execution stays paused until someone resumes it.
    await set_balance(db, acct.id, "9100")
    for _ in range(3):
        await loop.tick()
    account = await account_row(db, acct.id)
    assert account.drawdown_state == "ok" and account.paused and account.paused_reason == "drawdown"
    assert await count(db, AuditLog, AuditLog.action == "drawdown.rearmed") == 1
    order = await engine.execution.execute_decision(await make_approval(db, producer, user, acct, key="k3"))
    assert order.reason_code == "account_halted"

    async with db.session() as s:
        stranger = User(telegram_id=999, referral_code="zz")
        s.add(stranger)
    assert (await engine.guard.resume_account(acct.id, "user:999", user_id=stranger.id)).outcome is (
        ResumeOutcome.FORBIDDEN
    )
    result = await engine.guard.resume_account(acct.id, f"user:{user.id}", user_id=user.id)
    assert result.outcome is ResumeOutcome.RESUMED
    account = await account_row(db, acct.id)
    assert not account.paused and account.paused_reason is None
    assert (await engine.guard.resume_account(acct.id, "admin:1")).outcome is ResumeOutcome.NOT_PAUSED
    engine.prices.set("EURUSD", "1.10000", "1.10010")
    order = await engine.execution.execute_decision(await make_approval(db, producer, user, acct, key="k4"))
    assert order.status == OrderStatus.FILLED, (order.reason_code, order.reason)
    # A second crossing after the re-arm alerts again (once).
    assert len(await events(db, DRAWDOWN_TRIGGERED)) == 1
    async with db.session() as s:
        audit_actions = set((await s.scalars(select(AuditLog.action))).all())
    assert {"drawdown.soft", "drawdown.triggered", "drawdown.alerted", "account.resumed"} <= audit_actions


async def test_equity_floor_acts_like_the_hard_tier(db):
    _, [(_, acct)] = await paper_subscribers(db)
    async with db.session() as s:
        (await s.get(type(acct), acct.id)).equity_floor = Decimal("9500")
    engine = build_engine(db, guard_config=GuardConfig(cap=Decimal(50), soft=Decimal(40)))
    await two_positions(engine, acct.id)
    await engine.loop.tick()
    engine.prices.set("EURUSD", "1.09890", "1.09900")  # -120 points: 9400, only 6 % down
    await engine.loop.tick()
    account = await account_row(db, acct.id)
    assert account.drawdown_state == "hard" and account.paused
    [alert] = await events(db, DRAWDOWN_TRIGGERED)
    assert alert.payload["equity_floor"] == "9500" and alert.payload["closed"] == 2


async def test_settings_floor_applies_when_the_account_has_none(db):
    _, [(_, acct)] = await paper_subscribers(db)
    engine = build_engine(
        db, guard_config=GuardConfig(cap=Decimal(50), soft=Decimal(40), equity_floor=Decimal(9800))
    )
    await two_positions(engine, acct.id)
    engine.prices.set("EURUSD", "1.09950", "1.09960")  # -60 points: 9700
    await engine.loop.tick()
    assert (await account_row(db, acct.id)).drawdown_state == "hard"


async def test_high_water_reference_follows_the_peak(db):
    _, [(_, acct)] = await paper_subscribers(db)
    engine = build_engine(db, guard_config=GuardConfig(reference=DrawdownReference.HIGH_WATER))
    await two_positions(engine, acct.id)
    engine.prices.set("EURUSD", "1.10410", "1.10420")  # +400 points: 12000
    await engine.loop.tick()
    account = await account_row(db, acct.id)
    assert account.high_water_equity == Decimal("12000.00") and account.reference_equity == Decimal(10000)
    engine.prices.set("EURUSD", "1.09910", "1.09920")  # 9500: 5 % under the start, 20.8 % under the peak
    await engine.loop.tick()
    account = await account_row(db, acct.id)
    assert account.drawdown_state == "hard"
    [alert] = await events(db, DRAWDOWN_TRIGGERED)
    assert Decimal(alert.payload["reference"]) == 12000 and alert.payload["drawdown_percent"] == "20.83"


async def test_reference_is_set_on_first_read(db):
    _, [(_, acct)] = await paper_subscribers(db, balance="5000")
    async with db.session() as s:
        (await s.get(type(acct), acct.id)).reference_equity = None
    engine = build_engine(db)
    await engine.loop.tick()
    account = await account_row(db, acct.id)
    assert account.reference_equity == Decimal("5000.00") == account.high_water_equity
    assert await count(db, EquityPoint, EquityPoint.account_id == acct.id) == 1


async def test_resume_during_the_hard_tier_needs_a_new_reference(db):
    _, [(user, acct)] = await paper_subscribers(db)
    engine = build_engine(db)
    await two_positions(engine, acct.id)
    engine.prices.set("EURUSD", *HARD_21)
    await engine.loop.tick()
    result = await engine.guard.resume_account(acct.id, f"user:{user.id}", user_id=user.id)
    assert result.outcome is ResumeOutcome.STILL_IN_DRAWDOWN and (await account_row(db, acct.id)).paused
    result = await engine.guard.resume_account(
        acct.id, f"user:{user.id}", user_id=user.id, reset_reference=True
    )
    assert result.outcome is ResumeOutcome.RESUMED and result.reference_equity == Decimal("7900.00")
    account = await account_row(db, acct.id)
    assert (
        not account.paused
        and account.drawdown_state == "ok"
        and account.high_water_equity == Decimal("7900.00")
    )
    await engine.loop.tick()
    assert (await account_row(db, acct.id)).drawdown_state == "ok"
    assert len(await events(db, DRAWDOWN_TRIGGERED)) == 1


async def test_crash_between_trigger_and_alert_alerts_exactly_once_after_restart(db):
    _, [(_, acct)] = await paper_subscribers(db)
    first = build_engine(db)
    await two_positions(first, acct.id)

    class Crash(Exception):
        pass

    async def crash(*_a, **_k):
        raise Crash("process died")

    first.closer.close_account = crash  # the process dies right after committing the trigger
    first.prices.set("EURUSD", *HARD_21)
    broker = await first.broker(acct.id)
    try:
        await first.guard.observe(acct.id, await broker.account())
    except Crash:
        pass
    account = await account_row(db, acct.id)
    assert account.drawdown_state == "hard" and account.paused
    assert await events(db, DRAWDOWN_TRIGGERED) == []
    async with db.session() as s:
        assert (await s.get(EngineState, f"drawdown:{acct.id}")).value["phase"] == "closing"

    second = build_engine(db, first.prices)  # the restarted process
    for _ in range(3):
        await second.loop.tick()
    [alert] = await events(db, DRAWDOWN_TRIGGERED)
    assert alert.payload["closed"] == 2 and alert.payload["drawdown_percent"] == "21.00"
    assert await count(db, Position, Position.status != "closed") == 0


async def test_failed_closes_are_retried_without_a_second_alert(db):
    _, [(_, acct)] = await paper_subscribers(db)
    engine = build_engine(db)
    await two_positions(engine, acct.id)
    broker = await engine.broker(acct.id)
    broker.fail_closes = 1
    engine.prices.set("EURUSD", *HARD_21)
    await engine.loop.tick()
    [alert] = await events(db, DRAWDOWN_TRIGGERED)
    assert alert.payload["closed"] == 1 and alert.payload["failed"] == 1
    assert await count(db, Position, Position.status != "closed") == 1
    await engine.loop.tick()
    assert await count(db, Position, Position.status != "closed") == 0
    assert not await broker.positions()
    assert len(await events(db, DRAWDOWN_TRIGGERED)) == 1


async def test_hard_tier_also_closes_a_manual_trade_the_store_had_not_seen(db):
    _, [(_, acct)] = await paper_subscribers(db)
    engine = build_engine(db)
    await open_recorded(engine, acct.id, volume="2.5")
    await engine.loop.tick()  # reconcile tick: nothing unknown yet
    broker = await engine.broker(acct.id)
    await open_at_broker(broker, volume="2.5")  # opened by hand, between reconcile passes
    engine.prices.set("EURUSD", *HARD_21)
    await engine.loop.tick()
    assert not await broker.positions()
    [alert] = await events(db, DRAWDOWN_TRIGGERED)
    assert alert.payload["closed"] == 2
    async with db.session() as s:
        external = (await s.scalars(select(Position).where(Position.external.is_(True)))).one()
    assert external.status == "closed" and external.close_reason == "drawdown"
    assert Tier((await account_row(db, acct.id)).drawdown_state) is Tier.HARD
    assert await count(db, Order) == 0
