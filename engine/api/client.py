"""The producer side of the webhook: sign and POST signals and updates (CONTRACTS 1 and 1a).

``tradebot signal send`` and the built-in strategy producer both post through ``SignalClient``.
Each request is signed with ``X-Signature`` (``engine.ingest.signing``) at the moment it is sent, so a
retry later carries a fresh timestamp, and always carries an ``Idempotency-Key``: a retry of a
delivery whose answer was lost is answered by the server with the original (200, replayed), never
stored twice. ``deliver`` retries what may succeed later (no connection, timeouts, 5xx, 429 with
its ``Retry-After``) with jittered exponential backoff, and returns any other answer at once.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from typing import Any

import aiohttp
from loguru import logger

from engine.ingest.signing import HEADER, signature_header

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Answer:
    status: int  # HTTP status; 0 when no answer came (unreachable, timeout)
    text: str
    error: str = ""  # why there is no answer

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        try:
            return json.loads(self.text)
        except ValueError:
            return None


@dataclass(frozen=True)
class Backoff:
    attempts: int = 5  # the legacy producer's 5 tries
    initial: float = 1.0
    maximum: float = 60.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max, initial * 2^attempt)] (attempt counts from 0)."""
        return rng.uniform(0, min(self.maximum, self.initial * 2**attempt))


class SignalClient:
    """Signs and posts to one server as one producer. Use as an async context manager."""

    def __init__(
        self,
        url: str,
        producer_id: str,
        secret: str,
        *,
        timeout: float = 10.0,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.base = url.rstrip("/")
        self.producer_id = producer_id
        self._secret = secret
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self.backoff = backoff or Backoff()
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SignalClient:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def signal_url(self) -> str:
        return f"{self.base}/api/v1/signals"

    def updates_url(self, signal_id: str) -> str:
        from urllib.parse import quote

        return f"{self.base}/api/v1/signals/{quote(signal_id, safe='')}/updates"

    async def send_raw(self, target: str, raw: bytes, key: str | None) -> Answer:
        """One signed POST of ``raw`` to ``target``; never raises for transport failures."""
        if self._session is None:
            raise RuntimeError("SignalClient used outside `async with`")
        headers = {
            "Content-Type": "application/json",
            "X-Producer-Id": self.producer_id,
            HEADER: signature_header(self._secret, raw),
        }
        if key:
            headers["Idempotency-Key"] = key
        try:
            async with self._session.post(target, data=raw, headers=headers) as resp:
                text = await resp.text()
                answer = Answer(resp.status, text)
                if resp.status == 429:
                    retry_after = resp.headers.get("Retry-After", "")
                    answer = Answer(resp.status, text, error=f"retry-after:{retry_after}")
                return answer
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Answer(0, "", error=f"{type(exc).__name__}: {exc}")

    async def deliver(self, target: str, body: dict[str, Any], key: str) -> Answer:
        """POST ``body`` with ``key``, retrying what can succeed later; the last answer."""
        raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        answer = Answer(0, "", error="not sent")
        for attempt in range(self.backoff.attempts):
            answer = await self.send_raw(target, raw, key)
            if answer.status != 0 and answer.status not in RETRY_STATUSES:
                return answer
            if attempt + 1 == self.backoff.attempts:
                break
            delay = self.backoff.delay(attempt, self._rng)
            if answer.error.startswith("retry-after:"):
                hinted = answer.error.split(":", 1)[1]
                if hinted.isdigit():
                    delay = max(delay, float(hinted))
            logger.warning(
                "POST {} (key {}) got {}; retry {} of {} in {:.1f} s",
                target,
                key,
                answer.status or answer.error,
                attempt + 1,
                self.backoff.attempts - 1,
                delay,
            )
            await asyncio.sleep(delay)
        return answer

    async def post_signal(self, body: dict[str, Any], key: str) -> Answer:
        return await self.deliver(self.signal_url(), body, key)

    async def post_update(self, signal_id: str, body: dict[str, Any], key: str) -> Answer:
        """An update to a signal (``{"action": "cancel"}`` and the others of CONTRACTS 1a)."""
        return await self.deliver(self.updates_url(signal_id), body, key)
