"""Execution: an approval becomes exactly one broker order.

The order row (client order id derived from the decision) exists before anything is sent; it
is claimed for submission by a conditional UPDATE (PENDING/RETRY_WAIT -> SUBMITTING) that is
committed *before* the broker call, so two workers, two taps or two instances can never both
send it. An answer that is lost (timeout, disconnect, exception, crash) leaves the order
SUBMITTING/UNKNOWN, and it is resolved by looking the client order id up at the broker before
anything is sent again. Retries back off exponentially with jitter (tenacity), capped at
120 s and bounded in number; when they run out the order is FAILED and ``order.failed`` tells ops.

Before anything is sent the order passes the pre-trade risk chain (``engine.risk.chain``, the
subscriber's own limits last) and is sized by the subscriber's risk limits (``sized_params``:
the signal's risk %, their own % or fixed lots, capped at their max lots); the chain's exposure
gates are asked again with the sized order in the claim's transaction, under the account's lock.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from loguru import logger
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_result,
    stop_after_attempt,
    wait_exponential_jitter,
)

from engine.accounts.symbols import resolve_symbol
from engine.brokers.base import Broker, FoundOrder, OrderRequest, OrderType, Side, SubmitResult, SubmitStatus
from engine.brokers.ownership import AccountScope
from engine.brokers.registry import BrokerRegistry
from engine.execution.legs import Leg, plan_legs
from engine.execution.orders import BuiltOrder, OrderRefusal, OrderRules, SignalParams, build_order
from engine.risk.chain import RiskChain, SizedOrder, TradeContext, standard_gates
from engine.risk.limit_gates import limit_gates, personal_limits
from engine.risk.limits import EffectiveLimits, LimitDefaults, Sizing
from engine.states import ORDER, DecisionStatus, OrderStatus
from engine.store.audit import audit
from engine.store.db import Database, utcnow
from engine.store.events import (
    ORDER_FAILED,
    ORDER_FILLED,
    ORDER_PLACED,
    ORDER_REJECTED,
    POSITION_OPENED,
    EventRelay,
    emit,
)
from engine.store.models import Decision, ExecutionAccount, Order, Position, Signal, User

CLIENT_ID_PREFIX = "tb-"


def client_order_id_for(decision_id: str, leg: int = 1) -> str:
    """The broker-side id of the order for one decision (and target leg, on hedging accounts):
    deterministic, 25 chars (MT5 comment <= 31)."""
    key = decision_id if leg == 1 else f"{decision_id}:leg{leg}"
    digest = hashlib.sha256(key.encode()).digest()
    return CLIENT_ID_PREFIX + base64.b32encode(digest).decode().rstrip("=").lower()[:22]


@dataclass(frozen=True)
class ExecutionConfig:
    max_attempts: int = 8  # with the 120 s cap: about two minutes of broker outage
    retry_initial_seconds: float = 1.0
    retry_max_seconds: float = 120.0
    submit_timeout_seconds: float = 30.0
    # A SUBMITTING order older than this with no worker on it is treated as UNKNOWN (e.g. after a crash).
    stale_submitting_seconds: float = 60.0


_RETRYABLE = frozenset({OrderStatus.RETRY_WAIT, OrderStatus.UNKNOWN, OrderStatus.SUBMITTING})


def sized_params(signal: Signal, limits: EffectiveLimits | None) -> SignalParams:
    """The signal as order construction sizes it for this subscriber: by the signal's risk %,
    their own risk % or their fixed lots, capped at their max lots (no limits: the operator's
    own account, by the signal's risk)."""
    params = SignalParams(
        side=Side(signal.side),
        order_type=OrderType(signal.order_type),
        entry=signal.entry,
        sl=signal.sl,
        tp=signal.tp,
        risk_percent=signal.risk_percent,
    )
    if limits is None:
        return params
    if limits.sizing is Sizing.RISK_PERCENT:
        params = dataclasses.replace(params, risk_percent=limits.risk_percent)
    elif limits.sizing is Sizing.FIXED:
        params = dataclasses.replace(params, fixed_volume=limits.fixed_lots)
    return dataclasses.replace(params, max_lots=limits.max_lots)


def _s(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _request_columns(req: OrderRequest) -> dict[str, Any]:
    return {
        "status": OrderStatus.SUBMITTING.value,
        "symbol": req.symbol,
        "side": req.side.value,
        "volume": req.volume,
        "price": req.price,
        "sl": req.sl,
        "tp": req.tp,
        "filling": req.filling.value,
        "deviation_points": req.deviation_points,
        "expires_at": req.expires_at,
    }


class ExecutionService:
    def __init__(
        self,
        db: Database,
        brokers: BrokerRegistry,
        rules: Callable[[ExecutionAccount], OrderRules],
        relay: EventRelay | None = None,
        config: ExecutionConfig | None = None,
        chain: RiskChain | None = None,
        limits: LimitDefaults | None = None,
        *,
        instance: str | None = None,
    ) -> None:
        """``instance``: this process among several, recorded on the orders it claims for sending."""
        self._db = db
        self.instance = instance
        self._brokers = brokers
        self._rules = rules
        self._relay = relay
        self.config = config or ExecutionConfig()
        # The admin's defaults of each subscriber's own limits (sizing, caps; engine.risk.limits).
        self.limits = limits or LimitDefaults()
        # The pre-trade risk chain every order passes before it is sent (engine.risk.chain), the
        # subscriber's own limits last.
        self.chain = (
            chain if chain is not None else RiskChain([*standard_gates(rules), *limit_gates(self.limits)])
        )
        self._locks: dict[str, asyncio.Lock] = {}
        self._account_locks: dict[int, asyncio.Lock] = {}
        self._inflight: set[asyncio.Task[Any]] = set()
        self._accepting = True

    # ----------------------------------------------------------------- entry points

    async def order_for_decision(self, decision_id: str) -> Order | None:
        """The order of an approved decision, created PENDING on first call (database-enforced once)."""
        async with self._db.session() as session:
            first_leg = select(Order).where(Order.decision_id == decision_id, Order.leg == 1)
            existing = await session.scalar(first_leg)
            if existing is not None:
                return existing
            decision = await session.get(Decision, decision_id)
            if decision is None or decision.status != DecisionStatus.APPROVED or decision.account_id is None:
                return None
            signal = await session.get(Signal, decision.signal_id)
            assert signal is not None
            order = Order(
                client_order_id=client_order_id_for(decision_id),
                decision_id=decision_id,
                signal_id=signal.id,
                account_id=decision.account_id,
                symbol=signal.instrument,
                side=signal.side,
                order_type=signal.order_type,
                status=OrderStatus.PENDING.value,
            )
            session.add(order)
            try:
                await session.flush()
            except IntegrityError:
                await session.rollback()
                return await session.scalar(first_leg)
        return order

    async def execute_decision(self, decision_id: str) -> Order | None:
        order = await self.order_for_decision(decision_id)
        if order is None:
            return None
        return await self.process(order.id)

    def submit_in_background(self, decision_id: str) -> asyncio.Task[Order | None] | None:
        """Start executing an approval without making the caller (a Telegram tap) wait."""
        if not self._accepting:
            return None  # shutting down: the trading loop picks the PENDING order up after restart
        task = asyncio.create_task(self.execute_decision(decision_id), name=f"execute:{decision_id}")
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return task

    async def drain(self, deadline_seconds: float) -> None:
        """Graceful shutdown: take no new work, let in-flight broker calls finish within the deadline."""
        self._accepting = False
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=deadline_seconds)

    def is_stale(self, order: Order) -> bool:
        """A SUBMITTING order whose worker has been silent too long (or never said when it sent it):
        nobody will record its outcome, so it must be looked up at the broker."""
        if order.submitted_at is None:
            return True
        return utcnow() - order.submitted_at > timedelta(seconds=self.config.stale_submitting_seconds)

    @property
    def _backoff(self) -> wait_exponential_jitter:
        """The one backoff rule, from the current config: exponential from ``retry_initial_seconds``
        with up to that much jitter, capped at ``retry_max_seconds``."""
        return wait_exponential_jitter(
            multiplier=self.config.retry_initial_seconds,
            max=self.config.retry_max_seconds,
            jitter=self.config.retry_initial_seconds,
        )

    def backoff_seconds(self, attempts: int) -> float:
        """The wait before attempt ``attempts + 1``: the one backoff rule (tenacity's exponential
        with jitter), used in-line by ``process`` and for ``next_attempt_at`` by the loop's path."""
        state = RetryCallState(AsyncRetrying(), None, (), {})
        state.attempt_number = max(attempts, 1)
        return float(self._backoff(state))

    async def resolve(self, order_id: str) -> Order | None:
        """Settle an order whose outcome is unknown by looking it up at the broker, under the order's
        lock; None when a worker of this process holds it (it resolves on its next attempt)."""
        lock = self._lock(order_id)
        if lock.locked():
            return None
        async with lock:
            return await self._resolve(order_id)

    async def process(self, order_id: str) -> Order:
        """Drive one order until it is settled or waiting for a later retry."""
        async with self._lock(order_id):
            retrying = AsyncRetrying(
                stop=stop_after_attempt(self.config.max_attempts),
                wait=self._backoff,
                retry=retry_if_result(lambda o: OrderStatus(o.status) in _RETRYABLE and self._accepting),
                before_sleep=self._remember_next_attempt(order_id),
                retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
            )
            result: Order = await retrying(self._attempt, order_id)
            return result

    def _lock(self, order_id: str) -> asyncio.Lock:
        """One in-process worker per order (the database claim guards across processes)."""
        if len(self._locks) > 10_000:
            self._locks = {k: v for k, v in self._locks.items() if v.locked()}
        return self._locks.setdefault(order_id, asyncio.Lock())

    def _remember_next_attempt(self, order_id: str) -> Callable[[RetryCallState], Awaitable[None]]:
        async def before_sleep(state: RetryCallState) -> None:
            sleep = state.upcoming_sleep or 0.0
            async with self._db.session() as session:
                await session.execute(
                    update(Order)
                    .where(Order.id == order_id, Order.status == OrderStatus.RETRY_WAIT.value)
                    .values(next_attempt_at=utcnow() + timedelta(seconds=sleep))
                )

        return before_sleep

    # ----------------------------------------------------------------- one attempt

    async def _attempt(self, order_id: str) -> Order:
        async with self._db.session() as session:
            # One round trip for the order and everything the gates and the builder read.
            loaded = (
                await session.execute(
                    select(Order, ExecutionAccount, Signal, Decision, User)
                    .join(ExecutionAccount, ExecutionAccount.id == Order.account_id)
                    .outerjoin(Signal, Signal.id == Order.signal_id)
                    .outerjoin(Decision, Decision.id == Order.decision_id)
                    .outerjoin(User, User.id == Decision.user_id)
                    .where(Order.id == order_id)
                )
            ).one_or_none()
            assert loaded is not None, order_id
            order, account, signal, decision, user = loaded
            if not await self._brokers.usable(account):
                return order  # another instance runs this account: its loop drives the order
            status = OrderStatus(order.status)
            if status in (OrderStatus.SUBMITTING, OrderStatus.UNKNOWN):
                if status is OrderStatus.UNKNOWN or self.is_stale(order):
                    return await self._resolve(order_id)
                return order
            if status not in (OrderStatus.PENDING, OrderStatus.RETRY_WAIT):
                return order  # settled, or resting at the broker
            if order.attempts >= self.config.max_attempts:
                return await self._fail(session, order, "retries exhausted")
            assert signal is not None, f"order {order_id} has no signal"
            context = TradeContext(
                session,
                account,
                user,
                signal,
                utcnow(),
                order=order,
                via=decision.via if decision is not None else "dm",
            )
            refusal = await self.chain.check(context)
            if refusal is not None:
                return await self._refuse(
                    session, order, refusal.code, refusal.message, refusal.params, gate=refusal.gate
                )
            limits = await personal_limits(context, self.limits)
            session.expunge_all()

        try:
            broker = await self._brokers.get(account)
            symbol = resolve_symbol(account, signal.instrument)
            spec = await broker.symbol_spec(symbol)
            if spec is None:
                async with self._db.session() as session:
                    order = await self._load(session, order_id)
                    return await self._refuse(
                        session, order, "unknown_symbol", f"{symbol} is not a symbol this account can trade"
                    )
            tick = await broker.tick(symbol)
            snapshot = await broker.account()
        except Exception as exc:
            # Nothing was sent: safe to try again later.
            logger.warning("order {}: broker not ready: {!r}", order_id, exc)
            async with self._db.session() as session:
                order = await self._load(session, order_id)
                order.attempts += 1
                return await self._retry_or_fail(session, order, f"broker unavailable: {exc}")

        built = build_order(
            client_order_id=order.client_order_id,
            signal=sized_params(signal, limits),
            account=snapshot,
            spec=spec,
            tick=tick,
            rules=self._rules(account),
            now=utcnow(),
        )
        if isinstance(built, OrderRefusal):
            async with self._db.session() as session:
                order = await self._load(session, order_id)
                return await self._refuse(session, order, built.code.value, built.message, built.details)

        legs = plan_legs(order, signal, built, spec, snapshot.hedging, client_order_id_for)
        sized = SizedOrder(
            volume=built.request.volume,
            risk_amount=built.risk_amount,
            equity=snapshot.equity,
            rr=built.rr,
            currency=snapshot.currency,
        )
        claimed = await self._claim(order, built, legs, context, sized)
        if isinstance(claimed, Order):
            return claimed  # refused by an exposure limit once sized
        if not claimed:
            async with self._db.session() as session:
                return await self._load(session, order_id)  # someone else is sending it
        first: Order | None = None
        for leg in legs:  # the other legs were committed SUBMITTING with the first: each resolves alone
            result = await self._send(broker, leg.request)
            applied = await self._apply(leg.order_id, result, leg.request)
            first = first or applied
        assert first is not None
        return first

    async def _claim(
        self, order: Order, built: BuiltOrder, legs: list[Leg], context: TradeContext, sized: SizedOrder
    ) -> bool | Order:
        """Claim the order (PENDING/RETRY_WAIT -> SUBMITTING) and create its other target legs,
        SUBMITTING too, in one transaction committed before anything is sent.

        First, in the same transaction and under the account's lock (an in-process lock, and the
        account row locked FOR UPDATE on PostgreSQL), the chain's sized gates look at the sized
        order: another order of the account claimed meanwhile counts. A refusal is recorded there
        and the refused order returned; False when someone else claimed the order first."""
        lock = self._account_locks.setdefault(order.account_id, asyncio.Lock())
        async with lock:
            return await self._claim_locked(order, built, legs, context, sized)

    async def _claim_locked(
        self, order: Order, built: BuiltOrder, legs: list[Leg], context: TradeContext, sized: SizedOrder
    ) -> bool | Order:
        now = utcnow()
        total = built.request.volume
        async with self._db.session() as session:
            if self.chain.sized_gates:
                await session.execute(
                    select(ExecutionAccount.id)
                    .where(ExecutionAccount.id == order.account_id)
                    .with_for_update()
                )
                refusal = await self.chain.check_sized(
                    dataclasses.replace(context, session=session, now=now, sized=sized)
                )
                if refusal is not None:
                    current = await self._load(session, order.id)
                    if current.status not in (OrderStatus.PENDING.value, OrderStatus.RETRY_WAIT.value):
                        return False
                    return await self._refuse(
                        session, current, refusal.code, refusal.message, refusal.params, gate=refusal.gate
                    )
            first, *others = legs
            claimed = await session.execute(
                update(Order)
                .where(
                    Order.id == order.id,
                    Order.status.in_([OrderStatus.PENDING.value, OrderStatus.RETRY_WAIT.value]),
                )
                .values(
                    **_request_columns(first.request),
                    targets=first.plan,
                    risk_amount=built.risk_amount * first.request.volume / total,
                    attempts=Order.attempts + 1,
                    submitted_at=now,
                    submitted_by=self.instance,
                    updated_at=now,
                )
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return False
            for leg in others:
                session.add(
                    Order(
                        id=leg.order_id,
                        client_order_id=leg.request.client_order_id,
                        decision_id=order.decision_id,
                        leg=leg.number,
                        signal_id=order.signal_id,
                        account_id=order.account_id,
                        order_type=order.order_type,
                        **_request_columns(leg.request),
                        targets=leg.plan,
                        risk_amount=built.risk_amount * leg.request.volume / total,
                        attempts=1,
                        submitted_at=now,
                        submitted_by=self.instance,
                    )
                )
            return True

    async def _send(self, broker: Broker, request: OrderRequest) -> SubmitResult:
        try:
            return await asyncio.wait_for(broker.submit(request), self.config.submit_timeout_seconds)
        except Exception as exc:
            return SubmitResult(SubmitStatus.UNKNOWN, reason=f"no reliable answer: {exc!r}")

    async def _apply(self, order_id: str, result: SubmitResult, request: OrderRequest | None) -> Order:
        async with self._db.session() as session:
            order = await self._load(session, order_id)
            order.retcode = result.retcode
            if result.status is SubmitStatus.ACCEPTED:
                return await self._accepted(
                    session, order, result.ticket, result.position_ticket, result.filled_volume, result.price
                )
            if result.status is SubmitStatus.REFUSED:
                return await self._refuse(
                    session, order, "broker", result.reason or f"retcode {result.retcode}"
                )
            if result.status is SubmitStatus.RETRY:
                return await self._retry_or_fail(session, order, result.reason or "re-pricing")
            ORDER.move(order, OrderStatus.UNKNOWN)
            order.reason = (result.reason or "outcome unknown")[:500]
            audit(session, "engine", "order.unknown", f"order:{order.id}", reason=order.reason)
        return await self._resolve(order_id)

    async def _resolve(self, order_id: str) -> Order:
        """Settle an order whose outcome is unknown, or a resting (placed) one that has filled, by
        asking the broker about its client id."""
        async with self._db.session() as session:
            order = await self._load(session, order_id)
            account = await session.get(ExecutionAccount, order.account_id)
            assert account is not None
            session.expunge_all()
        if not await self._brokers.usable(account):
            return order  # its owner looks it up
        try:
            broker = await self._brokers.get(account)
            found: FoundOrder | None = await broker.find_by_client_id(order.client_order_id)
        except Exception as exc:
            logger.warning("order {}: lookup at the broker failed, still unknown: {!r}", order_id, exc)
            async with self._db.session() as session:
                order = await self._load(session, order_id)
                if order.status == OrderStatus.SUBMITTING:
                    ORDER.move(order, OrderStatus.UNKNOWN)
                return order
        async with self._db.session() as session:
            order = await self._load(session, order_id)
            resting_filled = (
                order.status == OrderStatus.PLACED.value and found is not None and found.state == "filled"
            )
            if (
                order.status not in (OrderStatus.SUBMITTING.value, OrderStatus.UNKNOWN.value)
                and not resting_filled
            ):
                return order  # another worker or instance settled it while we looked
            if order.status == OrderStatus.SUBMITTING:
                ORDER.move(order, OrderStatus.UNKNOWN)
            if found is not None and found.state in ("filled", "pending"):
                audit(
                    session,
                    "engine",
                    "order.resolved",
                    f"order:{order.id}",
                    found=found.state,
                    ticket=found.ticket,
                )
                return await self._accepted(
                    session, order, found.ticket, found.position_ticket, found.filled_volume, found.price
                )
            if found is not None and found.state == "rejected":
                return await self._refuse(session, order, "broker", "the broker rejected the order")
            # Confirmed absent at the broker: safe to send again (bounded).
            audit(session, "engine", "order.absent", f"order:{order.id}", attempts=order.attempts)
            return await self._retry_or_fail(session, order, order.reason or "no answer")

    # ----------------------------------------------------------------- outcomes

    async def _load(self, session: AsyncSession, order_id: str) -> Order:
        order = await session.get(Order, order_id, with_for_update=True)
        assert order is not None
        return order

    def order_payload(self, order: Order) -> dict[str, Any]:
        """The fields every order event carries (also for events the reconciler emits)."""
        return {
            "order_id": order.id,
            "decision_id": order.decision_id,
            "signal_id": order.signal_id,
            "account_id": order.account_id,
            "client_order_id": order.client_order_id,
            "leg": order.leg,
            "targets": order.targets,
            "symbol": order.symbol,
            "side": order.side,
            "order_type": order.order_type,
            "volume": _s(order.filled_volume or order.volume),
            "price": _s(order.fill_price or order.price),
            "sl": _s(order.sl),
            "tp": _s(order.tp),
            "status": order.status,
            "reason_code": order.reason_code,
            "reason": order.reason,
            "expires_at": order.expires_at.isoformat() if order.expires_at is not None else None,
        }

    async def _accepted(
        self,
        session: AsyncSession,
        order: Order,
        ticket: str | None,
        position_ticket: str | None,
        filled_volume: Decimal | None,
        price: Decimal | None,
    ) -> Order:
        order.broker_ticket = ticket
        if order.order_type != OrderType.MARKET.value and not position_ticket:
            ORDER.move(order, OrderStatus.PLACED)
            audit(session, "engine", "order.placed", f"order:{order.id}", ticket=ticket)
            emit(session, ORDER_PLACED, **self.order_payload(order))
            self._notify()
            return order
        volume = filled_volume if filled_volume is not None else order.volume
        partial = volume is not None and order.volume is not None and volume < order.volume
        ORDER.move(order, OrderStatus.PARTIALLY_FILLED if partial else OrderStatus.FILLED)
        order.filled_volume = volume
        order.fill_price = price if price is not None else order.price
        order.position_ticket = position_ticket
        audit(session, "engine", "order.filled", f"order:{order.id}", ticket=ticket, volume=str(volume))
        emit(session, ORDER_FILLED, **self.order_payload(order))
        if position_ticket and volume is not None and order.fill_price is not None:
            exists = await session.scalar(
                select(Position.id).where(
                    Position.account_id == order.account_id, Position.ticket == position_ticket
                )
            )
            if exists is None:
                position = Position(
                    account_id=order.account_id,
                    order_id=order.id,
                    ticket=position_ticket,
                    symbol=order.symbol,
                    side=order.side,
                    volume=volume,
                    open_price=order.fill_price,
                    sl=order.sl,
                    tp=order.tp,
                )
                session.add(position)
                await session.flush()
                emit(session, POSITION_OPENED, position_id=position.id, **self.order_payload(order))
        self._notify()
        return order

    async def _refuse(
        self,
        session: AsyncSession,
        order: Order,
        code: str,
        message: str,
        details: Mapping[str, str] | None = None,
        *,
        gate: str | None = None,
    ) -> Order:
        """``details``: the refusal's numbers (``OrderRefusal.details``, a risk gate's params), so
        subscribers see them; ``gate``: the risk-chain gate that refused it."""
        # Set-based and conditional: another worker or instance may have settled the order while
        # this one checked it (two instances may check one order; only one refuses it).
        refused = await session.execute(
            update(Order)
            .where(Order.id == order.id, Order.status.in_(ORDER.sources(OrderStatus.REFUSED)))
            .values(status=OrderStatus.REFUSED.value, reason_code=code[:32], reason=message[:500])
        )
        if refused.rowcount != 1:  # type: ignore[attr-defined]
            await session.refresh(order)
            return order
        order.status, order.reason_code, order.reason = OrderStatus.REFUSED.value, code[:32], message[:500]
        audit(session, "engine", "order.refused", f"order:{order.id}", code=code, reason=message, gate=gate)
        emit(session, ORDER_REJECTED, **self.order_payload(order), details=dict(details or {}))
        self._notify()
        return order

    async def _retry_or_fail(self, session: AsyncSession, order: Order, reason: str) -> Order:
        """Nothing was executed: wait for another attempt, or fail when the attempts are used up."""
        if order.attempts >= self.config.max_attempts:
            return await self._fail(session, order, f"retries exhausted: {reason}")
        if order.status != OrderStatus.RETRY_WAIT:
            ORDER.move(order, OrderStatus.RETRY_WAIT)
        order.reason = reason[:500]
        return order

    async def _fail(self, session: AsyncSession, order: Order, message: str) -> Order:
        ORDER.move(order, OrderStatus.FAILED)
        order.reason_code = "retries_exhausted"
        order.reason = message[:500]
        audit(session, "engine", "order.failed", f"order:{order.id}", reason=message)
        emit(session, ORDER_FAILED, **self.order_payload(order))
        self._notify()
        return order

    def _notify(self) -> None:
        if self._relay is not None:
            self._relay.notify()

    # ----------------------------------------------------------------- for the trading loop

    async def due_orders(self, limit: int, scope: AccountScope | None = None) -> list[str]:
        """Orders the loop should drive now: approved-but-unsubmitted, due retries, unknown outcomes;
        with ``scope``, only those of the accounts this instance works on."""
        now = utcnow()
        stale = now - timedelta(seconds=self.config.stale_submitting_seconds)
        query = select(Order.id).where(
            or_(
                Order.status == OrderStatus.PENDING.value,
                Order.status == OrderStatus.UNKNOWN.value,
                (Order.status == OrderStatus.RETRY_WAIT.value)
                & or_(Order.next_attempt_at.is_(None), Order.next_attempt_at <= now),
                (Order.status == OrderStatus.SUBMITTING.value) & (Order.submitted_at < stale),
            )
        )
        if scope is not None:
            query = query.where(scope.account_ids(Order.account_id))
        async with self._db.session() as session:
            ids = (await session.scalars(query.order_by(Order.created_at).limit(limit))).all()
        return [i for i in ids if not (self._locks.get(i) and self._locks[i].locked())]

    async def process_due(self, limit: int, scope: AccountScope | None = None) -> int:
        ids = await self.due_orders(limit, scope)
        for order_id in ids:
            try:
                await self._attempt_once(order_id)
            except Exception as exc:
                logger.opt(exception=exc).error("order {}: processing failed", order_id)
        return len(ids)

    async def _attempt_once(self, order_id: str) -> Order:
        """One attempt without in-line retry waits (the loop comes back once the backoff is due)."""
        async with self._lock(order_id):
            order = await self._attempt(order_id)
            if order.status == OrderStatus.RETRY_WAIT:
                # The same backoff as ``process``; without it the loop would retry on every tick
                # and use up the attempts within seconds of an outage.
                delay = self.backoff_seconds(order.attempts)
                async with self._db.session() as session:
                    await session.execute(
                        update(Order)
                        .where(Order.id == order_id, Order.status == OrderStatus.RETRY_WAIT.value)
                        .values(next_attempt_at=utcnow() + timedelta(seconds=delay))
                    )
            return order
