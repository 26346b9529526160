"""How a user's name is shown to someone else (admins, ops, the channel, other users).

Telegram names are whatever the user typed. Format characters (Unicode category ``Cf``: the
bidi embeddings and overrides U+202A-U+202E, the isolates U+2066-U+2069, zero-width characters
U+200B-U+200F, U+2060, U+FEFF, soft hyphens...) and control characters (``Cc``) could reorder
or hide the rest of the line they are shown in (``/positions``, ``/status``, ops alerts), so
they are removed. One helper, used wherever a name is rendered: ``display_name``.
"""

from __future__ import annotations

import unicodedata
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.store.models import User

_STRIPPED = frozenset(("Cf", "Cc", "Co", "Cs", "Cn"))
MAX_NAME = 64


class Named(Protocol):
    @property
    def telegram_id(self) -> int: ...
    @property
    def username(self) -> str | None: ...
    @property
    def first_name(self) -> str | None: ...


def clean_name(value: str | None) -> str:
    """``value`` without format, control, private-use or unassigned characters, trimmed."""
    if not value:
        return ""
    kept = "".join(ch for ch in value if unicodedata.category(ch) not in _STRIPPED)
    return " ".join(kept.split())[:MAX_NAME]


def display_name(user: Named) -> str:
    """``@username``, else the first name, else ``#<telegram id>``; always safe to show."""
    username = clean_name(user.username)
    if username:
        return f"@{username}"
    return clean_name(user.first_name) or f"#{user.telegram_id}"


OPERATOR_ACTORS = frozenset(("cli", "operator"))


async def actor_display(session: AsyncSession, actor: object) -> str | None:
    """An audit actor as people know it: ``tg:7000001`` becomes that user's ``display_name``
    (``@alex``); None for the operator (``cli``, ``operator``) so the front end can say so in its
    language; anything else (``token:<name>``, an unknown user) as written, cleaned."""
    text = str(actor or "")
    if text in OPERATOR_ACTORS:
        return None
    if text.startswith("tg:") and text[3:].lstrip("-").isdigit():
        user = await session.scalar(select(User).where(User.telegram_id == int(text[3:])))
        if user is not None:
            return display_name(user)
    return clean_name(text) or None
