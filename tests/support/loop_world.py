"""Builders for trading-loop tests: the real engine parts on a paper market the test moves."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal

from engine.brokers.base import Broker, FillingMode, OrderRequest, OrderType, Side, SubmitStatus
from engine.brokers.paper import PaperBroker
from engine.brokers.registry import BrokerRegistry
from engine.execution.positions import PositionCloser
from engine.execution.service import ExecutionConfig, ExecutionService
from engine.loop.leader import LeaderLease
from engine.loop.trading import LoopConfig, TradingLoop
from engine.reconcile.service import Reconciler
from engine.risk.drawdown import DrawdownGuard, GuardConfig
from engine.settings import Settings
from engine.store.db import Database
from engine.store.events import EventRelay
from engine.store.models import ExecutionAccount, Position
from tests.support.execution import FAST
from tests.support.prices import FixedPrices
from tradebot.app import build_services

QUICK = LoopConfig(
    tick_seconds=0.02,
    heartbeat_seconds=0.2,
    reconcile_every_ticks=5,
    equity_record_seconds=0.0,
    account_timeout_seconds=5.0,
    backoff_initial_seconds=0.05,
    backoff_max_seconds=0.2,
    standby_poll_seconds=0.05,
    lease_ttl_seconds=5.0,
)
_cids = itertools.count(1)


class FlakyBroker(PaperBroker):
    """The real paper broker; ``down`` makes every call fail like a lost terminal connection."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.down = False
        self.fail_closes = 0  # close requests lost before they reach the broker
        self.lose_close_answers = 0  # close requests executed whose answer is lost
        self.closes = 0
        self.submits = 0

    def _check(self):
        if self.down:
            raise ConnectionError("No IPC connection")

    async def account(self):
        self._check()
        return await super().account()

    async def positions(self):
        self._check()
        return await super().positions()

    async def pending_orders(self):
        self._check()
        return await super().pending_orders()

    async def close_position(self, ticket, client_order_id):
        self._check()
        self.closes += 1
        if self.fail_closes > 0:
            self.fail_closes -= 1
            raise TimeoutError("close lost in transit")
        result = await super().close_position(ticket, client_order_id)
        if self.lose_close_answers > 0:
            self.lose_close_answers -= 1
            raise TimeoutError("IPC timeout after the close executed")
        return result

    async def submit(self, request):
        self.submits += 1
        return await super().submit(request)


@dataclass
class Engine:
    db: Database
    prices: FixedPrices
    registry: BrokerRegistry
    relay: EventRelay
    execution: ExecutionService
    closer: PositionCloser
    guard: DrawdownGuard
    reconciler: Reconciler
    loop: TradingLoop
    brokers: dict[int, Broker] = field(default_factory=dict)

    async def broker(self, account_id: int) -> Broker:
        async with self.db.session() as s:
            account = await s.get(ExecutionAccount, account_id)
            s.expunge(account)
        return await self.registry.get(account)


def build_engine(
    db: Database,
    prices: FixedPrices | None = None,
    *,
    guard_config: GuardConfig | None = None,
    loop_config: LoopConfig = QUICK,
    factory: Callable[[ExecutionAccount], Awaitable[Broker]] | None = None,
    lease: LeaderLease | None = None,
    execution_config: ExecutionConfig = FAST,
) -> Engine:
    prices = prices or FixedPrices()
    brokers: dict[int, Broker] = {}

    async def default_factory(account: ExecutionAccount) -> Broker:
        broker = brokers.get(account.id) or FlakyBroker(db, account.id, prices=prices)
        brokers[account.id] = broker
        return broker

    guard_config = guard_config or GuardConfig()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=db.url,
        min_rr=Decimal("1.5"),
        min_stop_points=5,
        market_hours="*=24/7",
        drawdown_cap_percent=guard_config.cap,
        drawdown_soft_percent=guard_config.soft,
        drawdown_reference=guard_config.reference,
        equity_floor=guard_config.equity_floor,
    )
    services = build_services(
        settings,
        db=db,
        broker_factory=factory or default_factory,
        execution_config=execution_config,
        loop_overrides=asdict(loop_config),
        lease=lease,
    )
    registry, relay, execution = services.brokers, services.relay, services.execution
    closer, guard, reconciler, loop = (
        services.closer,
        services.drawdown,
        services.reconciler,
        services.trading_loop,
    )
    return Engine(db, prices, registry, relay, execution, closer, guard, reconciler, loop, brokers)


async def open_at_broker(
    broker: Broker, *, volume="5", side=Side.BUY, sl="1.00000", tp="1.30000", price="1.10010", cid=None
):
    """A market position straight at the broker (as if traded by hand when ``cid`` is None-like)."""
    if side is Side.SELL and price == "1.10010":
        price, sl, tp = "1.10000", "1.20000", "0.90000"
    result = await broker.submit(
        OrderRequest(
            cid or f"hand-{next(_cids)}",
            "EURUSD",
            side,
            OrderType.MARKET,
            Decimal(volume),
            Decimal(price),
            Decimal(sl),
            Decimal(tp),
            FillingMode.FOK,
        )
    )
    assert result.status is SubmitStatus.ACCEPTED, result
    return result


async def open_recorded(engine: Engine, account_id: int, **kw) -> Position:
    """A position at the broker that the store knows (as the execution path would have recorded it)."""
    broker = await engine.broker(account_id)
    result = await open_at_broker(broker, cid=f"tb-test{next(_cids)}", **kw)
    [bp] = [p for p in await broker.positions() if p.ticket == result.position_ticket]
    async with engine.db.session() as s:
        pos = Position(
            account_id=account_id,
            ticket=bp.ticket,
            symbol=bp.symbol,
            side=bp.side.value,
            volume=bp.volume,
            open_price=bp.open_price,
            sl=bp.sl,
            tp=bp.tp,
        )
        s.add(pos)
    return pos


async def account_row(db: Database, account_id: int) -> ExecutionAccount:
    async with db.session() as s:
        return await s.get(ExecutionAccount, account_id)


async def set_balance(db: Database, account_id: int, balance: str) -> None:
    """A deposit or withdrawal on a paper account."""
    async with db.session() as s:
        account = await s.get(ExecutionAccount, account_id)
        account.balance = Decimal(balance)
