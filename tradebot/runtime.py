"""The running product: engine, HTTP server, bot and trading loop in one process and one event loop.

``Runtime.start`` applies migrations, builds the services (``tradebot.app``), checks
``SECRET_KEY`` against the store's key check value (``engine.store.keycheck``), mounts the producer
API, health, metrics, the Mini App (``/app/``) and (in webhook mode) the Telegram webhook on one
aiohttp server, starts the event relay, the outbound dispatcher, the bot and the trading loop,
and announces ``engine.started``. ``Runtime.stop`` undoes it in reverse within a deadline: no new
work, in-flight broker calls finish, a final heartbeat, the outbox and event relay flushed,
connections closed. ``serve`` runs it until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from loguru import logger

from engine.api.app import build_http_app
from engine.api.connections import ConnectionLimits
from engine.api.outbound import OutboundDispatcher, install_outbound
from engine.api.server import start_http_server
from engine.brokers.registry import BrokerFactory
from engine.execution.service import ExecutionConfig
from engine.loop.cluster import ClusterCollector
from engine.loop.heartbeat import heartbeat_probe
from engine.loop.trading import TradingLoop
from engine.observability.metrics import Metrics
from engine.observability.readiness import Readiness
from engine.services import EngineServices
from engine.settings import Settings
from engine.store.events import ENGINE_STARTED, ENGINE_STOPPING, emit
from engine.store.keycheck import verify_key
from engine.store.migrate import upgrade_async
from tradebot.app import build_api_context, build_services, gateway_probes

T = TypeVar("T")


@dataclass
class RuntimeOptions:
    """What tests and the sandbox change; production uses the defaults and the settings."""

    broker_factory: BrokerFactory | None = None
    execution_config: ExecutionConfig | None = None
    loop_overrides: dict[str, Any] = field(default_factory=dict)
    bot_config: Any = None  # bot.context.BotConfig
    stop_deadline_seconds: float = 10.0
    with_bot: bool = True
    # Called with the HTTP app before it starts serving (the sandbox mounts its page this way).
    on_http_app: Callable[[web.Application], None] | None = None


class Runtime:
    def __init__(self, settings: Settings, options: RuntimeOptions | None = None) -> None:
        self.settings = settings
        self.options = options or RuntimeOptions()
        self.services: EngineServices | None = None
        self.metrics = Metrics()
        self.readiness = Readiness()
        self.http_app: web.Application | None = None
        self.loop: TradingLoop | None = None
        self.bot: Any = None  # bot.app.BotRuntime
        self.miniapp: Any = None  # bot.webapp.MiniApp
        self._runner: web.AppRunner | None = None
        self._dispatcher: OutboundDispatcher | None = None
        self.strategies: list[Any] = []  # engine.strategies.runner.RunningProducer
        self._stopped = False

    @property
    def engine(self) -> EngineServices:
        assert self.services is not None, "runtime not started"
        return self.services

    async def start(self) -> None:
        settings = self.settings
        await upgrade_async(settings.database_url)
        services = build_services(
            settings,
            broker_factory=self.options.broker_factory,
            execution_config=self.options.execution_config,
            loop_overrides=self.options.loop_overrides,
            instance_id=settings.instance_name,
        )
        try:  # a wrong SECRET_KEY stops here: nothing has started yet
            await verify_key(services.db, services.secrets)
        except BaseException:
            await services.close()
            await services.db.dispose()
            raise
        self.services = services

        app = build_http_app(build_api_context(services, metrics=self.metrics, readiness=self.readiness))
        self.http_app = app

        self._dispatcher = install_outbound(services.relay, services.db, settings, metrics=self.metrics)

        self.loop = services.trading_loop
        self.loop.register_metrics(self.metrics.registry)
        self.metrics.registry.register(ClusterCollector(services.cluster))
        self.readiness.register("heartbeat", heartbeat_probe(services.db, float(settings.heartbeat_seconds)))
        self.readiness.register("brokers", self._brokers_ready)
        self._register_gateways()

        if self.options.with_bot:
            from bot.app import BotRuntime, bot_context, build_bot, build_storage
            from bot.webapp import MiniApp

            bot_ctx = bot_context(services, config=self.options.bot_config)
            self.bot = BotRuntime(bot_ctx, build_bot(settings), build_storage(settings))
            self.bot.webhook_routes(app)
            self.miniapp = MiniApp(bot_ctx)  # the Mini App under /app/ (docs/miniapp.md)
            self.miniapp.mount(app)
            self.readiness.register("telegram", self._telegram_ready)
            if settings.redis_url:  # the shared send budget: degraded (local share) while Redis is down
                self.readiness.register("telegram_budget", self.bot.limiter.probe, required=False)

        if self.options.on_http_app is not None:
            self.options.on_http_app(app)
        market = services.paper_market
        if market.simulated:
            logger.warning(
                "paper accounts trade a SIMULATED market ({}): prices are a random walk, not a real "
                "market; set MT5_LOGIN, MT5_PASSWORD and MT5_SERVER to price them from your MT5 terminal",
                market.description,
            )
        else:
            logger.info("paper accounts price from {}", market.description)
        await market.start()
        self._runner = await start_http_server(
            app,
            settings.http_host,
            settings.http_port,
            limits=ConnectionLimits.from_settings(settings),
            metrics=self.metrics,
            shutdown_timeout=min(5.0, self.options.stop_deadline_seconds / 3),
        )
        if self.bot is not None:
            await self.bot.start()  # subscribes fan-out and notifier before any event is relayed
        if self.miniapp is not None:
            self.miniapp.attach(services.relay)  # after the fan-out: a new signal's decisions exist
        services.relay.start()
        if self._dispatcher is not None:
            self._dispatcher.start()
        self.loop.start()
        if settings.strategies.strip():
            from engine.strategies.runner import start_configured

            self.strategies = await start_configured(settings, services.producers, self.metrics)
        async with services.db.session() as session:
            emit(session, ENGINE_STARTED, loop_id=self.loop.loop_id)
        services.relay.notify()
        logger.info(
            "tradebot running: HTTP on {}:{}, Telegram {} mode",
            settings.http_host,
            settings.http_port,
            settings.telegram_mode,
        )

    def _register_gateways(self) -> None:
        """One readiness check per MT5 gateway (``gateway:<name>``): its own /healthz, verified."""
        for name, probe in gateway_probes(self.settings).items():
            self.readiness.register(f"gateway:{name}", probe)

    async def _brokers_ready(self) -> bool | str:
        down = []
        for account_id, broker in self.engine.brokers.cached().items():
            health = await broker.health()
            if not health.connected:
                down.append(f"account {account_id}: {health.detail or 'disconnected'}")
        return True if not down else "; ".join(down)

    async def _telegram_ready(self) -> bool | str:
        try:
            await self.bot.bot.get_me()
        except Exception as exc:
            return f"Telegram unreachable: {type(exc).__name__}"
        return True

    async def stop(self) -> None:
        """Stop within ``stop_deadline_seconds``: first take no new work (the HTTP server stops
        listening and finishes its requests, the bot stops taking updates), then let the trading
        loop, the event relay and the outbox finish or hand back what is in flight. Whatever is
        not done by then (events, outbox rows, orders to resend) is in the store and resumes at
        the next start. Never raises for a step that fails or runs out of time: it is logged."""
        services = self.services
        if services is None or self._stopped:
            return
        self._stopped = True
        deadline = self.options.stop_deadline_seconds
        clock = asyncio.get_running_loop()
        end = clock.time() + deadline
        reserve = min(3.0, deadline * 0.3)  # the outbox's last sends and closing connections

        def left(keep: float = 0.0) -> float:
            return max(0.0, end - clock.time() - keep)

        logger.info("tradebot stopping (deadline {} s)", deadline)
        for running in self.strategies:
            await _step("stopping a strategy", running.stop())
        self.strategies = []
        if self._runner is not None:
            await _step("stopping the HTTP server", self._runner.cleanup())
            self._runner = None
        if self.bot is not None:
            await _step("stopping Telegram updates", self.bot.stop_intake(left(reserve)))
        await _step("announcing the stop", self._announce_stop(services))
        if self.loop is not None:  # drains execution, final heartbeat, flushes events, closes brokers
            await _step("stopping the trading loop", self.loop.stop(left(reserve)))
        else:
            await _step("draining execution", services.execution.drain(left(reserve)))
        left_over = await _step("flushing events", services.relay.stop(deadline_seconds=left(reserve)))
        if left_over:
            logger.info("{} event(s) stay pending for the next start", left_over)
        if self.bot is not None:
            await _step("stopping the bot", self.bot.stop(deadline_seconds=left()))
        if self._dispatcher is not None:
            await _step("stopping outbound deliveries", self._dispatcher.stop())
        await _step("closing the services", services.close())
        await _step("closing the database", services.db.dispose())
        logger.info("tradebot stopped")

    async def _announce_stop(self, services: EngineServices) -> None:
        async with services.db.session() as session:
            emit(session, ENGINE_STOPPING)
        services.relay.notify()


async def _step(what: str, step: Awaitable[T]) -> T | None:
    try:
        return await step
    except Exception as exc:
        logger.opt(exception=exc).warning("{} at shutdown failed: {!r}", what, exc)
        return None


async def serve(runtime: Runtime) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runtime.start()
        # What start-up built (modules, services, pydantic models) lives until exit: moved out of
        # the collector's sight, it costs no full collection while running and none at exit.
        gc.collect()
        gc.freeze()
        await stop.wait()
    finally:
        # a second SIGTERM or Ctrl-C while stopping changes nothing: the stop has its own deadline
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: logger.info("already stopping"))
        try:
            await runtime.stop()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
