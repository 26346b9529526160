"""Execution settings for tests: quick retries and a market that never closes."""

from __future__ import annotations

from engine.execution.service import ExecutionConfig
from engine.risk.market_hours import AlwaysOpen, MarketHours

OPEN = MarketHours(default=AlwaysOpen())  # the weekend must not decide these tests
FAST = ExecutionConfig(
    max_attempts=3, retry_initial_seconds=0.01, retry_max_seconds=0.05, stale_submitting_seconds=0
)
