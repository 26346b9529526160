"""The composition root: settings in, a running product out.

``build_services`` makes every engine service once (store, event relay, brokers, execution,
accounts, approvals, billing, the trading loop...); the bot and the HTTP server are layered on top
by ``tradebot.runtime``. ``tradebot run``, the sandbox, the benchmarks and the tests all build
through it; tests swap only the edges (see ``build_services``'s keyword arguments).
This is the one place that may wire ``mt5sim``'s simulated market into the engine.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from engine.accounts.service import AccountService, Mt5Connector
from engine.accounts.subscribers import SubscriberService
from engine.analytics import AnalyticsService
from engine.api.context import ApiContext
from engine.api.refusals import RefusalAggregator
from engine.approvals.auto_execute import AutoExecutor
from engine.approvals.executor import ApprovalExecutor
from engine.approvals.fanout import FanoutPlanner
from engine.approvals.service import ApprovalService
from engine.billing.entitlements import EntitlementGate
from engine.billing.payments import BillingService
from engine.billing.plans import catalog_for
from engine.billing.referrals import ReferralService
from engine.billing.reminders import BillingSweeper
from engine.brokers.base import Broker
from engine.brokers.mt5 import create_mt5_broker
from engine.brokers.mt5_prices import TerminalPrices
from engine.brokers.paper import PaperBroker
from engine.brokers.pricefeed import PaperMarket
from engine.brokers.registry import BrokerFactory, BrokerRegistry
from engine.brokers.remote import endpoints_from_settings, module_for
from engine.execution.orders import OrderRules
from engine.execution.positions import PositionCloser
from engine.execution.service import ExecutionConfig, ExecutionService
from engine.ingest.market import MarketQuotes
from engine.ingest.producers import ProducerService
from engine.ingest.service import IngestService
from engine.loop.cluster import Cluster
from engine.loop.leader import LeaderLease, make_lease
from engine.loop.trading import LoopConfig, TradingLoop, reconcile_hook
from engine.management.changes import ChangeService
from engine.management.updates import UpdateService
from engine.observability.metrics import Metrics
from engine.observability.readiness import Readiness
from engine.ops.queries import OpsQueries
from engine.ops.service import OpsService
from engine.reconcile.service import Reconciler
from engine.risk.control import EngineControl
from engine.risk.daily_loss import DailyLossWatch
from engine.risk.drawdown import DrawdownGuard, GuardConfig
from engine.risk.limits import RiskLimitsService
from engine.risk.market_hours import parse_market_hours
from engine.services import EngineServices
from engine.settings import BrokerKind, Settings, SettingsError
from engine.store.crypto import SecretBox
from engine.store.db import Database
from engine.store.events import EventRelay
from engine.store.models import ExecutionAccount
from mt5sim.pricefeed import SimulatedFeed


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


def secret_box(settings: Settings) -> SecretBox | None:
    """The box for stored secrets: ``SECRET_KEY``, plus ``SECRET_KEY_OLD`` during a rotation."""
    if settings.secret_key is None:
        return None
    old = settings.secret_key_old.get_secret_value() if settings.secret_key_old else None
    return SecretBox(settings.secret_key.get_secret_value(), old)


def default_broker_factory(
    settings: Settings, db: Database, secrets: SecretBox | None, market: PaperMarket
) -> BrokerFactory:
    """Paper accounts run inside the engine, priced by ``market``; MT5 accounts through the module
    named by ``MT5_MODULE`` (or the gateway the account names)."""

    if settings.gateway_names():  # MT5 accounts on gateways: tell the client module where they are
        from engine.brokers.remote import configure_from_settings

        configure_from_settings(settings)

    async def factory(account: ExecutionAccount) -> Broker:
        if account.kind == "paper":
            currency = account.currency or "USD"
            return PaperBroker(db, account.id, currency=currency, prices=market.prices(currency))
        if account.kind == "mt5":
            if account.credentials_enc is None or account.login is None or account.server is None:
                raise SettingsError(f"MT5 account {account.id} has no stored login, server or password")
            if secrets is None:
                raise SettingsError("SECRET_KEY: required to decrypt stored MT5 credentials")
            return create_mt5_broker(
                module_for(settings.mt5_module, account.gateway),
                login=int(account.login),
                password=secrets.decrypt(account.credentials_enc),
                server=account.server,
                path=settings.mt5_path,
                magic=settings.mt5_magic,
            )
        raise ValueError(f"unknown account kind {account.kind!r}")

    return factory


def gateway_probes(settings: Settings) -> dict[str, Callable[[], Awaitable[bool | str]]]:
    """A health probe per MT5 gateway of the settings (none when no gateway is set)."""
    if not settings.gateway_names():
        return {}
    from engine.gateway.probe import gateway_probe

    return {name: gateway_probe(endpoint) for name, endpoint in endpoints_from_settings(settings).items()}


def paper_market_for(settings: Settings) -> PaperMarket:
    """Paper prices: the operator's MT5 terminal when ``MT5_LOGIN``/``MT5_SERVER`` name one, else the
    simulated market (``mt5sim``'s random walk), which then says so everywhere it shows."""
    if settings.mt5_login is not None and settings.mt5_server:
        password = settings.mt5_password.get_secret_value() if settings.mt5_password else ""
        terminal = create_mt5_broker(
            settings.mt5_module,
            login=settings.mt5_login,
            password=password,
            server=settings.mt5_server,
            path=settings.mt5_path,
            magic=settings.mt5_magic,
        )
        source = TerminalPrices(terminal, settings.instruments)
        return PaperMarket(source, simulated=False, description=f"MT5 terminal {settings.mt5_server}")
    return PaperMarket(
        SimulatedFeed(),
        simulated=True,
        description="mt5sim random walk",
        per_currency=SimulatedFeed,
    )


def build_services(
    settings: Settings,
    *,
    db: Database | None = None,
    broker_factory: BrokerFactory | None = None,
    paper_market: PaperMarket | None = None,
    execution_config: ExecutionConfig | None = None,
    mt5_connector: Mt5Connector | None = None,
    loop_overrides: Mapping[str, Any] | None = None,
    lease: LeaderLease | None = None,
    relay_poll_seconds: float | None = None,
    producer_cache_seconds: float | None = None,
    instance_id: str | None = None,
) -> EngineServices:
    """Every engine service, built once from ``settings``.

    The keyword arguments are the edges tests, the sandbox and the benchmarks may swap: an open
    database (a test's fixture), how brokers are made, where paper prices come from, retry timing,
    the MT5 login check, the trading loop's timing and leader lease, the event relay's poll, how long
    producer credentials are cached, and the instance's name among several (``tradebot run`` passes
    ``INSTANCE_ID``; other processes, such as CLI commands, get one of their own, ``host:pid``).
    """
    db = db or Database(settings.database_url)
    secrets = secret_box(settings)
    relay = EventRelay(db) if relay_poll_seconds is None else EventRelay(db, poll_seconds=relay_poll_seconds)
    market = paper_market or paper_market_for(settings)
    cluster = Cluster(
        db,
        instance_id=instance_id or f"{socket.gethostname()}:{os.getpid()}",
        lease_seconds=float(settings.account_lease_seconds),
    )
    cluster.details["redis"] = "configured" if settings.redis_url else "not configured"
    registry = BrokerRegistry(
        broker_factory or default_broker_factory(settings, db, secrets, market), cluster
    )
    risk_limits = RiskLimitsService.from_settings(db, settings)
    execution = ExecutionService(
        db,
        registry,
        order_rules_for(settings),
        relay,
        execution_config,
        limits=risk_limits.defaults,
        instance=cluster.instance_id,
    )
    accounts = AccountService(db, settings, registry, secrets, mt5_connector)
    closer = PositionCloser(db, registry, relay)
    guard = DrawdownGuard(db, closer, registry, GuardConfig.from_settings(settings), relay)
    reconciler = Reconciler(db, registry, execution, closer, relay)
    guard.before_close = reconcile_hook(reconciler, db)
    loop_config = LoopConfig.from_settings(settings, **(loop_overrides or {}))
    changes = ChangeService(db, registry, relay)
    relay.subscribe("changes", changes.on_event)
    trading_loop = TradingLoop(
        db=db,
        brokers=registry,
        execution=execution,
        guard=guard,
        reconciler=reconciler,
        relay=relay,
        lease=lease or make_lease(db, ttl_seconds=loop_config.lease_ttl_seconds),
        cluster=cluster,
        config=loop_config,
        changes=changes,
        daily_loss=DailyLossWatch(db, risk_limits.defaults, relay),
    )
    catalog = catalog_for(settings)  # billing off: one free plan with every entitlement
    execution.chain.add(EntitlementGate(catalog), before="drawdown")
    producers = (
        ProducerService(db, secrets)
        if producer_cache_seconds is None
        else ProducerService(db, secrets, cache_seconds=producer_cache_seconds)
    )
    return EngineServices(
        settings=settings,
        db=db,
        relay=relay,
        secrets=secrets,
        control=EngineControl(db, relay),
        brokers=registry,
        cluster=cluster,
        paper_market=market,
        execution=execution,
        closer=closer,
        accounts=accounts,
        subscribers=SubscriberService(db, settings, accounts),
        approvals=ApprovalService(
            db, settings, accounts, relay, ApprovalExecutor.for_database(execution, db)
        ),
        fanout=FanoutPlanner(db, settings, relay),
        drawdown=guard,
        reconciler=reconciler,
        trading_loop=trading_loop,
        producers=producers,
        ingest=IngestService(
            db,
            settings,
            relay,
            # the door's look at the market: connected brokers, else (paper) the paper price source
            MarketQuotes(registry.cached, market.source if settings.broker is BrokerKind.PAPER else None),
        ),
        billing=BillingService(db, catalog, relay),
        billing_sweeper=BillingSweeper(db, catalog, relay),
        referrals=ReferralService(db),
        auto_execute=AutoExecutor(
            db,
            settings,
            catalog,
            relay,
            execution.submit_in_background,
            chain=execution.chain,
            limits=risk_limits,
        ),
        risk_limits=risk_limits,
        analytics=AnalyticsService(db),
        updates=UpdateService(db, relay),
        changes=changes,
        ops=OpsService(
            db,
            OpsQueries(
                db,
                registry,
                heartbeat_seconds=float(settings.heartbeat_seconds),
                simulated_market=market.simulated,
                gateways=gateway_probes(settings),
                lease_seconds=float(settings.account_lease_seconds),
            ),
            closer,
            guard,
            producers,
            relay,
            refresh=reconcile_hook(reconciler, db),
        ),
    )


def build_api_context(
    services: EngineServices, *, metrics: Metrics | None = None, readiness: Readiness | None = None
) -> ApiContext:
    """The HTTP layer's view of the engine (the producer API, health, readiness, metrics)."""
    readiness = readiness or Readiness()
    readiness.register("database", services.db.ping)
    metrics = metrics or Metrics()
    return ApiContext(
        db=services.db,
        settings=services.settings,
        producers=services.producers,
        ingest=services.ingest,
        updates=services.updates,
        ops=services.ops,
        refusals=RefusalAggregator(services.db, metrics),
        metrics=metrics,
        readiness=readiness,
        instance=services.cluster.describe,
    )
