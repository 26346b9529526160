"""Auto-execution in the engine: who gets it, once per signal, sized by their risk limits, and when it
stops."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from engine.approvals.auto_execute import AutoExecutor, AutoTradeError
from engine.billing.payments import BillingService
from engine.risk.control import EngineControl
from engine.settings import Settings
from engine.states import DecisionStatus, OrderStatus
from engine.store.db import Database
from engine.store.events import DECISION_RECORDED, ENGINE_RESUMED, SIGNAL_ACCEPTED, Event
from engine.store.models import AuditLog, Decision, ExecutionAccount, Order, Signal, User
from tests.support.billing import catalog, execution_service, pay, risk_chain, risk_limits
from tests.support.factories import CONSENT, account_of, make_user, paper_subscribers
from tests.support.prices import FixedPrices
from tests.support.queries import events

SETTINGS = Settings(_env_file=None, consent_version=CONSENT)  # type: ignore[call-arg]


async def new_signal(db: Database, producer: str, key: str, *, ttl: int = 900) -> str:
    t = datetime.now(UTC)
    async with db.session() as s:
        signal = Signal(
            producer_id=producer,
            idempotency_key=key,
            body_hash="h",
            instrument="EURUSD",
            side="buy",
            order_type="market",
            sl=Decimal("1.09800"),
            tp=Decimal("1.10400"),
            risk_percent=Decimal(1),
            ttl_seconds=ttl,
            received_at=t,
            expires_at=t + timedelta(seconds=ttl),
        )
        s.add(signal)
        await s.flush()
        return signal.id


def event(type_: str, **payload: object) -> Event:
    return Event(1, "e", type_, dict(payload), datetime.now(UTC))


async def auto_user(
    db: Database, billing: BillingService, auto: AutoExecutor, tid: int, **prefs: object
) -> User:
    user = await make_user(db, tid)
    await pay(billing, tid, "auto")
    await auto.configure(tid, enabled=True, **prefs)  # type: ignore[arg-type]
    return user


async def test_opt_in_needs_the_plan_and_sane_numbers(db: Database) -> None:
    billing, auto = (
        BillingService(db, catalog()),
        AutoExecutor(db, SETTINGS, catalog(), chain=risk_chain(), limits=risk_limits(db)),
    )
    await make_user(db, 200)
    with pytest.raises(AutoTradeError) as caught:
        await auto.configure(200, enabled=True)
    assert caught.value.code == "plan_required"
    view = await auto.configure(200, risk_percent=Decimal("0.5"), max_volume=Decimal("0.2"))
    limits = view.limits
    assert (view.enabled, limits.sizing, limits.risk_percent, limits.max_lots, view.entitled) == (
        False,
        "risk_percent",  # /auto risk is the subscriber's sizing: their risk limits, for every order
        Decimal("0.5"),
        Decimal("0.2"),
        False,
    )
    for bad in (
        {"risk_percent": Decimal(0)},
        {"risk_percent": Decimal(11)},
        {"risk_percent": Decimal("0.125")},
        {"max_volume": Decimal(-1)},
        {"max_volume": Decimal("0.005")},
    ):
        with pytest.raises(AutoTradeError):
            await auto.configure(200, **bad)  # type: ignore[arg-type]
    await pay(billing, 200, "auto")
    view = await auto.configure(200, enabled=True, clear_max_volume=True)
    assert view.enabled and view.entitled and view.limits.max_lots is None
    assert view.limits.risk_percent == Decimal("0.5")
    assert (await risk_limits(db).view(200)) is not None
    assert (await risk_limits(db).view(200)).limits == view.limits  # type: ignore[union-attr]
    with pytest.raises(AutoTradeError):
        await auto.configure(999, enabled=False)


async def test_signal_executes_without_a_tap_once_with_the_users_risk(db: Database) -> None:
    prices = FixedPrices()
    execution = execution_service(db, prices)
    submitted: list[str] = []
    billing = BillingService(db, catalog())
    auto = AutoExecutor(
        db, SETTINGS, catalog(), submit=submitted.append, chain=execution.chain, limits=risk_limits(db)
    )
    producer, _ = await paper_subscribers(db, users=0)
    await auto_user(db, billing, auto, 210, risk_percent=Decimal("0.5"))
    await auto_user(db, billing, auto, 211, max_volume=Decimal("0.1"))
    await make_user(db, 212)  # no plan
    await make_user(db, 213)
    await pay(billing, 213, "auto")  # entitled, never opted in
    signal_id = await new_signal(db, producer, "s1")

    await auto.handle(event(SIGNAL_ACCEPTED, signal_id=signal_id))
    await auto.handle(event(SIGNAL_ACCEPTED, signal_id=signal_id))  # the event handed over again
    assert len(submitted) == 2
    async with db.session() as s:
        decisions = (await s.scalars(select(Decision).order_by(Decision.user_id))).all()
        audits = (await s.scalars(select(AuditLog).where(AuditLog.actor == "auto"))).all()
    assert [(d.via, d.status) for d in decisions] == [("auto", "approved"), ("auto", "approved")]
    assert len(audits) == 2 and audits[0].details["via"] == "auto"
    assert [e.payload["via"] for e in await events(db, DECISION_RECORDED)] == ["auto", "auto"]

    volumes = [(await execution.execute_decision(d)).volume for d in submitted]  # type: ignore[union-attr]
    assert volumes == [Decimal("0.23"), Decimal("0.1")]  # 0.5 % of equity; 1 % capped at 0.1 lots


async def test_a_pending_dm_decision_is_taken_over_and_a_decided_one_is_left(db: Database) -> None:
    billing, auto = (
        BillingService(db, catalog()),
        AutoExecutor(db, SETTINGS, catalog(), chain=risk_chain(), limits=risk_limits(db)),
    )
    producer, _ = await paper_subscribers(db, users=0)
    waiting = await auto_user(db, billing, auto, 220)
    decided = await auto_user(db, billing, auto, 221)
    first = await new_signal(db, producer, "s1")
    async with db.session() as s:  # the fan-out went first: pending DM decisions, one already answered
        for user, status in ((waiting, "pending"), (decided, "rejected")):
            account = await account_of(db, user)
            s.add(
                Decision(
                    signal_id=first,
                    user_id=user.id,
                    account_id=account.id,
                    status=status,
                    via="dm",
                    chat_id=user.telegram_id,
                )
            )
    approved = await auto.run_for_signal(first)
    async with db.session() as s:
        got = {d.user_id: (d.status, d.via) for d in (await s.scalars(select(Decision))).all()}
    assert len(approved) == 1 and got == {waiting.id: ("approved", "auto"), decided.id: ("rejected", "dm")}


async def test_nothing_is_approved_while_paused_or_in_drawdown_and_resume_catches_up(db: Database) -> None:
    billing, auto = (
        BillingService(db, catalog()),
        AutoExecutor(db, SETTINGS, catalog(), chain=risk_chain(), limits=risk_limits(db)),
    )
    control = EngineControl(db)
    producer, _ = await paper_subscribers(db, users=0)
    await auto_user(db, billing, auto, 230)
    guarded = await auto_user(db, billing, auto, 231)
    await control.set_paused(True, "tg:900")
    signal_id = await new_signal(db, producer, "s1")
    assert await auto.run_for_signal(signal_id) == []
    async with db.session() as s:
        await s.execute(
            update(ExecutionAccount)
            .where(ExecutionAccount.owner_id == guarded.id)
            .values(drawdown_state="hard")
        )
    await control.set_paused(False, "tg:900")
    approved = await auto.run_backlog()
    assert len(approved) == 1  # the account past its drawdown limit is left out
    await auto.handle(event(ENGINE_RESUMED))
    async with db.session() as s:
        assert len((await s.scalars(select(Decision))).all()) == 1
    expired = await new_signal(db, producer, "s2", ttl=0)
    assert await auto.run_for_signal(expired) == []


async def test_the_gate_stops_auto_orders_turned_off_after_approval(db: Database) -> None:
    prices = FixedPrices()
    execution = execution_service(db, prices)
    billing = BillingService(db, catalog())
    auto = AutoExecutor(db, SETTINGS, catalog(), chain=risk_chain(), limits=risk_limits(db))
    producer, _ = await paper_subscribers(db, users=0)
    await auto_user(db, billing, auto, 240)
    [decision_id] = await auto.run_for_signal(await new_signal(db, producer, "s1"))
    await auto.configure(240, enabled=False)
    order = await execution.execute_decision(decision_id)
    assert order is not None and order.status == OrderStatus.REFUSED and order.reason_code == "auto_disabled"
    async with db.session() as s:
        assert (await s.scalar(select(Order.reason_code))) == "auto_disabled"
        assert (await s.scalar(select(Decision.status))) == DecisionStatus.APPROVED.value
