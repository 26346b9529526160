"""The producer API under test: settings, signed requests, a harness around aiohttp's test client,
and a live server in its own thread for synchronous tests."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from engine.api import ApiContext, build_http_app, start_http_server
from engine.ingest.producers import NewProducer, ProducerService
from engine.ingest.signing import signature_header
from engine.observability.metrics import Metrics
from engine.settings import Settings
from engine.store.db import Database
from engine.store.events import EventRelay
from tradebot.app import build_api_context, build_services

SECRET_KEY = "k" * 40


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_key": SECRET_KEY,
        "instruments": "EURUSD,XAUUSD,USDJPY",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def good_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "instrument": "eurusd",
        "side": "buy",
        "order_type": "limit",
        "entry": "1.08450",
        "sl": 1.0815,
        "tp": "1.09050",
        "note": "breakout",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def encode(body: dict[str, Any] | bytes | str) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


@dataclass
class Harness:
    client: TestClient
    ctx: ApiContext
    producer: NewProducer
    relay: EventRelay

    @property
    def db(self) -> Database:
        return self.ctx.db

    @property
    def producers(self) -> ProducerService:
        assert self.ctx.producers is not None
        return self.ctx.producers

    def signed_headers(
        self,
        raw: bytes,
        *,
        key: str | None = None,
        t: int | None = None,
        producer: NewProducer | None = None,
    ) -> dict[str, str]:
        who = producer or self.producer
        headers = {
            "Content-Type": "application/json",
            "X-Producer-Id": who.id,
            "X-Signature": signature_header(who.secret, raw, t),
        }
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    async def post(
        self,
        body: dict[str, Any] | bytes | str,
        *,
        key: str | None = None,
        t: int | None = None,
        producer: NewProducer | None = None,
        headers: dict[str, str] | None = None,
    ) -> ClientResponse:
        raw = encode(body)
        all_headers = self.signed_headers(raw, key=key, t=t, producer=producer)
        all_headers.update(headers or {})
        return await self.client.post("/api/v1/signals", data=raw, headers=all_headers)


async def build_context(
    db: Database,
    *,
    relay_poll_seconds: float | None = None,
    producer_cache_seconds: float | None = None,
    metrics: Metrics | None = None,
    **overrides: Any,
) -> tuple[ApiContext, EventRelay]:
    """The HTTP layer as the composition root builds it, over the test's database."""
    services = build_services(
        make_settings(db.url, **overrides),
        db=db,
        relay_poll_seconds=relay_poll_seconds,
        producer_cache_seconds=producer_cache_seconds,
    )
    return build_api_context(services, metrics=metrics), services.relay


class LiveServer:
    """The real server in its own thread and event loop, for tests that are synchronous themselves
    (hypothesis, the CLI under typer's runner)."""

    def __init__(
        self,
        database_url: str,
        *,
        producer_rate: Any = None,
        producer_cache_seconds: float = 2.0,
        **overrides: Any,
    ) -> None:
        self.database_url = database_url
        self.overrides = overrides
        self.producer_rate = producer_rate
        self.cache_seconds = producer_cache_seconds
        self.port = 0
        self.producer: NewProducer | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._db: Database | None = None
        self._runner: Any = None
        self.ctx: ApiContext | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start(self) -> None:
        self._db = Database(self.database_url)
        self.ctx, _relay = await build_context(
            self._db, producer_cache_seconds=self.cache_seconds, **self.overrides
        )
        burst = None if self.producer_rate is None else int(self.producer_rate)
        self.producer = await self.ctx.producers.add(
            f"live-{time.monotonic_ns()}", rate_per_second=self.producer_rate, burst=burst
        )
        self._runner = await start_http_server(build_http_app(self.ctx), "127.0.0.1", 0)
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        await self._runner.cleanup()
        assert self._db is not None
        await self._db.dispose()

    def __enter__(self) -> LiveServer:
        self._thread.start()
        self.call(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
