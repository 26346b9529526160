"""The paper broker: a simulated account inside the engine, persisted in the database.

It behaves like a small broker of its own, with its own book (``paper_orders``,
``paper_positions``, ``paper_deals``) apart from the engine's store, so reconciliation works
the same way for paper and MT5 accounts. Market orders fill at the current ask/bid (a move
past the request's deviation is a requote); limit/stop orders rest until the price reaches
them or they expire; SL and TP are honoured at their level. Pending triggers, SL/TP hits and
expiries are evaluated whenever the account is read or traded. A client order id is accepted
once: sending it again returns the first outcome (closes and partial closes included).

It behaves as a *hedging* account (``AccountSnapshot.hedging``): every order opens its own
position with its own SL and TP, as MT5 ``margin_mode`` 2 does. Stop changes and partial closes
follow the same stops-level and freeze-level rules as the terminal (``engine.brokers.stops``).
Closes the engine asks for are recorded with the reason ``expert``, as MT5 records closes sent by
a program; SL and TP fills carry ``sl`` and ``tp``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.brokers.base import (
    AccountSnapshot,
    Broker,
    BrokerHealth,
    BrokerOrder,
    BrokerPosition,
    Deal,
    FoundOrder,
    OrderRequest,
    OrderType,
    Side,
    SubmitResult,
    SubmitStatus,
    SymbolSpec,
    Tick,
)
from engine.brokers.pricefeed import PriceSource
from engine.brokers.stops import ChangeRefusal, Refused, close_volume_refusal, frozen, stop_change_refusal
from engine.store.db import Database, utcnow
from engine.store.models import ExecutionAccount, PaperDeal, PaperOrder, PaperPosition

CENT = Decimal("0.01")
LEVERAGE = Decimal(100)


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


class PaperBroker(Broker):
    def __init__(self, db: Database, account_id: int, *, prices: PriceSource, currency: str = "USD") -> None:
        self._db = db
        self._account_id = account_id
        self._currency = currency
        self._prices = prices
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ helpers

    def _quote(self, symbol: str) -> Tick:
        tick = self._prices.tick(symbol)
        if tick is None:
            raise KeyError(f"no price for {symbol}")
        return tick

    def _profit(
        self, spec: SymbolSpec, side: str, volume: Decimal, open_: Decimal, close: Decimal
    ) -> Decimal:
        diff = (close - open_) if side == Side.BUY else (open_ - close)
        return _money(diff / spec.tick_size * spec.tick_value * volume)

    def _spec(self, symbol: str) -> SymbolSpec:
        spec = self._prices.spec(symbol)
        if spec is None:
            raise KeyError(f"unknown symbol {symbol}")
        return spec

    async def _account_row(self, session: AsyncSession) -> ExecutionAccount:
        row = await session.get(ExecutionAccount, self._account_id, with_for_update=True)
        if row is None:
            raise KeyError(f"paper account {self._account_id} does not exist")
        if row.balance is None:
            row.balance = Decimal(0)
        return row

    async def _close(
        self,
        session: AsyncSession,
        account: ExecutionAccount,
        pos: PaperPosition,
        price: Decimal,
        reason: str,
        client_order_id: str | None,
        when: datetime,
        volume: Decimal | None = None,
    ) -> PaperDeal:
        spec = self._spec(pos.symbol)
        volume = pos.volume if volume is None else volume
        profit = self._profit(spec, pos.side, volume, pos.open_price, price)
        if volume >= pos.volume:
            pos.closed = True  # the row keeps the volume it had when it was closed
        else:
            pos.volume -= volume
        account.balance = (account.balance or Decimal(0)) + profit
        deal = PaperDeal(
            account_id=self._account_id,
            position_ticket=pos.ticket,
            client_order_id=client_order_id,
            symbol=pos.symbol,
            side=Side(pos.side).opposite.value,
            entry="out",
            volume=volume,
            price=price,
            profit=profit,
            reason=reason,
            time=when,
        )
        session.add(deal)
        await session.flush()
        return deal

    async def _open(
        self, session: AsyncSession, order: PaperOrder, price: Decimal, when: datetime
    ) -> PaperPosition:
        pos = PaperPosition(
            account_id=self._account_id,
            order_ticket=order.ticket,
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            volume=order.volume,
            open_price=price,
            sl=order.sl,
            tp=order.tp,
            opened_at=when,
        )
        session.add(pos)
        await session.flush()
        session.add(
            PaperDeal(
                account_id=self._account_id,
                order_ticket=order.ticket,
                position_ticket=pos.ticket,
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                side=order.side,
                entry="in",
                volume=order.volume,
                price=price,
                reason="expert",
                time=when,
            )
        )
        order.state = "filled"
        order.position_ticket = pos.ticket
        order.done_at = when
        return pos

    async def _evaluate(self, session: AsyncSession, account: ExecutionAccount) -> None:
        """Trigger pending orders, expire old ones, and close positions whose SL or TP was reached."""
        now = utcnow()
        pending = (
            await session.scalars(
                select(PaperOrder).where(
                    PaperOrder.account_id == self._account_id, PaperOrder.state == "pending"
                )
            )
        ).all()
        for order in pending:
            if order.expires_at is not None and order.expires_at <= now:
                order.state, order.done_at = "expired", now
                continue
            tick = self._quote(order.symbol)
            buy = order.side == Side.BUY
            market = tick.ask if buy else tick.bid
            limit = order.order_type == OrderType.LIMIT
            reached = (market <= order.price) if (buy == limit) else (market >= order.price)
            if reached:
                await self._open(session, order, order.price, now)
        positions = (
            await session.scalars(
                select(PaperPosition).where(
                    PaperPosition.account_id == self._account_id, PaperPosition.closed.is_(False)
                )
            )
        ).all()
        for pos in positions:
            tick = self._quote(pos.symbol)
            buy = pos.side == Side.BUY
            exit_price = tick.bid if buy else tick.ask
            if pos.sl is not None and (exit_price <= pos.sl if buy else exit_price >= pos.sl):
                await self._close(session, account, pos, pos.sl, "sl", None, now)
            elif pos.tp is not None and (exit_price >= pos.tp if buy else exit_price <= pos.tp):
                await self._close(session, account, pos, pos.tp, "tp", None, now)

    async def _floating(self, positions: list[PaperPosition]) -> Decimal:
        total = Decimal(0)
        for pos in positions:
            tick = self._quote(pos.symbol)
            price = tick.bid if pos.side == Side.BUY else tick.ask
            total += self._profit(self._spec(pos.symbol), pos.side, pos.volume, pos.open_price, price)
        return total

    def _margin(self, positions: list[PaperPosition]) -> Decimal:
        total = Decimal(0)
        for pos in positions:
            spec = self._spec(pos.symbol)
            notional = pos.volume * spec.contract_size * pos.open_price
            # Notional in the profit currency, converted with the tick value's ratio.
            per_unit = spec.tick_value / (spec.tick_size * spec.contract_size)
            total += notional * per_unit / LEVERAGE
        return _money(total)

    async def _open_positions(self, session: AsyncSession) -> list[PaperPosition]:
        return list(
            (
                await session.scalars(
                    select(PaperPosition)
                    .where(PaperPosition.account_id == self._account_id, PaperPosition.closed.is_(False))
                    .order_by(PaperPosition.ticket)
                )
            ).all()
        )

    async def _snapshot(self, session: AsyncSession, account: ExecutionAccount) -> AccountSnapshot:
        positions = await self._open_positions(session)
        balance = account.balance or Decimal(0)
        equity = _money(balance + await self._floating(positions))
        margin = self._margin(positions)
        return AccountSnapshot(
            login=f"paper-{self._account_id}",
            balance=_money(balance),
            equity=equity,
            margin=margin,
            free_margin=_money(equity - margin),
            currency=self._currency,
        )

    # ------------------------------------------------------------------ Broker interface

    async def connect(self) -> None:
        async with self._db.session() as session:
            await self._account_row(session)

    async def health(self) -> BrokerHealth:
        try:
            await self.connect()
        except Exception as exc:
            return BrokerHealth(False, str(exc))
        return BrokerHealth(True, "paper")

    async def account(self) -> AccountSnapshot:
        async with self._lock, self._db.session() as session:
            account = await self._account_row(session)
            await self._evaluate(session, account)
            return await self._snapshot(session, account)

    async def symbol_spec(self, symbol: str) -> SymbolSpec | None:
        return self._prices.spec(symbol)

    async def tick(self, symbol: str) -> Tick:
        return self._quote(symbol)

    async def submit(self, request: OrderRequest) -> SubmitResult:
        async with self._lock, self._db.session() as session:
            earlier = await session.scalar(
                select(PaperOrder).where(PaperOrder.client_order_id == request.client_order_id)
            )
            if earlier is not None:
                return self._result_of(earlier, await self._fill_price(session, earlier))
            account = await self._account_row(session)
            await self._evaluate(session, account)
            refusal = self._validate(request)
            if refusal:
                return SubmitResult(SubmitStatus.REFUSED, reason=refusal)
            spec = self._spec(request.symbol)
            tick = self._quote(request.symbol)
            buy = request.side is Side.BUY
            now = utcnow()
            order = PaperOrder(
                account_id=self._account_id,
                client_order_id=request.client_order_id,
                symbol=spec.name,
                side=request.side.value,
                order_type=request.order_type.value,
                volume=request.volume,
                price=request.price,
                sl=request.sl,
                tp=request.tp,
                expires_at=request.expires_at,
                state="pending",
                created_at=now,
            )
            if request.order_type is OrderType.MARKET:
                price = tick.ask if buy else tick.bid
                if abs(price - request.price) > spec.point * request.deviation_points:
                    return SubmitResult(SubmitStatus.RETRY, reason=f"requote: price moved to {price}")
                snapshot = await self._snapshot(session, account)
                needed = self._margin(
                    [
                        PaperPosition(
                            symbol=spec.name, side=request.side.value, volume=request.volume, open_price=price
                        )
                    ]
                )
                if needed > snapshot.free_margin:
                    return SubmitResult(
                        SubmitStatus.REFUSED,
                        reason=f"not enough money: margin {needed} > free {snapshot.free_margin}",
                    )
                session.add(order)
                await session.flush()
                pos = await self._open(session, order, price, now)
                return SubmitResult(
                    SubmitStatus.ACCEPTED,
                    retcode=10009,
                    reason="done",
                    ticket=str(order.ticket),
                    position_ticket=str(pos.ticket),
                    filled_volume=request.volume,
                    price=price,
                )
            session.add(order)
            await session.flush()
            return SubmitResult(
                SubmitStatus.ACCEPTED, retcode=10008, reason="placed", ticket=str(order.ticket)
            )

    def _validate(self, request: OrderRequest) -> str | None:
        spec = self._prices.spec(request.symbol)
        if spec is None:
            return f"unknown symbol {request.symbol}"
        if request.volume < spec.volume_min or request.volume > spec.volume_max:
            return f"invalid volume {request.volume}"
        if (request.volume / spec.volume_step) % 1 != 0:
            return f"volume {request.volume} is not a multiple of {spec.volume_step}"
        buy = request.side is Side.BUY
        if (buy and not request.sl < request.price < request.tp) or (
            not buy and not request.tp < request.price < request.sl
        ):
            return "invalid stops"
        return None

    async def _fill_price(self, session: AsyncSession, order: PaperOrder) -> Decimal | None:
        if order.position_ticket is None:
            return None
        pos = await session.get(PaperPosition, order.position_ticket)
        return pos.open_price if pos else None

    def _result_of(self, order: PaperOrder, price: Decimal | None) -> SubmitResult:
        if order.state == "filled":
            return SubmitResult(
                SubmitStatus.ACCEPTED,
                retcode=10009,
                reason="done (already executed)",
                ticket=str(order.ticket),
                position_ticket=str(order.position_ticket),
                filled_volume=order.volume,
                price=price,
            )
        if order.state == "pending":
            return SubmitResult(
                SubmitStatus.ACCEPTED, retcode=10008, reason="placed", ticket=str(order.ticket)
            )
        return SubmitResult(SubmitStatus.REFUSED, reason=f"order already {order.state}")

    async def find_by_client_id(self, client_order_id: str) -> FoundOrder | None:
        async with self._lock, self._db.session() as session:
            order = await session.scalar(
                select(PaperOrder).where(PaperOrder.client_order_id == client_order_id)
            )
            if order is None:
                return None
            price = await self._fill_price(session, order)
            state = {"filled": "filled", "pending": "pending"}.get(order.state, "cancelled")
            return FoundOrder(
                client_order_id=client_order_id,
                ticket=str(order.ticket),
                state=state,
                position_ticket=str(order.position_ticket) if order.position_ticket else None,
                filled_volume=order.volume if state == "filled" else None,
                price=price,
            )

    async def positions(self) -> list[BrokerPosition]:
        async with self._lock, self._db.session() as session:
            account = await self._account_row(session)
            await self._evaluate(session, account)
            result = []
            for pos in await self._open_positions(session):
                tick = self._quote(pos.symbol)
                price = tick.bid if pos.side == Side.BUY else tick.ask
                result.append(
                    BrokerPosition(
                        ticket=str(pos.ticket),
                        symbol=pos.symbol,
                        side=Side(pos.side),
                        volume=pos.volume,
                        open_price=pos.open_price,
                        sl=pos.sl,
                        tp=pos.tp,
                        profit=self._profit(
                            self._spec(pos.symbol), pos.side, pos.volume, pos.open_price, price
                        ),
                        opened_at=pos.opened_at,
                        client_order_id=pos.client_order_id,
                        current_price=price,
                    )
                )
            return result

    async def pending_orders(self) -> list[BrokerOrder]:
        async with self._lock, self._db.session() as session:
            account = await self._account_row(session)
            await self._evaluate(session, account)
            rows = (
                await session.scalars(
                    select(PaperOrder).where(
                        PaperOrder.account_id == self._account_id, PaperOrder.state == "pending"
                    )
                )
            ).all()
            return [
                BrokerOrder(
                    ticket=str(o.ticket),
                    symbol=o.symbol,
                    side=Side(o.side),
                    order_type=OrderType(o.order_type),
                    volume=o.volume,
                    price=o.price,
                    sl=o.sl,
                    tp=o.tp,
                    expires_at=o.expires_at,
                    client_order_id=o.client_order_id,
                )
                for o in rows
            ]

    async def cancel_order(self, ticket: str) -> SubmitResult:
        async with self._lock, self._db.session() as session:
            order = await session.get(PaperOrder, int(ticket))
            if order is None or order.account_id != self._account_id or order.state != "pending":
                return SubmitResult(SubmitStatus.REFUSED, reason=f"no pending order {ticket}")
            order.state, order.done_at = "cancelled", utcnow()
            return SubmitResult(SubmitStatus.ACCEPTED, reason="cancelled", ticket=ticket)

    async def close_position(self, ticket: str, client_order_id: str) -> SubmitResult:
        return await self._close_volume(ticket, None, client_order_id)

    async def close_partial(self, ticket: str, volume: Decimal, client_order_id: str) -> SubmitResult:
        return await self._close_volume(ticket, volume, client_order_id)

    async def _close_volume(self, ticket: str, volume: Decimal | None, client_order_id: str) -> SubmitResult:
        async with self._lock, self._db.session() as session:
            account = await self._account_row(session)
            earlier = await session.scalar(
                select(PaperDeal).where(PaperDeal.client_order_id == client_order_id)
            )
            if earlier is not None:
                return SubmitResult(
                    SubmitStatus.ACCEPTED, retcode=10009, reason="done (already closed)",
                    ticket=str(earlier.ticket), position_ticket=str(earlier.position_ticket),
                    filled_volume=earlier.volume, price=earlier.price,
                )  # fmt: skip
            await self._evaluate(session, account)
            pos = await session.get(PaperPosition, int(ticket))
            if pos is None or pos.account_id != self._account_id or pos.closed:
                return _refused(Refused(ChangeRefusal.POSITION_GONE, f"position {ticket} is not open"))
            spec = self._spec(pos.symbol)
            tick = self._quote(pos.symbol)
            price = tick.bid if pos.side == Side.BUY else tick.ask
            refused = frozen(spec, price, pos.sl, pos.tp)
            if refused is None and volume is not None:
                refused = close_volume_refusal(spec, pos.volume, volume)
            if refused is not None:
                return _refused(refused)
            closed = pos.volume if volume is None else volume
            deal = await self._close(
                session, account, pos, price, "expert", client_order_id, utcnow(), volume=closed
            )
            return SubmitResult(
                SubmitStatus.ACCEPTED,
                retcode=10009,
                reason="done",
                ticket=str(deal.ticket),
                position_ticket=ticket,
                filled_volume=closed,
                price=price,
            )

    async def modify_position(self, ticket: str, sl: Decimal | None, tp: Decimal | None) -> SubmitResult:
        async with self._lock, self._db.session() as session:
            account = await self._account_row(session)
            await self._evaluate(session, account)
            pos = await session.get(PaperPosition, int(ticket))
            if pos is None or pos.account_id != self._account_id or pos.closed:
                return _refused(Refused(ChangeRefusal.POSITION_GONE, f"position {ticket} is not open"))
            if (pos.sl, pos.tp) == (sl, tp):
                return SubmitResult(SubmitStatus.ACCEPTED, retcode=10025, reason="no changes",
                                    position_ticket=ticket)  # fmt: skip
            tick = self._quote(pos.symbol)
            refused = stop_change_refusal(
                self._spec(pos.symbol), Side(pos.side), tick.bid, tick.ask,
                sl=sl, tp=tp, current_sl=pos.sl, current_tp=pos.tp,
            )  # fmt: skip
            if refused is not None:
                return _refused(refused)
            pos.sl, pos.tp = sl, tp
            return SubmitResult(SubmitStatus.ACCEPTED, retcode=10009, reason="done", position_ticket=ticket)

    async def position_deals(self, ticket: str) -> list[Deal]:
        async with self._lock, self._db.session() as session:
            account = await self._account_row(session)
            await self._evaluate(session, account)
            rows = (
                await session.scalars(
                    select(PaperDeal)
                    .where(PaperDeal.account_id == self._account_id, PaperDeal.position_ticket == int(ticket))
                    .order_by(PaperDeal.ticket)
                )
            ).all()
            return [_deal(d) for d in rows]

    async def deals(self, since: datetime, until: datetime) -> list[Deal]:
        async with self._lock, self._db.session() as session:
            account = await self._account_row(session)
            await self._evaluate(session, account)
            rows = (
                await session.scalars(
                    select(PaperDeal)
                    .where(
                        PaperDeal.account_id == self._account_id,
                        PaperDeal.time >= since,
                        PaperDeal.time <= until,
                    )
                    .order_by(PaperDeal.ticket)
                )
            ).all()
            return [_deal(d) for d in rows]

    async def close(self) -> None:
        return None


def _deal(d: PaperDeal) -> Deal:
    return Deal(
        ticket=str(d.ticket),
        order_ticket=str(d.order_ticket or ""),
        position_ticket=str(d.position_ticket),
        symbol=d.symbol,
        side=Side(d.side),
        volume=d.volume,
        price=d.price,
        profit=d.profit,
        time=d.time,
        entry=d.entry,
        client_order_id=d.client_order_id,
        reason=d.reason,
    )


def _refused(refused: Refused) -> SubmitResult:
    return SubmitResult(SubmitStatus.REFUSED, reason=refused.message, code=refused.code.value)
