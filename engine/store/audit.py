"""The append-only audit trail: who did what to which thing, with details (no secrets)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from engine.observability.logs import correlation_id, redact
from engine.store.models import AuditLog

_SECRET_KEYS = ("secret", "password", "token", "signature", "authorization", "credential")


def _clean(value: Any, key: str = "") -> Any:
    if any(word in key.lower() for word in _SECRET_KEYS):
        return "***"
    if isinstance(value, dict):
        return {str(k): _clean(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)


def audit(
    session: AsyncSession, actor: str, action: str, target: str | None = None, **details: Any
) -> AuditLog:
    """Add an audit line to the session's transaction (committed with the change it describes)."""
    row = AuditLog(
        actor=actor,
        action=action,
        target=target,
        details=_clean(details),
        correlation_id=correlation_id.get(),
    )
    session.add(row)
    return row
