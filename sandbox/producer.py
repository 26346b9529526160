"""The demo producer: a strategy process posting signed signals through the real webhook.

It does what a producer outside the product does: ``POST /api/v1/signals`` with ``X-Producer-Id``,
``X-Signature`` (``engine.ingest.service.signing``) and an ``Idempotency-Key``, over HTTP on loopback. The first
signal goes out shortly after start, then one every ``interval`` seconds (a random pick in the
range), rotating over the instruments so the same one does not come twice in a row.

Now and then (``update_share`` of the rounds, before that round's signal) it also changes one of
its earlier signals, as providers do (``POST /api/v1/signals/<id>/updates``, CONTRACTS 1a): a
limit signal is cancelled (its resting orders removed), a market signal whose price has run at
least half its risk in its favour gets its stop moved to entry, another one is closed by half.
Each signal is updated at most once.
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
    update_share: float = 0.3
    posted: list[Posted] = field(default_factory=list)
    updates: list[Posted] = field(default_factory=list)  # body: {"signal": id, **update}
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

    async def _send(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        assert self._session is not None, "producer not started"
        raw = json.dumps(body, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Producer-Id": self.producer_id,
            HEADER: signature_header(self.secret, raw),
            "Idempotency-Key": str(uuid.uuid4()),
        }
        async with self._session.post(self.url.rstrip("/") + path, data=raw, headers=headers) as r:
            answer = await r.json(content_type=None)
            return r.status, answer if isinstance(answer, dict) else {}

    async def post(self, body: dict[str, Any]) -> Posted:
        """Sign and POST one signal; returns what the webhook answered."""
        status, answer = await self._send("/api/v1/signals", body)
        posted = Posted(datetime.now(UTC), status, body, answer)
        self.posted.append(posted)
        if posted.status in (200, 201):
            logger.info(
                "demo producer: {} {} {} -> {}",
                body["side"],
                body["instrument"],
                body["order_type"],
                status,
            )
        else:
            logger.warning("demo producer: signal refused ({}): {}", posted.status, posted.answer)
        return posted

    def next_update(self, now: datetime | None = None) -> tuple[str, dict[str, Any]] | None:
        """An update for one earlier signal not updated yet (its ``id``, the update), or None."""
        done = {u.body["signal"] for u in self.updates}
        candidates = [p.body for p in self.posted[:-1] if p.status in (200, 201) and p.body["id"] not in done]
        if not candidates:
            return None
        body = self.rng.choice(candidates[-5:])  # one of the recent ones
        if body["order_type"] == "limit":
            return body["id"], {"action": "cancel"}
        market = read_market(body["instrument"], now or datetime.now(UTC))
        entry, sl = Decimal(body["entry"]), Decimal(body["sl"])
        run = (market.bid - entry) if body["side"] == "buy" else (entry - market.ask)
        if run >= abs(entry - sl) / 2:
            return body["id"], {"action": "move_sl", "sl": "entry"}
        return body["id"], {"action": "close", "percent": 50}

    async def post_update(self, signal_id: str, update: dict[str, Any]) -> Posted:
        """Sign and POST one update to an earlier signal; returns what the API answered."""
        status, answer = await self._send(f"/api/v1/signals/{signal_id}/updates", update)
        posted = Posted(datetime.now(UTC), status, {"signal": signal_id, **update}, answer)
        self.updates.append(posted)
        if status in (200, 202):
            logger.info("demo producer: {} on {} -> {}", update["action"], signal_id, status)
        else:
            logger.warning("demo producer: update refused ({}): {}", status, answer)
        return posted

    async def _run(self) -> None:
        delay = self.first_after
        while True:
            self.next_at = time.time() + delay
            await asyncio.sleep(delay)
            try:
                update = self.next_update() if self.rng.random() < self.update_share else None
                if update is not None:
                    await self.post_update(*update)
                await self.post(self.next_body())
            except (aiohttp.ClientError, TimeoutError) as exc:
                logger.warning("demo producer: cannot reach the webhook: {!r}", exc)
            delay = self.rng.uniform(*self.interval)
