"""The Redis server the tests use (``TEST_REDIS_URL`` to override; CI starts one on 127.0.0.1:6379)."""

from __future__ import annotations

import os
import random

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def fresh_bot_id() -> int:
    """A bot id no real bot has (Telegram's are at most ten digits): each test's Redis keys are its own."""
    return random.randint(9_000_000_000_000, 9_999_999_999_999)
