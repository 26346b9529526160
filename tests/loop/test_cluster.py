"""MT5 accounts owned by one instance at a time (leases in the store, SQLite and PostgreSQL): spread
evenly, taken over after the owner's lease runs out (at once from a dead process on this host),
handed back on a graceful stop, taken on first use when free, refused when another holds them."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from engine.brokers.base import Broker
from engine.brokers.ownership import AccountScope, NotOwnerError
from engine.brokers.paper import PaperBroker
from engine.brokers.registry import BrokerRegistry
from engine.execution.orders import OrderRules
from engine.execution.service import ExecutionService
from engine.loop.cluster import Cluster, ClusterCollector
from engine.states import OrderStatus
from engine.store.db import Database, utcnow
from engine.store.events import EventRelay
from engine.store.models import AccountLease, ExecutionAccount, Instance, Order
from tests.support.execution import FAST, OPEN
from tests.support.factories import make_approval, paper_subscribers
from tests.support.prices import FixedPrices


class Clock:
    """A monotonic clock the test moves (how long an instance trusts its leases)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Closed:
    """The ``release`` hook: which accounts had their broker session closed, in order."""

    def __init__(self) -> None:
        self.ids: list[int] = []

    async def __call__(self, account_id: int) -> None:
        self.ids.append(account_id)


async def mt5_accounts(db: Database, n: int, *, paper: int = 0) -> list[int]:
    async with db.session() as s:
        rows = [ExecutionAccount(kind="mt5", login=str(7000 + i), server="Sim") for i in range(n)]
        rows += [ExecutionAccount(kind="paper", balance=Decimal(1000)) for _ in range(paper)]
        s.add_all(rows)
        await s.flush()
        return [r.id for r in rows if r.kind == "mt5"]


async def leases(db: Database) -> dict[int, str]:
    async with db.session() as s:
        return {r.account_id: r.owner for r in (await s.scalars(select(AccountLease))).all()}


async def settle(clusters: list[Cluster], closed: Closed, rounds: int = 4) -> None:
    """Refresh each in turn (the instance called inst-a leads)."""
    for _ in range(rounds):
        for cluster in clusters:
            await cluster.refresh(leader=cluster.instance_id == "inst-a", release=closed)


async def test_accounts_are_spread_evenly_and_held_once(db: Database) -> None:
    ids = await mt5_accounts(db, 7, paper=2)
    closed = Closed()
    a = Cluster(db, instance_id="inst-a", lease_seconds=30)
    await a.refresh(leader=True, release=closed)
    assert a.owned() == frozenset(ids)  # alone: every MT5 account, none of the paper ones

    b, c = (
        Cluster(db, instance_id="inst-b", lease_seconds=30),
        Cluster(db, instance_id="inst-c", lease_seconds=30),
    )
    await settle([b, c, a], closed)
    owned = {x.instance_id: x.owned() for x in (a, b, c)}
    assert sorted(len(v) for v in owned.values()) == [2, 2, 3]
    assert set().union(*owned.values()) == set(ids)
    assert sum(len(v) for v in owned.values()) == len(ids)  # no account held twice
    assert Counter((await leases(db)).values()) == Counter({k: len(v) for k, v in owned.items()})
    # a handed four back, closing each session before freeing its lease
    assert len(closed.ids) == 4 and not set(closed.ids) & a.owned()
    async with db.session() as s:
        rows = {r.id: r for r in (await s.scalars(select(Instance))).all()}
    assert set(rows) == {"inst-a", "inst-b", "inst-c"}
    assert rows["inst-a"].leader and rows["inst-a"].accounts == 3


async def test_an_expired_lease_is_taken_over_and_its_old_owner_stops_using_it(db: Database) -> None:
    ids = await mt5_accounts(db, 3)
    closed = Closed()
    clock = Clock()
    a = Cluster(db, instance_id="inst-a", lease_seconds=30, clock=clock)
    await a.refresh(leader=True, release=closed)
    assert a.owned() == frozenset(ids) and all(a.holds(i) for i in ids)

    b = Cluster(db, instance_id="inst-b", lease_seconds=30)
    await b.refresh(leader=False, release=closed)
    assert b.owned() == frozenset()  # a is alive and its leases are current

    clock.now += 29.0  # a has not renewed: it stops trusting its leases before they expire
    assert not any(a.holds(i) for i in ids) and a.scope(leader=False) == AccountScope.of(False, [])
    async with db.session() as s:  # ...and they expire (a's last renewal was a lease time ago)
        for lease in (await s.scalars(select(AccountLease))).all():
            lease.expires_at = utcnow()
        await s.execute(Instance.__table__.delete().where(Instance.id == "inst-a"))
    await b.refresh(leader=False, release=closed)
    assert b.owned() == frozenset(ids)
    assert set((await leases(db)).values()) == {"inst-b"}

    clock.now += 1.0
    result = await a.refresh(leader=False, release=closed)  # a comes back: its leases are gone
    assert result.lost == set(ids) and a.owned() == frozenset()
    assert sorted(closed.ids) == sorted(ids)  # its sessions closed


async def test_a_dead_process_on_this_host_loses_its_leases_at_once(db: Database) -> None:
    [account] = await mt5_accounts(db, 1)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer runs
    ghost = Cluster(db, instance_id="ghost", lease_seconds=30)
    ghost.pid = gone.pid
    await ghost.refresh(leader=True, release=Closed())
    assert ghost.owned() == {account}

    heir = Cluster(db, instance_id="heir", lease_seconds=30)
    await heir.refresh(leader=False, release=Closed())
    assert heir.owned() == {account}  # the lease had 30 s left, but its holder is dead
    assert await leases(db) == {account: "heir"}


async def test_a_graceful_stop_hands_every_account_back(db: Database) -> None:
    ids = await mt5_accounts(db, 4)
    closed = Closed()
    a, b = (
        Cluster(db, instance_id="inst-a", lease_seconds=30),
        Cluster(db, instance_id="inst-b", lease_seconds=30),
    )
    await settle([a, b], closed, rounds=2)
    assert len(a.owned()) == len(b.owned()) == 2
    held_by_a = set(a.owned())
    closed.ids.clear()
    await a.release_all(closed)
    assert set(closed.ids) == held_by_a and a.owned() == frozenset()
    await b.refresh(leader=False, release=closed)  # the next refresh, not after the lease time
    assert b.owned() == frozenset(ids)
    async with db.session() as s:
        assert (await s.scalars(select(Instance.id))).all() == ["inst-b"]


async def test_the_registry_opens_a_session_only_where_the_lease_is(db: Database) -> None:
    [account_id] = await mt5_accounts(db, 1)
    async with db.session() as s:
        account = await s.get(ExecutionAccount, account_id)
        assert account is not None
        s.expunge(account)
    opened: list[str] = []

    def factory_for(name: str):
        async def factory(acct: ExecutionAccount) -> Broker:
            opened.append(name)
            return PaperBroker(db, acct.id, prices=FixedPrices())

        return factory

    a, b = (
        Cluster(db, instance_id="inst-a", lease_seconds=30),
        Cluster(db, instance_id="inst-b", lease_seconds=30),
    )
    on_a, on_b = BrokerRegistry(factory_for("a"), a), BrokerRegistry(factory_for("b"), b)
    await on_a.get(account)  # nobody runs it yet: a takes it on first use
    assert await leases(db) == {account_id: "inst-a"}
    assert not await on_b.usable(account)
    with pytest.raises(NotOwnerError):
        await on_b.get(account)
    assert opened == ["a"]  # one terminal session, on the owner

    await a.release_all(on_a.forget)
    assert on_a.cached() == {}
    await on_b.get(account)
    assert opened == ["a", "b"] and await leases(db) == {account_id: "inst-b"}


async def test_an_approval_on_a_non_owner_is_executed_once_by_the_owner(db: Database) -> None:
    """Instance b receives the tap; instance a runs the account's terminal. b leaves the order
    PENDING (no attempt counted, no session opened); a's pass over its accounts executes it."""
    producer_id, [(user, paper)] = await paper_subscribers(db)
    async with db.session() as s:
        account = await s.get(ExecutionAccount, paper.id)
        assert account is not None
        account.kind = "mt5"  # the paper book stands in for the terminal; the lease rules are mt5's
    decision = await make_approval(db, producer_id, user, paper)
    prices, opened = FixedPrices(), Counter[str]()

    def instance(name: str) -> tuple[Cluster, ExecutionService]:
        async def factory(acct: ExecutionAccount) -> Broker:
            opened[name] += 1
            return PaperBroker(db, acct.id, prices=prices)

        cluster = Cluster(db, instance_id=name, lease_seconds=30)
        rules = lambda _a: OrderRules(min_rr=Decimal("1.5"), min_stop_points=5, market_hours=OPEN)  # noqa: E731
        return cluster, ExecutionService(db, BrokerRegistry(factory, cluster), rules, EventRelay(db), FAST)

    (a, on_a), (b, on_b) = instance("inst-a"), instance("inst-b")
    await a.refresh(leader=False, release=Closed())
    assert a.owned() == {paper.id}

    order = await on_b.execute_decision(decision)
    assert order is not None and order.status == OrderStatus.PENDING.value and order.attempts == 0
    assert opened == Counter() and await on_b.due_orders(10, b.scope(leader=True)) == []

    assert await on_a.process_due(10, a.scope(leader=False)) == 1
    async with db.session() as s:
        orders = (await s.scalars(select(Order))).all()
    assert [(o.status, o.attempts) for o in orders] == [(OrderStatus.FILLED.value, 1)]
    assert opened == Counter({"inst-a": 1})


async def test_metrics_show_this_instance(db: Database) -> None:
    await mt5_accounts(db, 3)
    a, b = (
        Cluster(db, instance_id="inst-a", lease_seconds=30),
        Cluster(db, instance_id="inst-b", lease_seconds=30),
    )
    a.details.update(redis="up", telegram_budget="shared through Redis (2 instances)")
    await settle([a, b], Closed(), rounds=3)
    registry = CollectorRegistry()
    registry.register(ClusterCollector(a))
    assert registry.get_sample_value("tradebot_instance_info", {"instance": "inst-a", "host": a.host}) == 1
    assert registry.get_sample_value("tradebot_instance_accounts_owned") == len(a.owned()) == 2
    assert registry.get_sample_value("tradebot_redis_up") == 1
