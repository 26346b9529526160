"""Broker symbol names: a signal's instrument resolved per account (``XAUUSD`` -> ``GOLD``, ``EURUSD.a``)."""

from __future__ import annotations

from engine.store.models import ExecutionAccount


def resolve_symbol(account: ExecutionAccount, instrument: str) -> str:
    """The account's explicit map wins; otherwise the instrument plus the account's suffix."""
    mapping = {str(k).upper(): str(v) for k, v in (account.symbol_map or {}).items()}
    explicit = mapping.get(instrument.upper())
    if explicit:
        return explicit
    return f"{instrument.upper()}{account.symbol_suffix or ''}"
