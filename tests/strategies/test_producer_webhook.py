"""The live producer end to end: bars from the simulated terminal (mt5sim behind the real MT5 link),
signals through the real producer webhook into the real store (SQLite and PostgreSQL).

The terminal's clock is frozen just after the close of a bar at which a Fib-RSI setup is final,
so the producer's first poll has exactly that setup to post.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from engine.api import build_http_app, start_http_server
from engine.api.client import Backoff, SignalClient
from engine.brokers.mt5_link import MT5Config
from engine.ingest.producers import NewProducer
from engine.observability.metrics import Metrics
from engine.store.db import Database
from engine.store.models import Signal
from engine.strategies.producer import MT5Bars, ProducerConfig, StrategyProducer
from mt5sim import control
from tests.support.api_world import build_context
from tests.support.queries import rows
from tests.support.strategy_terminal import LOGIN, PASSWORD, SEARCH_FROM, latest_setup


@dataclass
class Webhook:
    url: str
    producer: NewProducer
    db: Database


@pytest.fixture
async def webhook(db: Database) -> AsyncIterator[Webhook]:
    ctx, _relay = await build_context(db)
    assert ctx.producers is not None
    producer = await ctx.producers.add("fib-rsi")
    runner = await start_http_server(build_http_app(ctx), "127.0.0.1", 0)
    try:
        yield Webhook(f"http://127.0.0.1:{runner.addresses[0][1]}", producer, db)
    finally:
        await runner.cleanup()


def producer(path: Path, hook: Webhook, metrics: Metrics) -> tuple[StrategyProducer, SignalClient]:
    config = MT5Config(module="mt5sim", login=LOGIN, password=PASSWORD, path=str(path), connect_attempts=1,
                       reconnect_attempts=1, backoff_initial=0.01)  # fmt: skip
    client = SignalClient(hook.url, hook.producer.id, hook.producer.secret, backoff=Backoff(2, 0.01, 0.05))
    cfg = ProducerConfig("fib-rsi", ("XAUUSD",), Decimal(2), history_bars=600, poll_seconds=0.1)
    return StrategyProducer(cfg, MT5Bars(config), client, metrics), client


async def test_a_setup_is_posted_once_even_across_a_restart(terminal: Path, webhook: Webhook) -> None:
    setup = latest_setup(terminal, SEARCH_FROM)
    control.set_time(setup.placed_at + timedelta(minutes=20), state=terminal)
    metrics = Metrics()
    for _run in range(2):  # the second run is a restart within the same bar
        running, client = producer(terminal, webhook, metrics)
        async with client:
            await running.step()
        await running.market.close()
    stored = await rows(webhook.db, Signal, Signal.producer_id == webhook.producer.id)
    assert len(stored) == 1
    signal = stored[0]
    assert (signal.external_id, signal.idempotency_key) == (setup.setup_id, setup.setup_id)
    assert (signal.instrument, signal.side, signal.order_type) == ("XAUUSD", setup.side.value, "limit")
    assert (signal.sl, signal.tp, signal.risk_percent) == (setup.sl, setup.tp, Decimal(2))
    assert signal.strategy == "fib-rsi"
    bid, ask = control.quote("XAUUSD", state=terminal)
    beyond = setup.entry <= bid if setup.side.value == "sell" else setup.entry >= ask
    assert signal.entry == setup.entry or beyond
    sample = metrics.registry.get_sample_value(
        "tradebot_strategy_setups_total", {"symbol": "XAUUSD", "side": setup.side.value}
    )
    assert sample == 1  # counted once: the restart's delivery was a replay


async def test_a_terminal_that_is_down_delays_the_post(terminal: Path, webhook: Webhook) -> None:
    setup = latest_setup(terminal, SEARCH_FROM)
    control.set_time(setup.placed_at + timedelta(minutes=20), state=terminal)
    control.disconnect(state=terminal)
    running, client = producer(terminal, webhook, Metrics())
    async with client:
        await running.step()
        assert await rows(webhook.db, Signal) == []
        control.reconnect(state=terminal)
        await running.step()
    await running.market.close()
    stored = await rows(webhook.db, Signal)
    assert [s.external_id for s in stored] == [setup.setup_id]
