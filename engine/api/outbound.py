"""Outbound events (docs/events.md): signed POSTs to the operator's ``OUTBOUND_URL``.

Two halves, joined by the ``outbound_deliveries`` table so that nothing is lost on a restart:

- ``OutboundRecorder`` subscribes to the event relay. For each event whose type is in
  ``OUTBOUND_TYPES`` it stores one delivery row, keyed by the event id (so an event handed over
  twice is stored once), holding the exact JSON bytes ``{"id","type","created_at","data"}``.
- ``OutboundDispatcher`` POSTs due rows, signed with the producers' ``X-Signature`` scheme
  under ``OUTBOUND_SECRET`` (stamped at each attempt) and with ``Idempotency-Key: <event id>``.
  2xx: delivered. 5xx, 429, timeouts and connection errors: retried after a jittered exponential
  backoff (``base * 2**(n-1) + uniform(0, base)``, at most ``max_delay``, at least a 429/503's
  ``Retry-After``); ``next_attempt_at`` is persisted, so a new dispatcher on the same database
  resumes where the last one stopped. Any other status (3xx, 4xx): dead, logged, never retried.

Run exactly one dispatcher per database (the instance that holds the trading loop); receivers
dedupe by ``Idempotency-Key`` in any case, since a crash after a POST and before its row is
marked delivered sends that event again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Callable
from datetime import timedelta

import aiohttp
from loguru import logger
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from engine.ingest.service import rfc3339
from engine.ingest.signing import HEADER, signature_header
from engine.observability.logs import redact
from engine.observability.metrics import Metrics
from engine.settings import Settings, SettingsError
from engine.store.db import Database, utcnow
from engine.store.events import OUTBOUND_TYPES, Event, EventRelay
from engine.store.models import OutboundDelivery

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"


def event_body(event: Event) -> bytes:
    """The exact bytes sent (and signed) for ``event``."""
    doc = {
        "id": event.event_id,
        "type": event.type,
        "created_at": rfc3339(event.created_at),
        "data": event.payload,
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, default=str).encode()


class OutboundRecorder:
    """Relay subscriber: turns outbound-worthy events into persistent delivery rows."""

    def __init__(self, db: Database, url: str, *, on_stored: Callable[[], None] | None = None) -> None:
        self._db = db
        self._url = url
        self._on_stored = on_stored

    async def __call__(self, event: Event) -> None:
        if event.type not in OUTBOUND_TYPES:
            return
        row = OutboundDelivery(
            id=event.event_id,
            type=event.type,
            body=event_body(event).decode(),
            url=self._url,
            status=PENDING,
            attempts=0,
            next_attempt_at=utcnow(),
        )
        try:
            async with self._db.session() as session:
                session.add(row)
        except IntegrityError:
            pass  # handed over again after a crash: already stored
        if self._on_stored is not None:
            self._on_stored()


class OutboundDispatcher:
    def __init__(
        self,
        db: Database,
        secret: str,
        *,
        metrics: Metrics | None = None,
        base_delay: float = 1.0,
        max_delay: float = 120.0,
        timeout: float = 10.0,
        batch: int = 50,
        concurrency: int = 4,
        idle_seconds: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self._db = db
        self._secret = secret
        self._metrics = metrics
        self._base = base_delay
        self._cap = max_delay
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._batch = batch
        self._sem = asyncio.Semaphore(concurrency)
        self._idle = idle_seconds
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None

    def wake(self) -> None:
        self._wake.set()

    def backoff(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        delay = self._base * 2 ** max(0, attempts - 1) + self._rng.uniform(0, self._base)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(self._cap, delay)

    async def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=self._timeout)
        return self._http

    async def run_once(self) -> int:
        """POST every due delivery once; returns how many were attempted."""
        now = utcnow()
        async with self._db.sessions() as session:
            rows = (
                await session.scalars(
                    select(OutboundDelivery)
                    .where(OutboundDelivery.status == PENDING, OutboundDelivery.next_attempt_at <= now)
                    .order_by(OutboundDelivery.next_attempt_at, OutboundDelivery.created_at)
                    .limit(self._batch)
                )
            ).all()
        if rows:
            await asyncio.gather(*(self._attempt(row) for row in rows))
        return len(rows)

    async def _attempt(self, row: OutboundDelivery) -> None:
        async with self._sem:
            body = row.body.encode()
            headers = {
                "Content-Type": "application/json",
                HEADER: signature_header(self._secret, body),
                "Idempotency-Key": row.id,
            }
            status: int | None = None
            retry_after: float | None = None
            error: str
            try:
                client = await self._client()
                async with client.post(row.url, data=body, headers=headers, allow_redirects=False) as resp:
                    status = resp.status
                    retry_after = _retry_after(resp.headers.get("Retry-After"))
                    text = (await resp.content.read(300)).decode("utf-8", "replace")
                error = f"HTTP {status}: {text}"
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            await self._record(row, status, retry_after, redact(error)[:500])

    async def _record(
        self, row: OutboundDelivery, status: int | None, retry_after: float | None, error: str
    ) -> None:
        attempts = row.attempts + 1
        values: dict[str, object] = {"attempts": attempts}
        if status is not None and 200 <= status < 300:
            outcome = "delivered"
            values.update(status=DELIVERED, delivered_at=utcnow(), last_error=None)
        elif status is None or status >= 500 or status == 429:
            outcome = "retry"
            delay = self.backoff(attempts, retry_after)
            values.update(next_attempt_at=utcnow() + timedelta(seconds=delay), last_error=error)
            logger.warning(
                "outbound {} {} failed ({}); attempt {} retries in {:.1f} s",
                row.type,
                row.id,
                error,
                attempts,
                delay,
            )
        else:
            outcome = "dead"
            values.update(status=DEAD, last_error=error)
            logger.error("outbound {} {} refused ({}); not retried", row.type, row.id, error)
        async with self._db.session() as session:
            await session.execute(
                update(OutboundDelivery).where(OutboundDelivery.id == row.id).values(**values)
            )
        if self._metrics is not None:
            self._metrics.outbound_attempts.labels(outcome).inc()

    async def _next_due_in(self) -> float:
        async with self._db.sessions() as session:
            due = await session.scalar(
                select(func.min(OutboundDelivery.next_attempt_at)).where(OutboundDelivery.status == PENDING)
            )
            if self._metrics is not None:
                pending = await session.scalar(
                    select(func.count())
                    .select_from(OutboundDelivery)
                    .where(OutboundDelivery.status == PENDING)
                )
                self._metrics.outbound_pending.set(pending or 0)
        if due is None:
            return self._idle
        return max(0.0, min(self._idle, (due - utcnow()).total_seconds()))

    async def run(self) -> None:
        while not self._stopping:
            wait = 1.0
            try:
                while await self.run_once() and not self._stopping:
                    pass
                wait = await self._next_due_in()
            except Exception as exc:
                logger.opt(exception=exc).error("outbound dispatcher pass failed; retrying")
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=wait)
            self._wake.clear()

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self.run(), name="outbound-dispatcher")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._http is not None:
            await self._http.close()
            self._http = None


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def install_outbound(
    relay: EventRelay, db: Database, settings: Settings, *, metrics: Metrics | None = None, **options: float
) -> OutboundDispatcher | None:
    """Subscribe the recorder and build the dispatcher (start it with ``.start()``), or None when
    ``OUTBOUND_URL`` is not set."""
    if not settings.outbound_url:
        return None
    if settings.outbound_secret is None or not settings.outbound_secret.get_secret_value():
        raise SettingsError("OUTBOUND_SECRET: required when OUTBOUND_URL is set")
    dispatcher = OutboundDispatcher(
        db,
        settings.outbound_secret.get_secret_value(),
        metrics=metrics,
        **options,  # type: ignore[arg-type]
    )
    relay.subscribe("outbound", OutboundRecorder(db, settings.outbound_url, on_stored=dispatcher.wake))
    return dispatcher
