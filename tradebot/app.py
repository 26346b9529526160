"""The composition root: settings in, a running product out.

``build_services`` makes the engine (store, event relay, brokers, execution); the bot and the
HTTP server are layered on top by ``tradebot.runtime``. Tests build the same graph with other
settings (a temporary database, the emulator's URL, the simulated terminal).
"""

from __future__ import annotations

from collections.abc import Callable

from engine.brokers.base import Broker
from engine.brokers.registry import BrokerFactory, BrokerRegistry
from engine.control import EngineControl
from engine.crypto import SecretBox
from engine.db import Database
from engine.events import EventRelay
from engine.execution import ExecutionConfig, ExecutionService
from engine.market_hours import parse_market_hours
from engine.models import ExecutionAccount
from engine.orders import OrderRules
from engine.positions import PositionCloser
from engine.services import EngineServices
from engine.settings import Settings, SettingsError


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
) -> EngineServices:
    db = Database(settings.database_url)
    secrets = SecretBox(settings.secret_key.get_secret_value()) if settings.secret_key else None
    relay = EventRelay(db)
    registry = BrokerRegistry(broker_factory or default_broker_factory(settings, db, secrets))
    execution = ExecutionService(db, registry, order_rules_for(settings), relay, execution_config)
    return EngineServices(
        settings=settings,
        db=db,
        relay=relay,
        control=EngineControl(db, relay),
        brokers=registry,
        execution=execution,
        closer=PositionCloser(db, registry, relay),
        secrets=secrets,
    )
