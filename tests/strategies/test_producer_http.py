"""The producer's HTTP edge against a stand-in for a remote tradebot: a small aiohttp server that
verifies every signature and records every request (the updates API lives on another branch).

Bars come from a scripted source that closes one more bar of the golden scenarios per poll.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web

from engine.api.client import Backoff, SignalClient
from engine.backtest.specs import backtest_spec
from engine.brokers.base import SymbolSpec, Tick
from engine.ingest.signing import verify
from engine.observability.metrics import Metrics
from engine.strategies.base import Bars, utc
from engine.strategies.producer import ProducerConfig, StrategyProducer
from tests.support.fib_rsi_scenarios import FLAT, SHORT_A, WARMUP, Series, pattern_bars

SECRET = "s" * 40
FIRST = "TEST_H1_short_2024-01-02T19:00Z"
SECOND = "TEST_H1_short_2024-01-04T19:00Z"
LONG = "TEST_H1_long_2024-01-04T12:00Z"


@dataclass
class Recorder:
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (path, key, body)
    fail_next: int = 0  # answer 503 to this many requests first
    stored: dict[str, str] = field(default_factory=dict)  # key -> raw body

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        verify(SECRET, raw, request.headers.get("X-Signature"))  # raises: the test fails with a 500
        assert request.headers["X-Producer-Id"] == "p-1"
        key = request.headers["Idempotency-Key"]
        self.requests.append((request.path, key, json.loads(raw)))
        if self.fail_next:
            self.fail_next -= 1
            return web.json_response({"title": "busy"}, status=503)
        if key in self.stored:
            assert self.stored[key] == raw.decode(), "a retry must carry the same body"
            return web.json_response({"id": key}, status=200)
        self.stored[key] = raw.decode()
        return web.json_response({"id": key}, status=202 if request.path.endswith("/updates") else 201)

    def keys(self, suffix: str = "") -> list[str]:
        return [k for path, k, _ in self.requests if path.endswith(suffix)]


@pytest.fixture
async def remote() -> AsyncIterator[tuple[Recorder, str]]:
    recorder = Recorder()
    app = web.Application()
    app.router.add_post("/api/v1/signals", recorder.handle)
    app.router.add_post("/api/v1/signals/{signal_id}/updates", recorder.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield recorder, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class ScriptedBars:
    """Closed bars up to ``closed`` (exclusive) of a fixed series; the quote is the last close."""

    def __init__(self, bars: Bars) -> None:
        self.bars = bars
        self.closed = 0

    async def spec(self, symbol: str) -> SymbolSpec:
        return backtest_spec("TEST", Decimal("0.01"))

    async def tick(self, symbol: str) -> Tick:
        price = Decimal(repr(float(self.bars.close[self.closed - 1])))
        return Tick(symbol, price, price, utc(int(self.bars.time[self.closed - 1]) + 3600))

    async def closed_bars(self, symbol: str, count: int) -> Bars:
        return self.bars.slice(max(0, self.closed - count), self.closed)


def scenario() -> Bars:
    extra = [*pattern_bars(99.0, 0.3, 0.9), *([FLAT] * 110)]
    return Series(WARMUP + SHORT_A, highs={36: 114.0}, lows={45: 95.0}, extra=extra).bars()


async def test_replacement_retries_and_expiry(remote: tuple[Recorder, str]) -> None:
    recorder, url = remote
    source = ScriptedBars(scenario())
    client = SignalClient(url, "p-1", SECRET, backoff=Backoff(attempts=4, initial=0.01, maximum=0.02))
    config = ProducerConfig("fib-rsi", ("TEST",), Decimal("1.5"), history_bars=200, poll_seconds=0.1)
    metrics = Metrics()
    async with client:
        producer = StrategyProducer(config, source, client, metrics)
        source.closed = 48  # bar 47 just closed: the first short is final
        await producer.step()
        assert recorder.keys() == [FIRST]
        path, _, body = recorder.requests[0]
        assert path == "/api/v1/signals"
        assert body == {
            "id": FIRST, "instrument": "TEST", "side": "sell", "order_type": "limit", "entry": "109.06",
            "sl": "119.13", "tp": "76.33", "risk_percent": "1.5", "strategy": "fib-rsi",
            "note": body["note"],
        }  # fmt: skip
        assert "limit expires 2024-01-07 04:00 UTC" in body["note"]
        recorder.fail_next = 2  # the next deliveries meet a busy server twice
        second_at = next(k for k in range(48, len(source.bars)) if int(source.bars.time[k]) == 1704409200)
        for closed in range(49, second_at + 2):
            source.closed = closed
            await producer.step()
        # the long between them met the busy server twice: retried with the same key and body
        assert recorder.keys() == [FIRST, LONG, LONG, LONG, SECOND, f"cancel-{FIRST}"]
        assert recorder.requests[-1][:2] == (f"/api/v1/signals/{FIRST}/updates", f"cancel-{FIRST}")
        assert recorder.requests[-1][2] == {"action": "cancel"}
        # expiry: 100 h after each was placed (on the bar clock), its pending orders are cancelled
        for closed in range(second_at + 2, len(source.bars) + 1):
            source.closed = closed
            await producer.step()
        expired = recorder.keys("/updates")[1:]
        assert expired == [f"cancel-{FIRST}", f"cancel-{LONG}", f"cancel-{SECOND}"]
        assert len(recorder.stored) == 6  # the first short's second cancel was a replay
    assert (
        metrics.registry.get_sample_value(
            "tradebot_strategy_setups_total", {"symbol": "TEST", "side": "sell"}
        )
        == 2
    )
