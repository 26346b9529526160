import asyncio
from decimal import Decimal

from sqlalchemy import select

from engine.brokers.base import SubmitResult, SubmitStatus
from engine.brokers.paper import PaperBroker
from engine.brokers.registry import BrokerRegistry
from engine.execution.orders import OrderRules
from engine.execution.positions import PositionCloser
from engine.execution.service import ExecutionService, client_order_id_for
from engine.risk.control import EngineControl
from engine.states import OrderStatus
from engine.store.events import EventRelay
from engine.store.models import AuditLog, DomainEvent, Order, PaperOrder, Position
from tests.support.execution import FAST, OPEN
from tests.support.factories import make_approval, paper_subscribers
from tests.support.prices import FixedPrices


class CountingBroker(PaperBroker):
    """The real paper broker, counting what reaches it (and optionally losing answers)."""

    def __init__(self, *a, lose_answers=0, down_before_send=0, **kw):
        super().__init__(*a, **kw)
        self.submits = 0
        self.lose_answers = lose_answers
        self.down_before_send = down_before_send

    async def tick(self, symbol):
        if self.down_before_send > 0:
            self.down_before_send -= 1
            raise ConnectionError("terminal not connected")
        return await super().tick(symbol)

    async def submit(self, request):
        self.submits += 1
        result = await super().submit(request)
        if self.lose_answers > 0:
            self.lose_answers -= 1
            raise TimeoutError("IPC timeout after the order executed")
        return result


def service(db, prices, brokers_by_account, config=FAST):
    async def factory(account):
        broker = brokers_by_account.get(account.id) or CountingBroker(db, account.id, prices=prices)
        brokers_by_account[account.id] = broker
        return broker

    registry = BrokerRegistry(factory)
    relay = EventRelay(db)
    rules = lambda account: OrderRules(min_rr=Decimal("1.5"), min_stop_points=5, market_hours=OPEN)  # noqa: E731
    return ExecutionService(db, registry, rules, relay, config), registry, relay


async def events(db):
    async with db.session() as s:
        return [e.type for e in (await s.scalars(select(DomainEvent).order_by(DomainEvent.id))).all()]


async def test_approval_becomes_one_filled_order_and_position(db):
    prices = FixedPrices()
    producer, [(user, acct)] = await paper_subscribers(db)
    decision = await make_approval(db, producer, user, acct)
    brokers = {}
    svc, _, _ = service(db, prices, brokers)
    order = await svc.execute_decision(decision)
    assert order.status == OrderStatus.FILLED
    assert order.client_order_id == client_order_id_for(decision) and len(order.client_order_id) <= 31
    # 1% of 10000 = 100 risk; SL 1.09800 from the 1.10000 bid exit -> stop measured from order price 1.10010:
    # 210 ticks x $1 -> 100/210 = 0.476 -> floored to 0.47 lots
    assert order.volume == Decimal("0.47") and order.fill_price == Decimal("1.10010")
    async with db.session() as s:
        [pos] = (await s.scalars(select(Position))).all()
        assert pos.order_id == order.id and pos.volume == Decimal("0.47") and pos.status == "open"
        audit = [a.action for a in (await s.scalars(select(AuditLog))).all()]
    assert "order.filled" in audit
    assert await events(db) == ["order.filled", "position.opened"]


async def test_ten_concurrent_executions_of_one_approval_send_one_order(db):
    prices = FixedPrices()
    producer, [(user, acct)] = await paper_subscribers(db)
    decision = await make_approval(db, producer, user, acct)
    brokers = {}
    svc, _, _ = service(db, prices, brokers)
    # Separate services model separate workers/instances sharing one database.
    others = [service(db, prices, brokers)[0] for _ in range(4)]
    results = await asyncio.gather(
        *[(svc if i % 2 else others[i % 4]).execute_decision(decision) for i in range(10)]
    )
    assert {r.id for r in results} == {results[0].id}
    assert brokers[acct.id].submits == 1
    async with db.session() as s:
        assert len((await s.scalars(select(Order))).all()) == 1
        assert len((await s.scalars(select(PaperOrder))).all()) == 1
        assert len((await s.scalars(select(Position))).all()) == 1


async def test_lost_answer_is_resolved_by_lookup_not_resent(db):
    prices = FixedPrices()
    producer, [(user, acct)] = await paper_subscribers(db)
    decision = await make_approval(db, producer, user, acct)
    brokers = {}
    svc, _registry, _ = service(db, prices, brokers)
    brokers[acct.id] = CountingBroker(db, acct.id, prices=prices, lose_answers=1)
    order = await svc.execute_decision(decision)
    assert order.status == OrderStatus.FILLED
    assert brokers[acct.id].submits == 1  # found at the broker by client id; never sent twice
    async with db.session() as s:
        actions = [a.action for a in (await s.scalars(select(AuditLog))).all()]
        assert len((await s.scalars(select(Position))).all()) == 1
    assert actions.index("order.unknown") < actions.index("order.resolved")


async def test_broker_down_before_sending_retries_then_fills(db):
    prices = FixedPrices()
    producer, [(user, acct)] = await paper_subscribers(db)
    decision = await make_approval(db, producer, user, acct)
    brokers = {}
    svc, _, _ = service(db, prices, brokers)
    brokers[acct.id] = CountingBroker(db, acct.id, prices=prices, down_before_send=1)
    order = await svc.execute_decision(decision)
    assert order.status == OrderStatus.FILLED and order.attempts == 2
    assert brokers[acct.id].submits == 1


async def test_retries_exhausted_fail_with_an_ops_event(db):
    prices = FixedPrices()
    producer, [(user, acct)] = await paper_subscribers(db)
    decision = await make_approval(db, producer, user, acct)
    brokers = {}
    svc, _, _ = service(db, prices, brokers)
    brokers[acct.id] = CountingBroker(db, acct.id, prices=prices, down_before_send=100)
    order = await svc.execute_decision(decision)
    assert order.status == OrderStatus.FAILED and order.reason_code == "retries_exhausted"
    assert "order.failed" in await events(db)
    assert brokers[acct.id].submits == 0


async def test_rule_refusals_and_pause_store_the_reason(db):
    prices = FixedPrices()
    producer, [(user, acct)] = await paper_subscribers(db)
    bad_rr = await make_approval(db, producer, user, acct, tp="1.10100")
    svc, _, relay = service(db, prices, {})
    order = await svc.execute_decision(bad_rr)
    assert order.status == OrderStatus.REFUSED and order.reason_code == "min_rr"
    await EngineControl(db, relay).set_paused(True, "admin:1")
    paused = await make_approval(db, producer, user, acct, key="other")
    order = await svc.execute_decision(paused)
    assert order.status == OrderStatus.REFUSED and order.reason_code == "paused"
    assert (await events(db)).count("order.rejected") == 2


async def test_requote_reprices_and_fills(db):
    prices = FixedPrices()
    producer, [(user, acct)] = await paper_subscribers(db)
    decision = await make_approval(db, producer, user, acct)
    brokers = {}
    svc, _, _ = service(db, prices, brokers)

    class Requoting(CountingBroker):
        async def submit(self, request):
            if self.submits == 0:
                self.submits += 1
                prices.set("EURUSD", "1.10003", "1.10013")
                return SubmitResult(SubmitStatus.RETRY, retcode=10004, reason="requote")
            return await super().submit(request)

    brokers[acct.id] = Requoting(db, acct.id, prices=prices)
    order = await svc.execute_decision(decision)
    assert order.status == OrderStatus.FILLED and order.fill_price == Decimal("1.10013")


async def test_close_all_of_an_account_records_pnl(db):
    prices = FixedPrices()
    producer, [(user, acct)] = await paper_subscribers(db)
    brokers = {}
    svc, registry, relay = service(db, prices, brokers)
    for n in range(3):
        await svc.execute_decision(await make_approval(db, producer, user, acct, key=f"c{n}"))
    prices.set("EURUSD", "1.10110", "1.10120")
    summary = await PositionCloser(db, registry, relay).close_account(acct.id, "closeall", "admin:1")
    assert summary.requested == 3 and summary.closed == 3 and summary.failed == 0
    assert summary.pnl == Decimal("3") * Decimal("0.47") * 100  # +100 ticks each, 0.47 lot
    async with db.session() as s:
        rows = (await s.scalars(select(Position))).all()
    assert {r.status for r in rows} == {"closed"} and {r.close_reason for r in rows} == {"closeall"}
    again = await PositionCloser(db, registry, relay).close_account(acct.id, "closeall", "admin:1")
    assert again.requested == 0
