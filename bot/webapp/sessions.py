"""Mini App sessions: a short-lived bearer token bound to one Telegram user, issued for valid initData.

Stateless: ``v1.<payload>.<mac>``, where ``payload`` is base64url JSON ``{"uid", "lang", "exp"}``
and ``mac`` is base64url HMAC-SHA256 over ``v1.<payload>`` with a key derived from ``SECRET_KEY``
(or, without one, from the bot token). Nothing is stored, so every instance behind a load balancer
accepts every other's tokens; rotating ``SECRET_KEY`` (or the bot token) ends every session, and
the page simply signs in again with its initData. A token says who the user is, never what they
may do: admin rights are read from ``ADMIN_IDS`` on every request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

VERSION = "v1"
_CONTEXT = b"tradebot mini app session v1"
MAX_TOKEN_LENGTH = 512


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Session:
    telegram_id: int
    language: str | None  # the initData user's language_code (the stored language wins)
    expires_at: datetime


def session_key(secret: str) -> bytes:
    """The signing key, derived so it is never the raw ``SECRET_KEY`` or bot token."""
    return hmac.new(_CONTEXT, secret.encode(), hashlib.sha256).digest()


class SessionTokens:
    def __init__(
        self, key: bytes, ttl_seconds: int, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._key = key
        self.ttl = timedelta(seconds=ttl_seconds)
        self._clock = clock

    def _mac(self, signed: str) -> str:
        return _b64(hmac.new(self._key, signed.encode(), hashlib.sha256).digest())

    def issue(self, telegram_id: int, language: str | None) -> tuple[str, datetime]:
        expires = (self._clock() + self.ttl).replace(microsecond=0)
        body = {"uid": telegram_id, "lang": language, "exp": int(expires.timestamp())}
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        signed = f"{VERSION}.{payload}"
        return f"{signed}.{self._mac(signed)}", expires

    def verify(self, token: str) -> Session | None:
        """The session ``token`` carries, or None when it is malformed, forged or expired."""
        if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
            return None
        version, payload, mac = token.split(".")
        signed = f"{version}.{payload}"
        if version != VERSION or not hmac.compare_digest(self._mac(signed).encode(), mac.encode()):
            return None
        try:
            body = json.loads(_unb64(payload))
            uid, exp, lang = body["uid"], body["exp"], body.get("lang")
        except (ValueError, KeyError, TypeError):
            return None
        if (
            not isinstance(uid, int)
            or not isinstance(exp, int)
            or not (lang is None or isinstance(lang, str))
        ):
            return None
        expires = datetime.fromtimestamp(exp, UTC)
        if expires <= self._clock():
            return None
        return Session(uid, lang, expires)
