"""The composition root: settings in, a running product out.

``build_services`` makes the engine (store, event relay, brokers, execution); the bot and the
HTTP server are layered on top by ``tradebot.runtime``. Tests build the same graph with other
settings (a temporary database, the emulator's URL, the simulated terminal).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.accounts.service import AccountService, Mt5Connector
from engine.accounts.subscribers import SubscriberService
from engine.analytics import AnalyticsService
from engine.approvals.executor import ApprovalExecutor
from engine.approvals.fanout import FanoutPlanner
from engine.approvals.service import ApprovalService
from engine.billing import install_billing
from engine.brokers.base import Broker
from engine.brokers.registry import BrokerFactory, BrokerRegistry
from engine.execution.orders import OrderRules
from engine.execution.positions import PositionCloser
from engine.execution.service import ExecutionConfig, ExecutionService
from engine.loop.leader import make_lease
from engine.loop.trading import LoopConfig, TradingLoop, reconcile_hook
from engine.reconcile.service import Reconciler
from engine.risk.control import EngineControl
from engine.risk.drawdown import DrawdownGuard, GuardConfig
from engine.risk.market_hours import parse_market_hours
from engine.services import EngineServices
from engine.settings import Settings, SettingsError
from engine.store.crypto import SecretBox
from engine.store.db import Database
from engine.store.events import EventRelay
from engine.store.models import ExecutionAccount


def order_rules_for(settings: Settings) -> Callable[[ExecutionAccount], OrderRules]:
    try:
        hours = parse_market_hours(settings.market_hours)
    except ValueError as exc:
        raise SettingsError(f"MARKET_HOURS: {exc}") from None

    def rules(account: ExecutionAccount) -> OrderRules:
        limits = [v for v in (settings.max_volume, account.max_volume) if v is not None]
        return OrderRules(
            min_rr=settings.min_rr,
            min_stop_points=settings.min_stop_points,
            order_expiry_hours=settings.order_expiry_hours,
            max_volume=min(limits) if limits else None,
            market_hours=hours,
        )

    return rules


def default_broker_factory(settings: Settings, db: Database, secrets: SecretBox | None) -> BrokerFactory:
    """Paper accounts run inside the engine; MT5 accounts through the module named by ``MT5_MODULE``."""

    async def factory(account: ExecutionAccount) -> Broker:
        if account.kind == "paper":
            from engine.brokers.paper import PaperBroker

            return PaperBroker(db, account.id, currency=account.currency or "USD")
        if account.kind == "mt5":
            from engine.brokers.mt5 import create_mt5_broker

            if account.credentials_enc is None or account.login is None or account.server is None:
                raise SettingsError(f"MT5 account {account.id} has no stored login, server or password")
            if secrets is None:
                raise SettingsError("SECRET_KEY: required to decrypt stored MT5 credentials")
            return create_mt5_broker(
                settings.mt5_module,
                login=int(account.login),
                password=secrets.decrypt(account.credentials_enc),
                server=account.server,
                path=settings.mt5_path,
                magic=settings.mt5_magic,
            )
        raise ValueError(f"unknown account kind {account.kind!r}")

    return factory


def build_services(
    settings: Settings,
    *,
    broker_factory: BrokerFactory | None = None,
    execution_config: ExecutionConfig | None = None,
    mt5_connector: Mt5Connector | None = None,
    loop_overrides: dict[str, Any] | None = None,
) -> EngineServices:
    db = Database(settings.database_url)
    secrets = SecretBox(settings.secret_key.get_secret_value()) if settings.secret_key else None
    relay = EventRelay(db)
    registry = BrokerRegistry(broker_factory or default_broker_factory(settings, db, secrets))
    execution = ExecutionService(db, registry, order_rules_for(settings), relay, execution_config)
    accounts = AccountService(db, settings, registry, secrets, mt5_connector)
    closer = PositionCloser(db, registry, relay)
    guard = DrawdownGuard(db, closer, registry, GuardConfig.from_settings(settings), relay)
    reconciler = Reconciler(db, registry, execution, closer, relay)
    guard.before_close = reconcile_hook(reconciler, db)
    loop_config = LoopConfig.from_settings(settings, **(loop_overrides or {}))
    trading_loop = TradingLoop(
        db=db,
        brokers=registry,
        execution=execution,
        guard=guard,
        reconciler=reconciler,
        relay=relay,
        lease=make_lease(db, ttl_seconds=loop_config.lease_ttl_seconds),
        config=loop_config,
    )
    services = EngineServices(
        settings=settings,
        db=db,
        relay=relay,
        control=EngineControl(db, relay),
        brokers=registry,
        execution=execution,
        closer=closer,
        secrets=secrets,
        accounts=accounts,
        subscribers=SubscriberService(db, settings, accounts),
        approvals=ApprovalService(
            db, settings, accounts, relay, ApprovalExecutor.for_database(execution, db)
        ),
        fanout=FanoutPlanner(db, settings, relay),
        drawdown=guard,
        reconciler=reconciler,
        trading_loop=trading_loop,
        analytics=AnalyticsService(db),
    )
    install_billing(services)  # plans, Stars payments, referrals, auto-execution, entitlement gate
    return services
