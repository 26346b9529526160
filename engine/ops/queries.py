"""The command layer's reads: engine status and open positions with pending orders, from the store.

Everything but live equity comes from the database, so every front end, in any process, with or
without ``tradebot run`` up, sees the same figures. Equity is read from the broker when asked
(``live_seconds``), else (or when the broker does not answer in time) it is the account's last
recorded equity point, with its time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from loguru import logger
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.accounts.names import actor_display
from engine.brokers.ownership import NotOwnerError
from engine.brokers.registry import BrokerRegistry
from engine.execution.cancels import PENDING_ORDER_STATES
from engine.ops.views import (
    AccountStatus,
    EngineStatus,
    GatewayStatus,
    InstanceStatus,
    Leader,
    OpsError,
    Owner,
    PendingOrderView,
    PositionsReport,
    PositionView,
    Scope,
    ScopeKind,
)
from engine.risk.control import PAUSE_KEY
from engine.states import PositionStatus
from engine.store.db import Database, utcnow
from engine.store.models import (
    EngineState,
    EquityPoint,
    ExecutionAccount,
    Instance,
    Order,
    OutboxMessage,
    Position,
    User,
)

HEARTBEAT_KEY = "heartbeat"  # written by engine.loop.heartbeat
OPEN_POSITION_STATES = (PositionStatus.OPEN.value, PositionStatus.CLOSING.value)


def owner_of(user: User | None) -> Owner | None:
    return None if user is None else Owner(user.telegram_id, user.username, user.first_name)


def _when(raw: Any, fallback: datetime | None = None) -> datetime | None:
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw)
        except ValueError:
            return fallback
    return fallback


async def scope_accounts(session: AsyncSession, scope: Scope) -> list[int] | None:
    """The account ids a scope covers (None: everything); OpsError when it names nothing."""
    if scope.kind is ScopeKind.EVERYTHING:
        return None
    if scope.kind is ScopeKind.ACCOUNT:
        account = await session.get(ExecutionAccount, scope.id)
        if account is None:
            raise OpsError("not_found", f"no execution account with id {scope.id}")
        return [account.id]
    user = await session.scalar(select(User).where(User.telegram_id == scope.id))
    if user is None:
        raise OpsError("not_found", f"no subscriber with Telegram id {scope.id}")
    ids = (
        await session.scalars(
            select(ExecutionAccount.id)
            .where(ExecutionAccount.owner_id == user.id, ExecutionAccount.active.is_(True))
            .order_by(ExecutionAccount.id)
        )
    ).all()
    if not ids:
        raise OpsError("not_found", f"subscriber {scope.id} has no active execution account")
    return list(ids)


def _within(query: Any, column: Any, ids: list[int] | None) -> Any:
    return query if ids is None else query.where(column.in_(ids))


async def _counts(session: AsyncSession, column: Any, where: Any) -> dict[int, int]:
    rows = (await session.execute(select(column, func.count()).where(where).group_by(column))).all()
    return {int(a): int(n) for a, n in rows}


async def account_currencies(session: AsyncSession) -> dict[int, str]:
    """Each execution account's currency (USD when the broker has not said yet)."""
    rows = (await session.execute(select(ExecutionAccount.id, ExecutionAccount.currency))).all()
    return {account_id: currency or "USD" for account_id, currency in rows}


async def book_currency(session: AsyncSession, ids: list[int] | None = None) -> str | None:
    """The currency every active account (of ``ids``, or all) keeps; None when they differ or none."""
    query = select(ExecutionAccount.currency).where(ExecutionAccount.active.is_(True)).distinct()
    if ids is not None:
        query = query.where(ExecutionAccount.id.in_(ids))
    found = set((await session.scalars(query)).all())
    return (found.pop() or "USD") if len(found) == 1 else None


HealthProbe = Callable[[], Awaitable[bool | str]]  # True when up, else why not


class OpsQueries:
    def __init__(
        self,
        db: Database,
        brokers: BrokerRegistry,
        *,
        heartbeat_seconds: float = 10.0,
        simulated_market: bool = False,
        gateways: Mapping[str, HealthProbe] | None = None,
        lease_seconds: float = 30.0,
    ) -> None:
        """``simulated_market``: paper accounts trade the random-walk market (status says so);
        ``gateways``: a health probe per MT5 gateway (``engine.gateway.probe.gateway_probe``);
        ``lease_seconds``: an instance not seen for this long is shown as gone."""
        self._gateways = dict(gateways or {})
        self._db = db
        self._brokers = brokers
        self._heartbeat_seconds = heartbeat_seconds
        self._simulated_market = simulated_market
        self._lease_seconds = lease_seconds

    async def status(self, *, limit: int = 20, live_seconds: float | None = 3.0) -> EngineStatus:
        async with self._db.session() as session:
            pause = await session.get(EngineState, PAUSE_KEY)
            beat = await session.get(EngineState, HEARTBEAT_KEY)
            outbox = await session.scalar(
                select(func.count(OutboxMessage.id)).where(OutboxMessage.status == "pending")
            )
            positions = await _counts(session, Position.account_id, Position.status.in_(OPEN_POSITION_STATES))
            orders = await _counts(session, Order.account_id, Order.status.in_(PENDING_ORDER_STATES))
            total = int(
                await session.scalar(
                    select(func.count(ExecutionAccount.id)).where(ExecutionAccount.active.is_(True))
                )
                or 0
            )
            rows = (
                await session.execute(
                    select(ExecutionAccount, User)
                    .outerjoin(User, User.id == ExecutionAccount.owner_id)
                    .where(ExecutionAccount.active.is_(True))
                    .order_by(ExecutionAccount.id)
                    .limit(limit)
                )
            ).all()
            points = {account.id: await self._last_point(session, account.id) for account, _u in rows}
            instances = (await session.scalars(select(Instance).order_by(Instance.id))).all()
            session.expunge_all()
        live, gateways = await asyncio.gather(
            asyncio.gather(*(self._live(account, live_seconds) for account, _u in rows)),
            self._probe_gateways(live_seconds),
        )
        accounts = []
        for (account, user), now_equity in zip(rows, live, strict=True):
            point = points[account.id]
            equity, at = now_equity if now_equity is not None else point
            accounts.append(
                AccountStatus(
                    id=account.id,
                    kind=account.kind,
                    label=account.label,
                    owner=owner_of(user),
                    trading_state=account.trading_state,
                    state_reason=account.paused_reason,
                    drawdown_state=account.drawdown_state,
                    currency=account.currency or "USD",
                    equity=equity,
                    equity_at=at,
                    equity_live=now_equity is not None,
                    open_positions=positions.get(account.id, 0),
                    pending_orders=orders.get(account.id, 0),
                )
            )
        pause_value: dict[str, Any] = dict(pause.value or {}) if pause is not None else {}
        beat_value: dict[str, Any] = dict(beat.value or {}) if beat is not None else {}
        heartbeat_at = _when(beat_value.get("at"), beat.updated_at if beat is not None else None)
        leader = None
        if beat_value.get("instance") and heartbeat_at is not None:
            age = (utcnow() - heartbeat_at).total_seconds()
            leader = Leader(
                instance=str(beat_value["instance"]),
                loop_id=beat_value.get("loop_id"),
                alive=age <= 3 * self._heartbeat_seconds and not beat_value.get("final"),
            )
        paused = bool(pause_value.get("paused"))
        return EngineStatus(
            paused=paused,
            paused_by=pause_value.get("by") if paused else None,
            paused_at=_when(pause_value.get("at")) if paused else None,
            heartbeat_at=heartbeat_at,
            leader=leader,
            open_positions=sum(positions.values()),
            pending_orders=sum(orders.values()),
            outbox_pending=int(outbox or 0),
            accounts_total=total,
            accounts=tuple(accounts),
            simulated_market=self._simulated_market,
            paused_by_name=await self._actor_name(pause_value.get("by")) if paused else None,
            gateways=gateways,
            instances=tuple(self._instance(i) for i in instances),
        )

    def _instance(self, row: Instance) -> InstanceStatus:
        details: dict[str, Any] = dict(row.details or {})
        age = (utcnow() - row.seen_at).total_seconds()
        return InstanceStatus(
            id=row.id,
            host=row.host,
            pid=row.pid,
            started_at=row.started_at,
            seen_at=row.seen_at,
            alive=age <= self._lease_seconds,
            leader=row.leader,
            accounts=row.accounts,
            redis=details.get("redis"),
            telegram_budget=details.get("telegram_budget"),
        )

    async def _probe_gateways(self, seconds: float | None) -> tuple[GatewayStatus, ...]:
        async def one(name: str, probe: HealthProbe) -> GatewayStatus:
            try:
                async with asyncio.timeout(seconds or 3.0):
                    answer = await probe()
            except TimeoutError:
                return GatewayStatus(name, False, "no answer in time")
            except Exception as exc:  # a probe that fails is a gateway that is not up, not a failed /status
                return GatewayStatus(name, False, f"probe failed: {type(exc).__name__}")
            if answer is True:
                return GatewayStatus(name, True, None)
            return GatewayStatus(name, False, str(answer) if answer else "down")

        return tuple(
            await asyncio.gather(*(one(name, probe) for name, probe in sorted(self._gateways.items())))
        )

    async def _actor_name(self, actor: object) -> str | None:
        async with self._db.session() as session:
            return await actor_display(session, actor)

    async def _last_point(
        self, session: AsyncSession, account_id: int
    ) -> tuple[Decimal | None, datetime | None]:
        point = await session.scalar(
            select(EquityPoint)
            .where(EquityPoint.account_id == account_id)
            .order_by(EquityPoint.at.desc(), EquityPoint.id.desc())
            .limit(1)
        )
        return (None, None) if point is None else (point.equity, point.at)

    async def _live(
        self, account: ExecutionAccount, seconds: float | None
    ) -> tuple[Decimal | None, datetime | None] | None:
        if seconds is None:
            return None
        try:
            async with asyncio.timeout(seconds):
                snapshot = await (await self._brokers.get(account)).account()
        except NotOwnerError:
            return None  # another instance runs it: its last recorded equity
        except Exception as exc:
            logger.info("status: account {} did not answer: {!r}", account.id, exc)
            return None
        return snapshot.equity, utcnow()

    async def positions(self, scope: Scope, *, limit: int = 30) -> PositionsReport:
        async with self._db.session() as session:
            ids = await scope_accounts(session, scope)
            open_ = Position.status.in_(OPEN_POSITION_STATES)
            pending = Order.status.in_(PENDING_ORDER_STATES)
            positions_total = int(
                await session.scalar(
                    _within(select(func.count(Position.id)).where(open_), Position.account_id, ids)
                )
                or 0
            )
            orders_total = int(
                await session.scalar(
                    _within(select(func.count(Order.id)).where(pending), Order.account_id, ids)
                )
                or 0
            )
            position_rows: Sequence[Any] = (
                await session.execute(
                    _within(
                        select(Position, User)
                        .join(ExecutionAccount, ExecutionAccount.id == Position.account_id)
                        .outerjoin(User, User.id == ExecutionAccount.owner_id)
                        .where(open_),
                        Position.account_id,
                        ids,
                    )
                    .order_by(Position.opened_at, Position.id)
                    .limit(limit)
                )
            ).all()
            order_rows: Sequence[Any] = (
                await session.execute(
                    _within(
                        select(Order, User)
                        .join(ExecutionAccount, ExecutionAccount.id == Order.account_id)
                        .outerjoin(User, User.id == ExecutionAccount.owner_id)
                        .where(pending),
                        Order.account_id,
                        ids,
                    )
                    .order_by(Order.created_at, Order.id)
                    .limit(limit)
                )
            ).all()
        return PositionsReport(
            scope=scope,
            positions_total=positions_total,
            orders_total=orders_total,
            positions=tuple(
                PositionView(
                    id=p.id,
                    account_id=p.account_id,
                    owner=owner_of(u),
                    ticket=p.ticket,
                    symbol=p.symbol,
                    side=p.side,
                    volume=p.volume,
                    open_price=p.open_price,
                    sl=p.sl,
                    tp=p.tp,
                    status=p.status,
                    opened_at=p.opened_at,
                )
                for p, u in position_rows
            ),
            orders=tuple(
                PendingOrderView(
                    id=o.id,
                    account_id=o.account_id,
                    owner=owner_of(u),
                    ticket=o.broker_ticket,
                    symbol=o.symbol,
                    side=o.side,
                    order_type=o.order_type,
                    volume=o.volume,
                    price=o.price,
                    sl=o.sl,
                    tp=o.tp,
                    status=o.status,
                    expires_at=o.expires_at,
                )
                for o, u in order_rows
            ),
        )
