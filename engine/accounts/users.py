"""User rows: the one way a user is created (referral code, status), shared by every service that may
meet a Telegram id first (registration, an operator's ``tradebot account``, a payment from a stranger).
"""

from __future__ import annotations

import secrets
from typing import Any

from engine.states import UserStatus
from engine.store.models import User

_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
CODE_LENGTH = 8


def new_referral_code() -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(CODE_LENGTH))


def new_user(telegram_id: int, **fields: Any) -> User:
    """A new, active user with a fresh referral code (the caller adds and flushes it)."""
    return User(
        telegram_id=telegram_id,
        status=UserStatus.ACTIVE.value,
        referral_code=new_referral_code(),
        **fields,
    )
