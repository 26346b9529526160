"""Several instances on one store: who is running, and which instance owns each MT5 account.

Every ``tradebot run`` is an *instance* (``INSTANCE_ID``, else ``host:pid``). Its trading loop
calls ``Cluster.refresh`` every third of ``ACCOUNT_LEASE_SECONDS``; one refresh:

1. records the instance in ``instances`` (seen now, leader or not, accounts owned, details such as
   the Telegram budget's state): ``/status``, ``/readyz`` and ``/metrics`` show them;
2. renews this instance's leases in ``account_leases`` (one UPDATE ... RETURNING); an account
   whose lease is gone (taken over while this instance was cut off) is dropped at once;
3. shares the MT5 accounts out evenly: with M accounts to run (active, or holding positions or
   live orders) and N live instances sorted by id, the k-th has a target of M // N, plus one for
   the first M % N. An instance above its target hands accounts back (its broker session closed
   first, then the lease deleted); one below takes free leases: none yet, expired, or held by a
   dead process on this host (a SIGKILLed predecessor on the same machine is replaced at once).
   Taking is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` (expired, or ours) per batch, so
   two instances never both take an account.

An instance trusts a lease until ``lease_seconds`` minus a margin after the renewal that
returned it started (its own monotonic clock), and the registry refuses the account after that
(``holds``): a partitioned owner stops before another instance may take over. A lease is taken
over once its ``expires_at`` (the owner's clock at renewal, plus ``lease_seconds``) has passed,
so the instances' clocks must agree within the margin (NTP).

Outside the loop, ``take`` gets a free lease on first use (a tap on an account nobody runs yet,
a CLI command while no instance runs): the registry calls it before opening a session.
``release_all`` (graceful stop) closes the sessions and deletes the leases, so the accounts are
taken over at the next refresh of another instance instead of after the lease time.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from loguru import logger
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from engine.brokers.ownership import LEASED_KINDS, AccountScope, needs_lease
from engine.loop.leader import pid_alive
from engine.states import OrderStatus, PositionStatus
from engine.store.db import Database, utcnow
from engine.store.models import AccountLease, ExecutionAccount, Instance, Order, Position

Release = Callable[[int], Awaitable[None]]

_BUSY_ORDERS = [
    s.value
    for s in (
        OrderStatus.PENDING,
        OrderStatus.SUBMITTING,
        OrderStatus.UNKNOWN,
        OrderStatus.RETRY_WAIT,
        OrderStatus.PLACED,
        OrderStatus.PARTIALLY_FILLED,
    )
]
_IN_FLIGHT = [OrderStatus.SUBMITTING.value, OrderStatus.UNKNOWN.value]
_OPEN = [PositionStatus.OPEN.value, PositionStatus.CLOSING.value]
FORGET_AFTER = timedelta(hours=1)  # instance rows not seen for this long are removed


@dataclass
class RefreshResult:
    gained: set[int] = field(default_factory=set)
    lost: set[int] = field(default_factory=set)  # taken over elsewhere while this instance was cut off
    handed_back: set[int] = field(default_factory=set)


class Cluster:
    def __init__(
        self,
        db: Database,
        *,
        instance_id: str,
        lease_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self.instance_id = instance_id
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.lease_seconds = lease_seconds
        self.renew_seconds = lease_seconds / 3
        self.margin = min(2.0, lease_seconds / 5)
        self.started_at = utcnow()
        self.leader = False
        self.details: dict[str, Any] = {}  # shown with the instance (e.g. the Telegram budget's state)
        self._clock = clock
        self._owned: dict[int, float] = {}  # account id -> trusted until (monotonic)
        self._next_refresh = 0.0
        self._written = False  # whether this instance ever wrote its row or a lease
        self._insert = pg_insert if db.dialect == "postgresql" else sqlite_insert
        self.live: frozenset[str] = frozenset()  # the instances seen at the last refresh (this one too)

    # ------------------------------------------------------------------ Ownership

    def holds(self, account_id: int) -> bool:
        return self._owned.get(account_id, 0.0) > self._clock()

    def owned(self) -> frozenset[int]:
        now = self._clock()
        return frozenset(a for a, until in self._owned.items() if until > now)

    def scope(self, *, leader: bool) -> AccountScope:
        return AccountScope.of(leader, self.owned())

    async def take(self, account: ExecutionAccount) -> bool:
        if not needs_lease(account):
            return True
        if self.holds(account.id):
            return True
        started = self._clock()
        self._written = True
        taken = await self._claim([account.id])
        if account.id in taken:
            self._owned[account.id] = started + self.lease_seconds - self.margin
            logger.info("instance {}: took account {} on first use", self.instance_id, account.id)
            return True
        return False

    # ------------------------------------------------------------------ the loop's refresh

    def due(self) -> bool:
        return self._clock() >= self._next_refresh

    def soon(self) -> None:
        """Refresh at the next chance (leadership changed: the instance list should say so)."""
        self._next_refresh = 0.0

    async def refresh(self, *, leader: bool, release: Release) -> RefreshResult:
        """One round (see the module doc); ``release`` closes an account's broker session."""
        started = self._clock()
        self._next_refresh = started + self.renew_seconds
        self._written = True
        self.leader = leader
        result = RefreshResult()
        now = utcnow()
        await self._announce(now)
        before = set(self._owned)
        held = await self._renew(now)
        trusted = started + self.lease_seconds - self.margin
        self._owned = dict.fromkeys(held, trusted)
        for account_id in sorted(before - held):
            result.lost.add(account_id)
            logger.warning(
                "instance {}: lost account {} (its lease ran out and another instance took it)",
                self.instance_id,
                account_id,
            )
            await self._quietly(release, account_id)
        wanted, live = await self._plan(now)
        self.live = frozenset(live)
        target = self._target(len(wanted), live)
        if len(held) > target:
            for account_id in await self._hand_back_order(held, len(held) - target):
                await self.hand_back(account_id, release)
                result.handed_back.add(account_id)
        elif len(held) < target:
            free = await self._free([a for a in wanted if a not in held], target - len(held), now)
            taken = await self._claim(free)
            for account_id in taken:
                self._owned[account_id] = trusted
            result.gained = taken - before
            if taken:
                logger.info(
                    "instance {}: took accounts {} ({} of {} across {} instances)",
                    self.instance_id,
                    sorted(taken),
                    len(self._owned),
                    len(wanted),
                    len(live),
                )
        await self._count()
        return result

    async def hand_back(self, account_id: int, release: Release) -> None:
        """Close the account's session here, then free its lease for another instance."""
        self._owned.pop(account_id, None)  # no new work here from now on
        await self._quietly(release, account_id)
        async with self._db.session() as session:
            await session.execute(
                delete(AccountLease).where(
                    AccountLease.account_id == account_id, AccountLease.owner == self.instance_id
                )
            )

    async def release_all(self, release: Release) -> None:
        """Graceful stop: every account handed back, and the instance leaves the list. An instance
        that never took part (a CLI command, a test's services) has nothing to remove."""
        if not self._written:
            return
        for account_id in sorted(self._owned):
            await self.hand_back(account_id, release)
        async with self._db.session() as session:
            await session.execute(delete(AccountLease).where(AccountLease.owner == self.instance_id))
            await session.execute(delete(Instance).where(Instance.id == self.instance_id))
        self._next_refresh = 0.0

    async def live_instances(self) -> int:
        """Instances seen within the lease time, this one included (the Telegram budget's hint for
        its local share when Redis was never reached)."""
        since = utcnow() - timedelta(seconds=self.lease_seconds)
        async with self._db.session() as session:
            seen = await session.scalar(
                select(func.count(Instance.id)).where(
                    Instance.seen_at > since, Instance.id != self.instance_id
                )
            )
        return 1 + int(seen or 0)

    # ------------------------------------------------------------------ store

    def _dead(self, host: str, pid: int, owner: str) -> bool:
        return owner != self.instance_id and host == self.host and pid != self.pid and not pid_alive(pid)

    async def _announce(self, now: datetime) -> None:
        values = {
            "id": self.instance_id,
            "host": self.host,
            "pid": self.pid,
            "started_at": self.started_at,
            "seen_at": now,
            "leader": self.leader,
            "accounts": len(self.owned()),
            "details": dict(self.details),
        }
        statement = self._insert(Instance).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=["id"],
            set_={k: statement.excluded[k] for k in values if k != "id"},
        )
        async with self._db.session() as session:
            await session.execute(statement)
            await session.execute(delete(Instance).where(Instance.seen_at < now - FORGET_AFTER))

    async def _count(self) -> None:
        async with self._db.session() as session:
            await session.execute(
                update(Instance).where(Instance.id == self.instance_id).values(accounts=len(self.owned()))
            )

    async def _renew(self, now: datetime) -> set[int]:
        async with self._db.session() as session:
            result = await session.execute(
                update(AccountLease)
                .where(AccountLease.owner == self.instance_id)
                .values(expires_at=now + timedelta(seconds=self.lease_seconds), host=self.host, pid=self.pid)
                .returning(AccountLease.account_id)
            )
            return set(result.scalars().all())

    async def _plan(self, now: datetime) -> tuple[list[int], list[str]]:
        """The MT5 accounts to run, and the live instances (ids, sorted)."""
        busy = or_(
            exists().where(Position.account_id == ExecutionAccount.id, Position.status.in_(_OPEN)),
            exists().where(Order.account_id == ExecutionAccount.id, Order.status.in_(_BUSY_ORDERS)),
        )
        alive_after = now - timedelta(seconds=self.lease_seconds)
        async with self._db.session() as session:
            wanted = list(
                (
                    await session.scalars(
                        select(ExecutionAccount.id)
                        .where(
                            ExecutionAccount.kind.in_(LEASED_KINDS),
                            or_(ExecutionAccount.active.is_(True), busy),
                        )
                        .order_by(ExecutionAccount.id)
                    )
                ).all()
            )
            rows = (
                await session.execute(
                    select(Instance.id, Instance.host, Instance.pid).where(Instance.seen_at > alive_after)
                )
            ).all()
        live = sorted(i for i, host, pid in rows if not self._dead(host, pid, i))
        if self.instance_id not in live:
            live = sorted([*live, self.instance_id])
        return wanted, live

    def _target(self, accounts: int, live: list[str]) -> int:
        n = len(live)
        rank = live.index(self.instance_id)
        return accounts // n + (1 if rank < accounts % n else 0)

    async def _hand_back_order(self, held: Iterable[int], count: int) -> list[int]:
        """Which accounts to hand back: those with no order in flight first, highest ids first."""
        ids = sorted(held)
        async with self._db.session() as session:
            inflight = set(
                (
                    await session.scalars(
                        select(Order.account_id)
                        .where(Order.account_id.in_(ids), Order.status.in_(_IN_FLIGHT))
                        .distinct()
                    )
                ).all()
            )
        quiet = [a for a in reversed(ids) if a not in inflight]
        return quiet[:count]

    async def _dead_owners(self) -> list[str]:
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(AccountLease.owner, AccountLease.pid)
                    .where(AccountLease.host == self.host, AccountLease.owner != self.instance_id)
                    .distinct()
                )
            ).all()
        return sorted({owner for owner, pid in rows if pid != self.pid and not pid_alive(pid)})

    def _free_condition(self, now: datetime, dead: list[str]) -> Any:
        parts = [AccountLease.expires_at <= now, AccountLease.owner == self.instance_id]
        if dead:
            parts.append(AccountLease.owner.in_(dead))
        return or_(*parts)

    async def _free(self, wanted: list[int], count: int, now: datetime) -> list[int]:
        dead = await self._dead_owners()
        async with self._db.session() as session:
            taken = set(
                (
                    await session.scalars(
                        select(AccountLease.account_id).where(
                            AccountLease.account_id.in_(wanted),
                            ~self._free_condition(now, dead),
                        )
                    )
                ).all()
            )
        return [a for a in wanted if a not in taken][:count]

    async def _claim(self, ids: list[int]) -> set[int]:
        """Take these accounts' leases where they are free (one statement; the rest stay theirs)."""
        if not ids:
            return set()
        now = utcnow()
        dead = await self._dead_owners()
        expires = now + timedelta(seconds=self.lease_seconds)
        rows = [
            {
                "account_id": a,
                "owner": self.instance_id,
                "host": self.host,
                "pid": self.pid,
                "expires_at": expires,
                "acquired_at": now,
            }
            for a in sorted(set(ids))
        ]
        insert = self._insert(AccountLease).values(rows)
        statement = insert.on_conflict_do_update(
            index_elements=["account_id"],
            set_={
                "owner": insert.excluded.owner,
                "host": insert.excluded.host,
                "pid": insert.excluded.pid,
                "expires_at": insert.excluded.expires_at,
                "acquired_at": insert.excluded.acquired_at,
            },
            where=self._free_condition(now, dead),
        ).returning(AccountLease.account_id)
        try:
            async with self._db.session() as session:
                return set((await session.execute(statement)).scalars().all())
        except IntegrityError:  # an account removed meanwhile: the next round takes the others
            logger.info("instance {}: an account to take was removed meanwhile", self.instance_id)
            return set()

    async def _quietly(self, release: Release, account_id: int) -> None:
        try:
            await release(account_id)
        except Exception as exc:
            logger.warning("instance {}: closing account {} failed: {!r}", self.instance_id, account_id, exc)

    def describe(self) -> dict[str, Any]:
        """This instance for /readyz."""
        return {
            "id": self.instance_id,
            "leader": self.leader,
            "accounts": sorted(self.owned()),
            **self.details,
        }


class ClusterCollector(Collector):
    """Prometheus view of this instance among several, read at scrape time."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    def collect(self) -> Iterator[Metric]:
        c = self._cluster
        info = InfoMetricFamily("tradebot_instance", "This instance: its id and host.")
        info.add_metric([], {"instance": c.instance_id, "host": c.host})
        yield info
        yield GaugeMetricFamily(
            "tradebot_instance_accounts_owned",
            "MT5 accounts whose lease this instance holds (their terminal sessions run here).",
            value=len(c.owned()),
        )
        redis = c.details.get("redis")
        if redis in ("up", "down"):
            yield GaugeMetricFamily(
                "tradebot_redis_up",
                "1 while Redis answers (the Telegram budget is shared); 0 on the local share.",
                value=1 if redis == "up" else 0,
            )
