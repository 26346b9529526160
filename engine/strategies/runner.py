"""Starting and stopping strategy producers: from ``tradebot strategy run`` or inside ``tradebot run``.

Inside the product (``STRATEGIES=fib-rsi:XAUUSD,EURUSD``) each strategy posts to the product's own
webhook as the producer ``strategy-<name>``, created on first start (its secret is kept encrypted
with ``SECRET_KEY``, like any producer's), so its signals go through exactly what an outside
producer's go through: signature, validation, de-duplication, fan-out.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from decimal import Decimal

from loguru import logger

from engine.api.client import SignalClient
from engine.brokers.mt5_link import MT5Config
from engine.ingest.producers import ProducerService
from engine.observability.metrics import Metrics
from engine.settings import Settings, SettingsError
from engine.strategies import parse_strategies
from engine.strategies.producer import MT5Bars, ProducerConfig, StrategyProducer


def mt5_data_config(settings: Settings) -> MT5Config:
    if settings.mt5_login is None:
        raise SettingsError("MT5_LOGIN: required to read bars for STRATEGIES (the terminal's data login)")
    return MT5Config(
        module=settings.mt5_module,
        login=settings.mt5_login,
        password=settings.mt5_password.get_secret_value() if settings.mt5_password else "",
        server=settings.mt5_server or "",
        path=settings.mt5_path,
        magic=settings.mt5_magic,
    )


@dataclass
class RunningProducer:
    producer: StrategyProducer
    market: MT5Bars
    client: SignalClient
    task: asyncio.Task[None]
    stop_event: asyncio.Event

    async def stop(self) -> None:
        self.stop_event.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.client.close()
        await self.market.close()


async def start_producer(
    settings: Settings,
    name: str,
    symbols: tuple[str, ...],
    url: str,
    producer_id: str,
    secret: str,
    metrics: Metrics | None,
) -> RunningProducer:
    config = ProducerConfig(
        strategy=name,
        symbols=symbols,
        risk_percent=settings.strategy_risk_percent,
        history_bars=settings.strategy_history_bars,
        poll_seconds=float(settings.strategy_poll_seconds),
    )
    market = MT5Bars(mt5_data_config(settings))
    client = SignalClient(url, producer_id, secret)
    await client.__aenter__()
    producer = StrategyProducer(config, market, client, metrics)
    stop = asyncio.Event()
    task = asyncio.create_task(producer.run(stop), name=f"strategy-{name}")
    return RunningProducer(producer, market, client, task, stop)


async def producer_credentials(producers: ProducerService, name: str) -> tuple[str, str]:
    """The id and secret of the product's own producer for strategy ``name`` (created if missing)."""
    wanted = f"strategy-{name}"
    for info in await producers.list():
        if info.name == wanted:
            auth = await producers.by_id(info.id)
            if auth is None or auth.secret is None:
                raise SettingsError("SECRET_KEY: required to run STRATEGIES (their producer's secret)")
            if not auth.active:
                raise SettingsError(f"STRATEGIES: the producer {wanted} ({info.id}) is disabled")
            return info.id, auth.secret
    made = await producers.add(wanted, rate_per_second=Decimal(10), burst=20)
    logger.info("created producer {} ({}) for the built-in strategy", wanted, made.id)
    return made.id, made.secret


async def start_configured(
    settings: Settings, producers: ProducerService, metrics: Metrics
) -> list[RunningProducer]:
    """Every producer ``STRATEGIES`` names, posting to this process's own webhook."""
    if not settings.strategies.strip():
        return []
    if settings.secret_key is None:
        raise SettingsError("SECRET_KEY: required to run STRATEGIES (their producer's secret)")
    mt5_data_config(settings)  # a missing data login stops start-up with one line
    url = f"http://{settings.http_host}:{settings.http_port}"
    running = []
    for name, symbols in parse_strategies(settings.strategies):
        producer_id, secret = await producer_credentials(producers, name)
        running.append(await start_producer(settings, name, symbols, url, producer_id, secret, metrics))
    return running
