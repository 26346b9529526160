"""Telegram's ``initData``: the signed launch parameters a Mini App receives, checked on the server.

Telegram's algorithm (core.telegram.org/bots/webapps#validating-data-received-via-the-mini-app,
also ``aiogram.utils.web_app.check_webapp_signature``):

1. parse the query string; take ``hash`` out;
2. the data-check string is the remaining ``key=value`` pairs, sorted by key, joined by ``\\n``
   (``signature``, the third-party Ed25519 signature, stays in it);
3. secret key = HMAC-SHA256(key=``"WebAppData"``, message=bot token);
4. ``hash`` must equal hex(HMAC-SHA256(key=secret key, message=data-check string)), compared in
   constant time.

On top of that, and stricter than aiogram: ``auth_date`` must be an integer no older than the
configured age (``MINIAPP_MAX_AGE_SECONDS``) and not from the future beyond a small clock skew, a
key given twice is refused (a forged copy of ``user`` after the signed one must not be read), and
``user`` must be a JSON object with an integer ``id``. Every refusal is an ``InitDataError`` whose
``code`` says what was wrong; none of them says which byte of the hash differed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

WEB_APP_DATA = b"WebAppData"
MAX_LENGTH = 8192  # Telegram's initData is well under 1 KiB; anything this long is not from it
FUTURE_SKEW_SECONDS = 300


class InitDataError(ValueError):
    """``initData`` that is not valid for this bot; ``code`` is one of: ``malformed``,
    ``duplicate_key``, ``missing_hash``, ``bad_hash``, ``bad_auth_date``, ``expired``, ``no_user``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class WebAppUser:
    id: int
    first_name: str
    last_name: str | None
    username: str | None
    language_code: str | None


@dataclass(frozen=True, slots=True)
class InitData:
    user: WebAppUser
    auth_date: datetime
    query_id: str | None
    fields: Mapping[str, str]  # every signed field as sent (``hash`` left out)


def secret_key(bot_token: str) -> bytes:
    return hmac.new(WEB_APP_DATA, bot_token.encode(), hashlib.sha256).digest()


def data_check_string(fields: Mapping[str, str]) -> str:
    return "\n".join(f"{key}={fields[key]}" for key in sorted(fields) if key != "hash")


def compute_hash(fields: Mapping[str, str], bot_token: str) -> str:
    return hmac.new(secret_key(bot_token), data_check_string(fields).encode(), hashlib.sha256).hexdigest()


def sign(fields: Mapping[str, str], bot_token: str) -> str:
    """``fields`` as Telegram would send them to this bot's Mini App: URL-encoded, with ``hash``."""
    return urlencode({**fields, "hash": compute_hash(fields, bot_token)})


def parse_fields(raw: str) -> dict[str, str]:
    """The ``key=value`` pairs of ``raw``; a key given twice or a malformed pair is refused."""
    if not raw or len(raw) > MAX_LENGTH:
        raise InitDataError("malformed", "initData is empty or too long")
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=True, errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise InitDataError("malformed", "initData is not a query string") from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key in fields:
            raise InitDataError("duplicate_key", f"initData gives {key!r} more than once")
        fields[key] = value
    return fields


def _user(raw: str | None) -> WebAppUser:
    try:
        data: Any = json.loads(raw) if raw else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise InitDataError("no_user", "initData carries no user")
    uid = data.get("id")
    if not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0:
        raise InitDataError("no_user", "initData's user has no valid id")

    def text(name: str) -> str | None:
        value = data.get(name)
        return value if isinstance(value, str) and value else None

    return WebAppUser(
        id=uid,
        first_name=text("first_name") or "",
        last_name=text("last_name"),
        username=text("username"),
        language_code=text("language_code"),
    )


def validate(raw: str, bot_token: str, *, max_age_seconds: int, now: datetime | None = None) -> InitData:
    """Check ``raw`` (``Telegram.WebApp.initData``) for this bot; raises ``InitDataError``."""
    fields = parse_fields(raw)
    given = fields.pop("hash", None)
    if given is None:
        raise InitDataError("missing_hash", "initData has no hash")
    expected = compute_hash(fields, bot_token)
    if not hmac.compare_digest(expected.encode(), given.encode()):  # constant time
        raise InitDataError("bad_hash", "initData is not signed for this bot")
    try:
        auth_seconds = int(fields.get("auth_date", ""))
    except ValueError:
        raise InitDataError("bad_auth_date", "initData's auth_date is not a number") from None
    moment = now or datetime.now(UTC)
    age = moment.timestamp() - auth_seconds
    if age > max_age_seconds:
        raise InitDataError("expired", f"initData is older than {max_age_seconds} seconds")
    if age < -FUTURE_SKEW_SECONDS:
        raise InitDataError("bad_auth_date", "initData's auth_date is in the future")
    return InitData(
        user=_user(fields.get("user")),
        auth_date=datetime.fromtimestamp(auth_seconds, UTC),
        query_id=fields.get("query_id"),
        fields=fields,
    )
