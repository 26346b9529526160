"""PositionCloser.close_account (batched): each position ends as a single close would leave it."""

from decimal import Decimal

from sqlalchemy import select

from engine.brokers.base import SubmitResult, SubmitStatus
from engine.store.events import POSITION_CLOSED
from engine.store.models import AuditLog, PaperPosition, Position
from tests.support.factories import paper_subscribers
from tests.support.loop_world import build_engine, open_recorded
from tests.support.queries import events


async def statuses(db):
    async with db.session() as s:
        return [p.status for p in (await s.scalars(select(Position).order_by(Position.id))).all()]


async def test_mixed_outcomes_in_one_close_all(db):
    _, [(_, acct)] = await paper_subscribers(db)
    engine = build_engine(db)
    broker = await engine.broker(acct.id)
    a = await open_recorded(engine, acct.id, volume="1")  # closes normally
    b = await open_recorded(engine, acct.id, volume="1")  # hit its TP at the broker already
    c = await open_recorded(engine, acct.id, volume="1")  # the broker refuses to close it (still open)
    d = await open_recorded(engine, acct.id, volume="1")  # the request is lost
    async with db.session() as s:
        paper = await s.get(PaperPosition, int(b.ticket))
        paper.tp = Decimal("1.09990")  # reached by the current bid 1.10000 on the next read
    original = broker.close_position

    async def close_position(ticket, cid):
        if ticket == c.ticket:
            return SubmitResult(SubmitStatus.REFUSED, reason="market closed")
        if ticket == d.ticket:
            raise TimeoutError("lost")
        return await original(ticket, cid)

    broker.close_position = close_position
    summary = await engine.closer.close_account(acct.id, "closeall", "admin:1")
    assert (summary.requested, summary.closed, summary.failed) == (4, 2, 2)
    assert await statuses(db) == ["closed", "closed", "open", "closing"]
    async with db.session() as s:
        rows = {p.id: p for p in (await s.scalars(select(Position))).all()}
        refused = (await s.scalars(select(AuditLog).where(AuditLog.action == "position.close_refused"))).one()
    assert rows[a.id].close_reason == "closeall" and rows[b.id].close_reason == "tp"
    assert rows[a.id].profit == Decimal("-10.00")  # the 10-point spread on 1 lot
    assert refused.target == f"position:{c.id}"
    assert summary.pnl == rows[a.id].profit + rows[b.id].profit
    assert len(await events(db, POSITION_CLOSED)) == 2

    broker.close_position = original
    again = await engine.closer.close_account(acct.id, "closeall", "admin:1")
    assert (again.requested, again.closed, again.failed) == (2, 2, 0)
    assert await statuses(db) == ["closed"] * 4 and await broker.positions() == []
    assert await engine.closer.close_account(acct.id, "closeall", "admin:1") == type(again)()


async def test_an_unreachable_broker_leaves_them_closing_for_reconciliation(db):
    _, [(_, acct)] = await paper_subscribers(db)
    engine = build_engine(db)
    await open_recorded(engine, acct.id, volume="1")
    (await engine.broker(acct.id)).down = True
    summary = await engine.closer.close_account(acct.id, "drawdown", "drawdown-guard")
    assert summary.failed == 1 and summary.closed == 0
    assert await statuses(db) == ["closing"]
