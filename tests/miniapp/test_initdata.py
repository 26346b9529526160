"""Telegram's initData check (``bot.webapp.initdata``) and the Mini App's session tokens.

The signatures here are made by the test itself, straight from Telegram's recipe, and checked
against aiogram's own implementation too, so the product's code is never its own reference.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

import pytest
from aiogram.utils.web_app import check_webapp_signature

from bot.webapp.initdata import InitDataError, validate
from bot.webapp.sessions import SessionTokens, session_key
from tests.support.telegram import OTHER_TOKEN, TOKEN

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DAY = 86400
USER = {"id": 7000101, "first_name": "Ben", "last_name": "Carter", "username": "ben", "language_code": "es"}


def telegram_sign(fields: dict[str, str], token: str = TOKEN) -> str:
    """Telegram's algorithm, written out here: sorted key=value lines, HMAC key from "WebAppData"."""
    check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    digest = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode({**fields, "hash": digest}, quote_via=quote)


def fields(**changes: str) -> dict[str, str]:
    base = {
        "query_id": "AAHdF6IQAAAAAN0XohDhrOrc",
        "user": json.dumps(USER, separators=(",", ":")),
        "auth_date": str(int(NOW.timestamp()) - 60),
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v != ""}


def check(raw: str, token: str = TOKEN, max_age: int = DAY) -> object:
    return validate(raw, token, max_age_seconds=max_age, now=NOW)


def refused(raw: str, code: str, **kwargs: object) -> None:
    with pytest.raises(InitDataError) as caught:
        check(raw, **kwargs)  # type: ignore[arg-type]
    assert caught.value.code == code, caught.value


def test_valid_init_data_gives_the_user_and_agrees_with_aiogram() -> None:
    raw = telegram_sign(fields())
    data = validate(raw, TOKEN, max_age_seconds=DAY, now=NOW)
    assert data.user.id == 7000101 and data.user.first_name == "Ben" and data.user.language_code == "es"
    assert data.user.username == "ben" and data.query_id == "AAHdF6IQAAAAAN0XohDhrOrc"
    assert data.auth_date == NOW - timedelta(seconds=60)
    assert check_webapp_signature(TOKEN, raw)  # aiogram's first-party check accepts the same string


def test_a_tampered_field_is_refused() -> None:
    raw = telegram_sign(fields())
    forged = raw.replace("7000101", "7000102")  # another user id, the hash left as it was
    assert forged != raw
    refused(forged, "bad_hash")
    refused(raw.replace("auth_date=", "auth_date=1"), "bad_hash")


def test_another_bots_token_is_refused() -> None:
    refused(telegram_sign(fields(), OTHER_TOKEN), "bad_hash")
    refused(telegram_sign(fields()), "bad_hash", token=OTHER_TOKEN)


def test_stale_auth_date_is_refused_and_the_age_is_configurable() -> None:
    old = str(int(NOW.timestamp()) - DAY - 1)
    refused(telegram_sign(fields(auth_date=old)), "expired")
    at_limit = str(int(NOW.timestamp()) - DAY)
    assert check(telegram_sign(fields(auth_date=at_limit)))
    hour_old = telegram_sign(fields(auth_date=str(int(NOW.timestamp()) - 3601)))
    assert check(hour_old)
    refused(hour_old, "expired", max_age=3600)


def test_auth_date_from_the_future_or_missing_is_refused() -> None:
    refused(telegram_sign(fields(auth_date=str(int(NOW.timestamp()) + 3600))), "bad_auth_date")
    assert check(telegram_sign(fields(auth_date=str(int(NOW.timestamp()) + 60))))  # clock skew
    refused(telegram_sign(fields(auth_date="")), "bad_auth_date")
    refused(telegram_sign(fields(auth_date="soon")), "bad_auth_date")


def test_missing_hash_is_refused() -> None:
    signed = telegram_sign(fields())
    refused(signed.split("&hash=")[0], "missing_hash")


def test_duplicated_keys_are_refused() -> None:
    raw = telegram_sign(fields())
    intruder = quote(json.dumps({**USER, "id": 1}, separators=(",", ":")), safe="")
    refused(f"{raw}&user={intruder}", "duplicate_key")  # a second user after the signed one
    refused(f"user={intruder}&{raw}", "duplicate_key")  # ... or before it
    refused(f"{raw}&hash={'0' * 64}", "duplicate_key")


def test_hash_must_match_exactly() -> None:
    raw = telegram_sign(fields())
    given = raw.split("hash=")[1]
    refused(raw.replace(given, given.upper()), "bad_hash")
    refused(raw.replace(given, given[:-1]), "bad_hash")


def test_malformed_or_userless_init_data_is_refused() -> None:
    refused("", "malformed")
    refused("x" * 9000, "malformed")
    refused("no-equals-sign", "malformed")
    refused(telegram_sign(fields(user="")), "no_user")
    refused(telegram_sign(fields(user='{"first_name":"No id"}')), "no_user")
    refused(telegram_sign(fields(user="[1,2]")), "no_user")
    refused(telegram_sign(fields(user='{"id":true}')), "no_user")


def test_the_signature_field_is_part_of_the_signed_data() -> None:
    """Telegram's Ed25519 ``signature`` stays in the data-check string (as in aiogram)."""
    raw = telegram_sign(fields(signature="c2lnbmF0dXJl"))
    assert check(raw)
    refused(raw.replace("c2lnbmF0dXJl", "c2lnbmF0dXJM"), "bad_hash")


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def test_a_session_token_is_bound_to_its_user_and_expires() -> None:
    clock = Clock()
    tokens = SessionTokens(session_key("k" * 40), 3600, clock)
    token, expires = tokens.issue(7000101, "es")
    assert expires == NOW + timedelta(hours=1)
    session = tokens.verify(token)
    assert session is not None and session.telegram_id == 7000101 and session.language == "es"
    clock.now = NOW + timedelta(minutes=59)
    assert tokens.verify(token) is not None
    clock.now = NOW + timedelta(hours=1)
    assert tokens.verify(token) is None


def test_a_forged_or_foreign_session_token_is_refused() -> None:
    clock = Clock()
    tokens = SessionTokens(session_key("k" * 40), 3600, clock)
    token, _ = tokens.issue(7000101, None)
    version, payload, mac = token.split(".")
    other = SessionTokens(session_key("j" * 40), 3600, clock)
    other_token, _ = other.issue(7000102, None)
    other_payload = other_token.split(".")[1]
    assert tokens.verify(f"{version}.{other_payload}.{mac}") is None  # someone else's id, our mac
    assert tokens.verify(other_token) is None  # signed with another key
    assert tokens.verify(f"v2.{payload}.{mac}") is None
    assert tokens.verify(token[:-2]) is None
    for garbage in ("", "abc", "a.b.c", "v1..", "." * 600):
        assert tokens.verify(garbage) is None
