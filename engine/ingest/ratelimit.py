"""Token buckets, one per key (a producer), held in memory by the process.

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens a second; a request takes
one. When it is empty, ``take`` says how long until the next token, which becomes the
``Retry-After`` of a 429. Several instances each keep their own buckets (the limit is per
instance); a shared limit would live in Redis.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0  # seconds until a token is available (0 when allowed)

    @property
    def retry_after_header(self) -> str:
        """Whole seconds, at least 1, as HTTP's ``Retry-After`` wants."""
        return str(max(1, math.ceil(self.retry_after)))


class RateLimiter:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._max_keys = max_keys

    def take(self, key: str, rate: Decimal | float, burst: int) -> Decision:
        rate_f = float(rate)
        capacity = float(max(1, burst))
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._buckets.clear()  # bounded memory; only ever keyed by known producers
            bucket = self._buckets[key] = _Bucket(capacity, now)
        else:
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(capacity, bucket.tokens + elapsed * rate_f)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return Decision(True)
        return Decision(False, (1.0 - bucket.tokens) / rate_f if rate_f > 0 else 3600.0)

    def reset(self, key: str | None = None) -> None:
        if key is None:
            self._buckets.clear()
        else:
            self._buckets.pop(key, None)
