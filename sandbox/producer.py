"""The demo producer: a strategy process posting signed signals through the real webhook.

It does what a producer outside the product does: ``POST /api/v1/signals`` with ``X-Producer-Id``,
``X-Signature`` (``engine.ingest.service.signing``) and an ``Idempotency-Key``, over HTTP on loopback. The first
signal goes out shortly after start, then one every ``interval`` seconds (a random pick in the
range), rotating over the instruments so the same one does not come twice in a row.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
from loguru import logger

from engine.ingest.signing import HEADER, signature_header
from sandbox.signals import propose, read_market, tradable


@dataclass
class Posted:
    at: datetime
    status: int
    body: dict[str, Any]
    answer: dict[str, Any]


@dataclass
class DemoProducer:
    url: str  # the engine's base URL
    producer_id: str
    secret: str
    instruments: list[str]
    min_rr: Decimal
    min_stop_points: int
    interval: tuple[float, float] = (20.0, 60.0)
    first_after: float = 1.0
    rng: random.Random = field(default_factory=random.Random)
    posted: list[Posted] = field(default_factory=list)
    next_at: float | None = None  # time.time() of the next post
    _task: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _session: aiohttp.ClientSession | None = field(default=None, init=False, repr=False)
    _last_symbol: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.instruments = tradable(self.instruments)
        if not self.instruments:
            raise ValueError("none of INSTRUMENTS is priced by the simulated feed")

    def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        self._task = asyncio.create_task(self._run(), name="sandbox-demo-producer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _pick_symbol(self) -> str:
        choices = [s for s in self.instruments if s != self._last_symbol] or self.instruments
        self._last_symbol = self.rng.choice(choices)
        return self._last_symbol

    def next_body(self, now: datetime | None = None) -> dict[str, Any]:
        market = read_market(self._pick_symbol(), now or datetime.now(UTC))
        return propose(
            market,
            self.rng,
            min_rr=self.min_rr,
            min_stop_points=self.min_stop_points,
            number=len(self.posted) + 1,
        )

    async def post(self, body: dict[str, Any]) -> Posted:
        """Sign and POST one signal; returns what the webhook answered."""
        assert self._session is not None, "producer not started"
        raw = json.dumps(body, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Producer-Id": self.producer_id,
            HEADER: signature_header(self.secret, raw),
            "Idempotency-Key": str(uuid.uuid4()),
        }
        async with self._session.post(
            self.url.rstrip("/") + "/api/v1/signals", data=raw, headers=headers
        ) as r:
            answer = await r.json(content_type=None)
            posted = Posted(datetime.now(UTC), r.status, body, answer if isinstance(answer, dict) else {})
        self.posted.append(posted)
        if posted.status in (200, 201):
            logger.info(
                "demo producer: {} {} {} -> {}",
                body["side"],
                body["instrument"],
                body["order_type"],
                r.status,
            )
        else:
            logger.warning("demo producer: signal refused ({}): {}", posted.status, posted.answer)
        return posted

    async def _run(self) -> None:
        delay = self.first_after
        while True:
            self.next_at = time.time() + delay
            await asyncio.sleep(delay)
            try:
                await self.post(self.next_body())
            except (aiohttp.ClientError, TimeoutError) as exc:
                logger.warning("demo producer: cannot reach the webhook: {!r}", exc)
            delay = self.rng.uniform(*self.interval)
