from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from engine.states import ORDER, OrderStatus
from engine.store.db import utcnow
from engine.store.events import ORDER_FILLED, POSITION_CLOSED, POSITION_OPENED
from engine.store.models import AuditLog, Order, PaperPosition, Position
from tests.support.factories import make_approval, paper_subscribers
from tests.support.loop_world import build_engine, open_at_broker
from tests.support.queries import count, events


async def audit_actions(db):
    async with db.session() as s:
        return list((await s.scalars(select(AuditLog.action).order_by(AuditLog.id))).all())


async def positions(db):
    async with db.session() as s:
        return list((await s.scalars(select(Position).order_by(Position.id))).all())


async def test_sl_hit_at_the_broker_closes_the_store_position_with_the_deal_pnl(db):
    producer, [(user, acct)] = await paper_subscribers(db)
    engine = build_engine(db)
    order = await engine.execution.execute_decision(await make_approval(db, producer, user, acct))
    assert order.status == OrderStatus.FILLED
    engine.prices.set("EURUSD", "1.09790", "1.09800")  # through the 1.09800 stop
    report = await engine.reconciler.reconcile_account(acct)
    assert report.closed == 1 and report.corrections == 1
    [pos] = await positions(db)
    # 0.47 lots, 1.10010 -> 1.09800: -210 points x $0.47
    assert pos.status == "closed" and pos.close_reason == "sl" and pos.close_price == Decimal("1.098")
    assert pos.profit == Decimal("-98.70")
    [closed] = await events(db, POSITION_CLOSED)
    assert closed.payload["reason"] == "sl" and Decimal(closed.payload["profit"]) == Decimal("-98.70")
    assert closed.payload["position_id"] == pos.id and closed.payload["order_id"] == order.id
    assert "position.closed" in await audit_actions(db)
    again = await engine.reconciler.reconcile_account(acct)
    assert again.corrections == 0 and len(await events(db, POSITION_CLOSED)) == 1


async def test_manual_trade_is_recorded_as_external_and_never_closed(db):
    _, [(_, acct)] = await paper_subscribers(db)
    engine = build_engine(db)
    broker = await engine.broker(acct.id)
    result = await open_at_broker(broker, volume="1")
    report = await engine.reconciler.reconcile_account(acct)
    assert report.external == 1
    [pos] = await positions(db)
    assert (
        pos.external
        and pos.status == "open"
        and pos.order_id is None
        and pos.ticket == result.position_ticket
    )
    for _ in range(3):
        assert (await engine.reconciler.reconcile_account(acct)).corrections == 0
    assert len(await broker.positions()) == 1 and len(await positions(db)) == 1
    assert (await audit_actions(db)).count("position.external") == 1
    # It counts: a loss on it moves the account into the soft tier.
    engine.prices.set("EURUSD", "1.08900", "1.08910")  # -1110 points x 1 lot: 8890, 11 %
    await engine.loop.tick()
    async with db.session() as s:
        assert (await s.get(type(acct), acct.id)).drawdown_state == "soft"
    assert len(await broker.positions()) == 1


async def _crashed_after_fill(engine, db, producer, user, acct, status):
    """The order was claimed and sent, the broker filled it, and the process died before recording it."""
    decision = await make_approval(db, producer, user, acct)
    order = await engine.execution.order_for_decision(decision)
    broker = await engine.broker(acct.id)
    await open_at_broker(broker, volume="0.47", sl="1.09800", tp="1.10400", cid=order.client_order_id)
    async with db.session() as s:
        row = await s.get(Order, order.id)
        ORDER.move(row, OrderStatus.SUBMITTING)
        row.volume, row.price, row.attempts = Decimal("0.47"), Decimal("1.10010"), 1
        row.submitted_at = utcnow() - timedelta(minutes=5)
        if status is OrderStatus.UNKNOWN:
            ORDER.move(row, OrderStatus.UNKNOWN)
        elif status is OrderStatus.RETRY_WAIT:
            ORDER.move(row, OrderStatus.RETRY_WAIT)
            row.next_attempt_at = utcnow() + timedelta(hours=1)
    return order, broker


async def test_crash_between_fill_and_record_is_attached_not_resent(db):
    producer, [(user, acct)] = await paper_subscribers(db)
    engine = build_engine(db)
    for status in (OrderStatus.SUBMITTING, OrderStatus.UNKNOWN, OrderStatus.RETRY_WAIT):
        order, broker = await _crashed_after_fill(engine, db, producer, user, acct, status)
        submits = broker.submits
        report = await engine.reconciler.reconcile_account(acct)
        assert report.resolved == 1 and report.external == 0, (status, report)
        async with db.session() as s:
            row = await s.get(Order, order.id)
            pos = (await s.scalars(select(Position).where(Position.order_id == order.id))).one()
        assert row.status == OrderStatus.FILLED and row.position_ticket == pos.ticket and not pos.external
        assert broker.submits == submits  # looked up, never sent again
        # The execution path then has nothing left to do with it.
        await engine.execution.process_due(10)
        assert broker.submits == submits
    assert len(await events(db, ORDER_FILLED)) == 3 and len(await events(db, POSITION_OPENED)) == 3
    assert (await audit_actions(db)).count("order.settled") == 3
    assert "order.found_at_broker" in await audit_actions(db)


async def test_fresh_submission_in_flight_is_left_to_its_worker(db):
    producer, [(user, acct)] = await paper_subscribers(db)
    engine = build_engine(db)
    order, _ = await _crashed_after_fill(engine, db, producer, user, acct, OrderStatus.SUBMITTING)
    async with db.session() as s:
        (await s.get(Order, order.id)).submitted_at = utcnow()  # a worker is on it right now
    engine.execution.config = engine.execution.config.__class__(stale_submitting_seconds=60)
    report = await engine.reconciler.reconcile_account(acct)
    assert report.corrections == 0 and await positions(db) == []


async def test_filled_order_without_its_position_gets_it_attached(db):
    producer, [(user, acct)] = await paper_subscribers(db)
    engine = build_engine(db)
    order = await engine.execution.execute_decision(await make_approval(db, producer, user, acct))
    async with db.session() as s:
        await s.delete((await s.scalars(select(Position))).one())
        (await s.get(Order, order.id)).position_ticket = None
    report = await engine.reconciler.reconcile_account(acct)
    assert report.attached == 1
    [pos] = await positions(db)
    assert pos.order_id == order.id and not pos.external and pos.volume == Decimal("0.47")
    async with db.session() as s:
        assert (await s.get(Order, order.id)).position_ticket == pos.ticket
    assert "position.attached" in await audit_actions(db)


async def limit_order(engine, db, producer, user, acct, key):
    decision = await make_approval(
        db, producer, user, acct, order_type="limit", entry="1.09900", sl="1.09700", tp="1.10300", key=key
    )
    order = await engine.execution.execute_decision(decision)
    assert order.status == OrderStatus.PLACED, (order.reason_code, order.reason)
    return order


async def test_resting_orders_expired_filled_or_cancelled_at_the_broker(db):
    producer, [(user, acct)] = await paper_subscribers(db)
    engine = build_engine(db)
    broker = await engine.broker(acct.id)
    expired = await limit_order(engine, db, producer, user, acct, "a")
    filled = await limit_order(engine, db, producer, user, acct, "b")
    by_hand = await limit_order(engine, db, producer, user, acct, "c")
    async with db.session() as s:
        (await s.get(Order, expired.id)).expires_at = utcnow() - timedelta(seconds=1)
    await broker.cancel_order(by_hand.broker_ticket)
    report = await engine.reconciler.reconcile_account(acct)
    assert report.expired == 2 and report.resolved == 0
    pending = {o.client_order_id for o in await broker.pending_orders()}
    assert expired.client_order_id not in pending and filled.client_order_id in pending
    # The price reaches the remaining limit: it fills at the broker, the store follows.
    engine.prices.set("EURUSD", "1.09890", "1.09900")
    report = await engine.reconciler.reconcile_account(acct)
    assert report.resolved == 1
    async with db.session() as s:
        statuses = {o.id: o.status for o in (await s.scalars(select(Order))).all()}
        [pos] = (await s.scalars(select(Position))).all()
    assert statuses == {expired.id: "expired", filled.id: "filled", by_hand.id: "cancelled"}
    assert pos.order_id == filled.id and pos.open_price == Decimal("1.099")
    assert {"order.expired", "order.cancelled", "order.settled"} <= set(await audit_actions(db))


async def test_orphan_pending_order_is_cancelled_at_the_broker(db):
    producer, [(user, acct)] = await paper_subscribers(db)
    engine = build_engine(db)
    broker = await engine.broker(acct.id)
    order = await limit_order(engine, db, producer, user, acct, "o")
    async with db.session() as s:
        ORDER.move(await s.get(Order, order.id), OrderStatus.CANCELLED)  # the store let it go
    report = await engine.reconciler.reconcile_account(acct)
    assert report.orphans_cancelled == 1 and await broker.pending_orders() == []
    assert "order.orphan_cancelled" in await audit_actions(db)


async def test_stuck_closing_positions_are_finished(db):
    producer, [(user, acct)] = await paper_subscribers(db)
    engine = build_engine(db)
    broker = await engine.broker(acct.id)
    await engine.execution.execute_decision(await make_approval(db, producer, user, acct, key="x"))
    await engine.execution.execute_decision(await make_approval(db, producer, user, acct, key="y"))
    first, second = await positions(db)
    broker.lose_close_answers = 1  # the first close executes, its answer is lost
    assert (await engine.closer.close_position(first.id, "closeall", "admin:1")).failed == 1
    broker.fail_closes = 1  # the second close never reaches the broker
    assert (await engine.closer.close_position(second.id, "closeall", "admin:1")).failed == 1
    assert [p.status for p in await positions(db)] == ["closing", "closing"]
    assert len(await broker.positions()) == 1

    report = await engine.reconciler.reconcile_account(acct)
    assert report.closed == 1 and report.close_retried == 0
    first, second = await positions(db)
    assert (
        first.status == "closed" and first.close_price == Decimal("1.1") and first.profit == Decimal("-4.70")
    )
    assert second.status == "closing"  # still open at the broker: given one pass to finish on its own
    report = await engine.reconciler.reconcile_account(acct)
    assert report.close_retried == 1
    assert [p.status for p in await positions(db)] == ["closed", "closed"] and await broker.positions() == []
    assert len(await events(db, POSITION_CLOSED)) == 2


async def test_changes_made_by_hand_at_the_broker_are_taken_over(db):
    producer, [(user, acct)] = await paper_subscribers(db)
    engine = build_engine(db)
    await engine.execution.execute_decision(await make_approval(db, producer, user, acct))
    async with db.session() as s:
        paper = (await s.scalars(select(PaperPosition))).one()
        paper.sl = Decimal("1.09500")
    report = await engine.reconciler.reconcile_account(acct)
    assert report.updated == 1
    [pos] = await positions(db)
    assert pos.sl == Decimal("1.095") and pos.status == "open"
    assert "position.updated" in await audit_actions(db)
    assert await count(db, Position) == 1


async def test_reconcile_all_reports_a_failing_account_and_goes_on(db):
    _, [(_, a1), (_, a2)] = await paper_subscribers(db, users=2)
    engine = build_engine(db)
    await open_at_broker(await engine.broker(a2.id), volume="1")
    (await engine.broker(a1.id)).down = True
    reports = {r.account_id: r for r in await engine.reconciler.reconcile_all()}
    assert reports[a1.id].error and "IPC" in reports[a1.id].error
    assert reports[a2.id].external == 1
