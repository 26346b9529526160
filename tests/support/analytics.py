"""Builders shared by the analytics tests: value objects and rows in a real database."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from sqlalchemy import insert

from engine.analytics.data import Exposure, ScopeData, Trade
from engine.store.db import Database
from engine.store.models import EquityPoint, ExecutionAccount, Order, Position, Producer, Signal, User

T0 = datetime(2026, 3, 1, tzinfo=UTC)  # a Sunday; the books trade 24/7
_ids = itertools.count(1)


def at(day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A time in March 2026 (UTC); day 0 is 28 February."""
    return datetime(2026, 3, 1, tzinfo=UTC) + timedelta(days=day - 1, hours=hour, minutes=minute)


def trade(
    profit: str,
    commission: str = "0",
    swap: str = "0",
    *,
    opened: datetime = T0,
    closed: datetime | None = None,
    account_id: int = 1,
    symbol: str = "EURUSD",
    position_id: int | None = None,
    strategy: str | None = None,
) -> Trade:
    return Trade(
        position_id=position_id if position_id is not None else next(_ids),
        account_id=account_id,
        symbol=symbol,
        side="buy",
        volume=D("0.10"),
        open_time=opened,
        open_price=D("1.08500"),
        close_time=closed if closed is not None else opened + timedelta(hours=1),
        close_price=D("1.08650"),
        profit=D(profit),
        commission=D(commission),
        swap=D(swap),
        strategy=strategy,
    )


def data(
    trades: list[Trade] | None = None,
    exposures: list[Exposure] | None = None,
    equity: dict[int, list[tuple[datetime, D]]] | None = None,
) -> ScopeData:
    return ScopeData(trades=trades or [], exposures=exposures or [], equity=equity or {})


class Seeder:
    """Rows in a migrated database, committed one small transaction at a time."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._n = itertools.count(1)

    async def user(self, telegram_id: int, *, language: str = "en", notifications: bool = True) -> int:
        async with self.db.session() as s:
            user = User(
                telegram_id=telegram_id,
                referral_code=f"r{telegram_id}",
                language=language,
                notifications=notifications,
            )
            s.add(user)
            await s.flush()
            return user.id

    async def account(self, owner_id: int | None = None, *, balance: str = "10000") -> int:
        async with self.db.session() as s:
            acct = ExecutionAccount(owner_id=owner_id, kind="paper", balance=D(balance))
            s.add(acct)
            await s.flush()
            return acct.id

    async def producer(self, name: str) -> str:
        async with self.db.session() as s:
            producer = Producer(name=name, secret_enc="x", token_digest=f"{name:0>64}"[:64])
            s.add(producer)
            await s.flush()
            return producer.id

    async def signal(self, producer_id: str, instrument: str, strategy: str | None = None) -> str:
        n = next(self._n)
        async with self.db.session() as s:
            signal = Signal(
                producer_id=producer_id,
                idempotency_key=f"k{n}",
                body_hash=f"{n:064d}",
                instrument=instrument,
                side="buy",
                sl=D("1.0"),
                tp=D("2.0"),
                risk_percent=D("1"),
                ttl_seconds=600,
                strategy=strategy,
                expires_at=T0 + timedelta(days=400),
            )
            s.add(signal)
            await s.flush()
            return signal.id

    async def position(
        self,
        account_id: int,
        *,
        symbol: str = "EURUSD",
        profit: str = "0",
        commission: str = "0",
        swap: str = "0",
        opened: datetime = T0,
        closed: datetime | None = None,
        signal_id: str | None = None,
        status: str | None = None,
        close_price: str | None = "1.1",
    ) -> int:
        n = next(self._n)
        async with self.db.session() as s:
            order_id = None
            if signal_id is not None:
                order = Order(
                    client_order_id=f"c{n}",
                    signal_id=signal_id,
                    account_id=account_id,
                    symbol=symbol,
                    side="buy",
                    order_type="market",
                )
                s.add(order)
                await s.flush()
                order_id = order.id
            pos = Position(
                account_id=account_id,
                order_id=order_id,
                ticket=f"t{n}",
                symbol=symbol,
                side="buy",
                volume=D("0.01"),
                open_price=D("1.00001"),
                close_price=D(close_price) if closed is not None and close_price is not None else None,
                profit=D(profit),
                commission=D(commission),
                swap=D(swap),
                status=status or ("closed" if closed is not None else "open"),
                opened_at=opened,
                closed_at=closed,
            )
            s.add(pos)
            await s.flush()
            return pos.id

    async def equity(self, account_id: int, points: list[tuple[datetime, str]]) -> None:
        async with self.db.session() as s:
            for when, value in points:
                s.add(EquityPoint(account_id=account_id, at=when, balance=D(value), equity=D(value)))

    async def bulk_equity(self, account_id: int, points: list[tuple[datetime, D]]) -> None:
        """Many points at once (Core executemany), for long histories."""
        rows = [
            {"account_id": account_id, "at": t, "balance": v, "equity": v, "margin": D(0)} for t, v in points
        ]
        async with self.db.engine.begin() as conn:
            for i in range(0, len(rows), 5000):
                await conn.execute(insert(EquityPoint), rows[i : i + 5000])


# The hand-computed fixture of test_analytics_metrics (the arithmetic is in its comments).
START, END = at(1), at(5)  # 1 March 00:00 to 5 March 00:00: four whole days

# One account. The opening point (28 Feb) moves to the period start.
EQUITY = {
    1: [
        (at(0, 12), D("1000")),
        (at(1, 10), D("1100")),
        (at(1, 20), D("990")),
        (at(2, 12), D("1045")),
        (at(3, 9), D("1210")),
        (at(4, 15), D("1150")),
    ]
}
TRADES = [
    trade("120", "-2", "0", opened=at(1, 6), closed=at(1, 18)),  # net 118, a win
    trade("-50", "-2", "-1", opened=at(1, 12), closed=at(2, 0)),  # net -53, a loss
    trade("80", "-2", "0.5", opened=at(3, 0), closed=at(3, 6)),  # net 78.5, a win
    trade("2", "-2", "0", opened=at(0, 20), closed=at(1, 2)),  # net 0, break-even
]
EXPOSURES = [Exposure(1, t.open_time, t.close_time) for t in TRADES] + [Exposure(1, at(4, 18), None)]
