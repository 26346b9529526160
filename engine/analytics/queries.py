"""Loading a scope's trades, exposures and equity points, on SQLite and PostgreSQL alike.

Money columns are strings on SQLite, so nothing is summed in SQL: rows are streamed in chunks
(the event loop runs other tasks between chunks) and the arithmetic happens in Python on Decimal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeAlias

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from engine.analytics.data import Exposure, Scope, ScopeData, Trade
from engine.states import PositionStatus
from engine.store.db import Database
from engine.store.models import EquityPoint, ExecutionAccount, Order, Position, Signal, User

CHUNK = 2000

Stmt: TypeAlias = Select[*tuple[Any, ...]]  # any SELECT, whatever its columns

_TRADE_COLUMNS = (
    Position.id,
    Position.account_id,
    Position.symbol,
    Position.side,
    Position.volume,
    Position.opened_at,
    Position.open_price,
    Position.closed_at,
    Position.close_price,
    Position.profit,
    Position.commission,
    Position.swap,
    Position.close_reason,
    Order.signal_id,
    Signal.strategy,
)


def _positions(stmt: Stmt, scope: Scope) -> Stmt:
    """Join what a position scope may filter on, and apply the scope."""
    stmt = stmt.select_from(Position).outerjoin(Order, Position.order_id == Order.id)
    stmt = stmt.outerjoin(Signal, Order.signal_id == Signal.id)
    if scope.user_id is not None:
        stmt = stmt.join(ExecutionAccount, Position.account_id == ExecutionAccount.id)
        stmt = stmt.where(ExecutionAccount.owner_id == scope.user_id)
    if scope.account_id is not None:
        stmt = stmt.where(Position.account_id == scope.account_id)
    if scope.producer_id is not None:
        stmt = stmt.where(Signal.producer_id == scope.producer_id)
    if scope.strategy is not None:
        stmt = stmt.where(Signal.strategy == scope.strategy)
    if scope.instrument is not None:
        instrument = scope.instrument.upper()
        stmt = stmt.where(
            or_(Signal.instrument == instrument, and_(Signal.id.is_(None), Position.symbol == instrument))
        )
    return stmt


def _account_filter(scope: Scope) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if scope.account_id is not None:
        conditions.append(EquityPoint.account_id == scope.account_id)
    if scope.user_id is not None:
        owned = select(ExecutionAccount.id).where(ExecutionAccount.owner_id == scope.user_id)
        conditions.append(EquityPoint.account_id.in_(owned.scalar_subquery()))
    return conditions


def closed_trades_stmt(scope: Scope, start: datetime | None, end: datetime) -> Stmt:
    stmt = _positions(select(*_TRADE_COLUMNS), scope).where(
        Position.status == PositionStatus.CLOSED.value,
        Position.closed_at.is_not(None),
        Position.closed_at < end,
    )
    if start is not None:
        stmt = stmt.where(Position.closed_at >= start)
    return stmt.order_by(Position.closed_at, Position.id)


async def _stream(db: Database, stmt: Stmt) -> AsyncIterator[Any]:
    async with db.engine.connect() as conn:
        result = await conn.stream(stmt.execution_options(yield_per=CHUNK))
        async for rows in result.partitions(CHUNK):
            for row in rows:
                yield row


def _trade(row: Any) -> Trade:
    return Trade(
        position_id=row.id,
        account_id=row.account_id,
        symbol=row.symbol,
        side=row.side,
        volume=row.volume,
        open_time=row.opened_at,
        open_price=row.open_price,
        close_time=row.closed_at,
        close_price=row.close_price,
        profit=row.profit,
        commission=row.commission,
        swap=row.swap,
        close_reason=row.close_reason,
        signal_id=row.signal_id,
        strategy=row.strategy,
    )


async def load_trades(db: Database, scope: Scope, start: datetime | None, end: datetime) -> list[Trade]:
    """Positions of ``scope`` closed in ``[start, end)``, by close time."""
    return [_trade(row) async for row in _stream(db, closed_trades_stmt(scope, start, end))]


async def load_exposures(db: Database, scope: Scope, start: datetime | None, end: datetime) -> list[Exposure]:
    """Every position of ``scope`` open at some time in ``[start, end)``, closed or not."""
    stmt = _positions(select(Position.account_id, Position.opened_at, Position.closed_at), scope)
    stmt = stmt.where(Position.opened_at < end)
    if start is not None:
        stmt = stmt.where(or_(Position.closed_at.is_(None), Position.closed_at > start))
    stmt = stmt.order_by(Position.opened_at, Position.id)
    return [Exposure(row.account_id, row.opened_at, row.closed_at) async for row in _stream(db, stmt)]


async def load_equity(
    db: Database, scope: Scope, start: datetime | None, end: datetime
) -> dict[int, list[tuple[datetime, Decimal]]]:
    """Per account: the last point before ``start`` (the opening equity), then the points in the period."""
    conditions = _account_filter(scope)
    series: dict[int, list[tuple[datetime, Decimal]]] = {}
    if start is not None:
        latest = (
            select(EquityPoint.account_id, func.max(EquityPoint.at).label("at"))
            .where(EquityPoint.at < start, *conditions)
            .group_by(EquityPoint.account_id)
            .subquery()
        )
        opening = (
            select(EquityPoint.account_id, EquityPoint.at, EquityPoint.equity)
            .join(latest, and_(EquityPoint.account_id == latest.c.account_id, EquityPoint.at == latest.c.at))
            .order_by(EquityPoint.account_id, EquityPoint.id)
        )
        for row in await _collect(db, opening):
            series[row.account_id] = [(row.at, row.equity)]  # the highest id wins a tie
    stmt = select(EquityPoint.account_id, EquityPoint.at, EquityPoint.equity).where(
        EquityPoint.at < end, *conditions
    )
    if start is not None:
        stmt = stmt.where(EquityPoint.at >= start)
    stmt = stmt.order_by(EquityPoint.at, EquityPoint.id)
    async for row in _stream(db, stmt):
        series.setdefault(row.account_id, []).append((row.at, row.equity))
    return series


async def _collect(db: Database, stmt: Stmt) -> list[Any]:
    return [row async for row in _stream(db, stmt)]


async def load_scope_data(db: Database, scope: Scope, start: datetime | None, end: datetime) -> ScopeData:
    """Trades, exposures and (for an equity-based scope) equity points for ``[start, end)``."""
    trades = await load_trades(db, scope, start, end)
    exposures = await load_exposures(db, scope, start, end)
    equity = await load_equity(db, scope, start, end) if scope.equity_based else {}
    return ScopeData(trades=trades, exposures=exposures, equity=equity)


async def data_marker(db: Database, scope: Scope) -> tuple[Any, ...]:
    """Changes whenever a new equity point or a newly closed position enters ``scope``."""
    async with db.engine.connect() as conn:
        closed = _positions(
            select(func.count(Position.id), func.max(Position.closed_at), func.max(Position.id)), scope
        ).where(Position.status == PositionStatus.CLOSED.value)
        count, last_close, last_id = (await conn.execute(closed)).one()
        newest_point = None
        if scope.equity_based:
            newest_point = (
                await conn.execute(select(func.max(EquityPoint.id)).where(*_account_filter(scope)))
            ).scalar()
    return (newest_point, count, last_close, last_id)


async def load_account_owners(db: Database) -> dict[int, User | None]:
    """Execution account id -> its owner (None for the operator's own accounts)."""
    async with db.session() as session:
        rows = (
            await session.execute(
                select(ExecutionAccount.id, User).outerjoin(User, ExecutionAccount.owner_id == User.id)
            )
        ).all()
    return {account_id: user for account_id, user in rows}
