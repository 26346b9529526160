"""What the gateway and its clients agree on: the allow-list, the signature scheme, the value codec.

Transport: HTTPS (or plain HTTP, loudly) with JSON bodies, served by aiohttp. A call is
``POST /v1/call`` with ``{"session", "call", "args", "kwargs"}``; the answer is
``{"result", "error": [code, message], "session"?}``, where ``error`` is the terminal's
``last_error()`` right after the call, so the client answers ``last_error()`` without a round trip.

Authentication: every request carries
- ``X-Gateway-Timestamp``: unix seconds, within ``max_skew`` of the gateway's clock;
- ``X-Gateway-Nonce``: 16..64 characters of ``[A-Za-z0-9_-]``, never seen before in the window;
- ``X-Gateway-Signature: v1=<hex>``: HMAC-SHA256 under the gateway's token of
  ``"<t>\\n<nonce>\\n<METHOD>\\n<path>\\n" + body``.
The token itself never travels. Answers are signed back (``X-Gateway-Signature`` =
HMAC of ``"reply\\n<nonce>\\n" + body``), so a client on a plain link still detects a forged or
replayed answer.

Allow-list: the gateway calls only ``FUNCTIONS`` on the terminal module, looked up in a fixed
table, never by a name it is sent; constants are the integer attributes whose names start with
``CONSTANT_PREFIXES``. Values crossing the wire are ``None``, booleans, numbers, strings,
``{"$dt": iso}`` datetimes, ``{"$map": {...}}`` dicts, lists (tuples) and, in answers only,
``{"$nt": name, "f": fields, "v": values}`` records (the package's named tuples).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict, namedtuple
from datetime import datetime
from typing import Any

CALL_PATH = "/v1/call"
CONSTANTS_PATH = "/v1/constants"
HEALTH_PATH = "/healthz"
LIVE_PATH = "/livez"

TIMESTAMP_HEADER = "X-Gateway-Timestamp"
NONCE_HEADER = "X-Gateway-Nonce"
SIGNATURE_HEADER = "X-Gateway-Signature"

MIN_TOKEN_LENGTH = 32
MAX_BODY_BYTES = 256 * 1024
DEFAULT_MAX_SKEW = 30

# the module surface of docs/mt5.md; ``last_error`` is answered by the client from each reply.
FUNCTIONS = frozenset(
    {
        "initialize", "login", "shutdown", "account_info", "terminal_info", "symbol_info",
        "symbol_info_tick", "symbol_select", "order_check", "order_send", "positions_get",
        "orders_get", "history_orders_get", "history_deals_get",
    }
)  # fmt: skip
# Functions that change the trade server's state: never retried by the client on a transport error.
TRADING_FUNCTIONS = frozenset({"order_send"})
# Section 5's groups, then the groups the broker reads records with (plain integers, all of them).
CONSTANT_PREFIXES = (
    "TRADE_ACTION_", "ORDER_TYPE_", "ORDER_FILLING_", "ORDER_TIME_", "TRADE_RETCODE_",
    "POSITION_TYPE_", "DEAL_TYPE_", "DEAL_ENTRY_", "DEAL_REASON_", "ORDER_STATE_",
    "SYMBOL_TRADE_MODE_", "SYMBOL_TRADE_EXECUTION_", "RES_",
)  # fmt: skip
_CONSTANT_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_MAX_DEPTH = 6


class AuthError(Exception):
    """A request the gateway refuses before looking at it; ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class CodecError(ValueError):
    """A value that may not cross the wire."""


def is_constant_name(name: str) -> bool:
    return bool(_CONSTANT_NAME.fullmatch(name)) and name.startswith(CONSTANT_PREFIXES)


def constants_of(module: Any) -> dict[str, int]:
    """The allowed constants a module defines (integers only)."""
    out: dict[str, int] = {}
    for name in dir(module):
        if is_constant_name(name):
            value = getattr(module, name, None)
            if isinstance(value, int) and not isinstance(value, bool):
                out[name] = int(value)
    return out


# ---- signatures ------------------------------------------------------------------------------


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def request_mac(token: str, t: int, nonce: str, method: str, path: str, body: bytes) -> str:
    head = f"{int(t)}\n{nonce}\n{method.upper()}\n{path}\n".encode()
    return hmac.new(token.encode(), head + body, hashlib.sha256).hexdigest()


def reply_mac(token: str, nonce: str, body: bytes) -> str:
    return hmac.new(token.encode(), f"reply\n{nonce}\n".encode() + body, hashlib.sha256).hexdigest()


def sign_headers(token: str, method: str, path: str, body: bytes, *, t: int | None = None) -> dict[str, str]:
    """The three authentication headers of one request."""
    stamp = int(time.time()) if t is None else int(t)
    nonce = new_nonce()
    return {
        TIMESTAMP_HEADER: str(stamp),
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: "v1=" + request_mac(token, stamp, nonce, method, path, body),
    }


class NonceCache:
    """Nonces seen within the window (bounded); a second sighting is a replay."""

    def __init__(self, window: float, max_entries: int = 200_000) -> None:
        self._window = window
        self._max = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()

    def _expire(self, now: float) -> None:
        while self._seen:
            nonce, at = next(iter(self._seen.items()))
            if now - at <= self._window:
                break
            self._seen.pop(nonce)

    def add(self, nonce: str, now: float) -> bool:
        """Record ``nonce``; False when it was already seen (or the cache is full of fresh ones)."""
        self._expire(now)
        if nonce in self._seen or len(self._seen) >= self._max:
            return False
        self._seen[nonce] = now
        return True


class Verifier:
    """Checks a request's timestamp, nonce and signature against the gateway's token."""

    def __init__(self, token: str, *, max_skew: int = DEFAULT_MAX_SKEW) -> None:
        self._token = token
        self.max_skew = max_skew
        # a nonce only needs remembering while its timestamp could still be accepted
        self._nonces = NonceCache(window=2 * max_skew + 1)

    def verify(self, method: str, path: str, headers: Any, body: bytes, *, now: float | None = None) -> str:
        """The request's nonce when it is authentic and fresh; raises ``AuthError`` otherwise."""
        clock = time.time() if now is None else now
        stamp, nonce = headers.get(TIMESTAMP_HEADER, ""), headers.get(NONCE_HEADER, "")
        signature = headers.get(SIGNATURE_HEADER, "")
        if not stamp or not nonce or not signature:
            raise AuthError("unsigned", "missing timestamp, nonce or signature header")
        if not stamp.isdigit() or len(stamp) > 12:
            raise AuthError("bad_timestamp", "the timestamp is not unix seconds")
        if abs(clock - int(stamp)) > self.max_skew:
            raise AuthError("stale", f"the timestamp is more than {self.max_skew} s from the gateway's clock")
        if not _NONCE.fullmatch(nonce):
            raise AuthError("bad_nonce", "the nonce must be 16..64 characters of [A-Za-z0-9_-]")
        expected = "v1=" + request_mac(self._token, int(stamp), nonce, method, path, body)
        if not hmac.compare_digest(expected.encode(), signature.encode()[:128]):
            raise AuthError("bad_signature", "the signature does not match (wrong token?)")
        if not self._nonces.add(nonce, clock):
            raise AuthError("replayed", "this nonce was already used")
        return nonce


# ---- values ----------------------------------------------------------------------------------


def encode(value: Any, depth: int = 0) -> Any:
    """A value from the terminal module (or a call's argument) as JSON-able data."""
    if depth > _MAX_DEPTH:
        raise CodecError("value nested too deeply")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    fields = getattr(value, "_fields", None)
    if fields is not None and isinstance(value, tuple):
        return {"$nt": type(value).__name__, "f": list(fields), "v": [encode(v, depth + 1) for v in value]}
    if hasattr(value, "_asdict"):
        d = value._asdict()
        return {"$nt": type(value).__name__, "f": list(d), "v": [encode(v, depth + 1) for v in d.values()]}
    if isinstance(value, tuple | list):
        return [encode(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {"$map": {str(k): encode(v, depth + 1) for k, v in value.items()}}
    if hasattr(value, "item"):  # numpy scalars
        return encode(value.item(), depth)
    raise CodecError(f"a {type(value).__name__} cannot cross the gateway")


_RECORDS: dict[tuple[str, tuple[str, ...]], type] = {}


def _record_type(name: str, fields: tuple[str, ...]) -> type:
    key = (name, fields)
    cls = _RECORDS.get(key)
    if cls is None:
        if not name.isidentifier():
            raise CodecError(f"bad record name {name!r}")
        try:
            cls = _RECORDS[key] = namedtuple(name, fields)  # type: ignore[misc]
        except (TypeError, ValueError) as exc:
            raise CodecError(f"bad record fields for {name}: {exc}") from None
    return cls


def decode(data: Any, *, records: bool, depth: int = 0) -> Any:
    """The inverse of ``encode``. ``records=False`` (the gateway reading a client's arguments)
    refuses named tuples: a client sends only plain values, datetimes and request dicts."""
    if depth > _MAX_DEPTH:
        raise CodecError("value nested too deeply")
    if data is None or isinstance(data, bool | int | float | str):
        return data
    if isinstance(data, list):
        return tuple(decode(v, records=records, depth=depth + 1) for v in data)
    if isinstance(data, dict):
        if set(data) == {"$dt"} and isinstance(data["$dt"], str):
            try:
                return datetime.fromisoformat(data["$dt"])
            except ValueError:
                raise CodecError("bad datetime") from None
        if set(data) == {"$map"} and isinstance(data["$map"], dict):
            return {str(k): decode(v, records=records, depth=depth + 1) for k, v in data["$map"].items()}
        if records and set(data) == {"$nt", "f", "v"}:
            fields, values = data["f"], data["v"]
            if not isinstance(fields, list) or not isinstance(values, list) or len(fields) != len(values):
                raise CodecError("bad record")
            cls = _record_type(str(data["$nt"]), tuple(str(f) for f in fields))
            return cls(*(decode(v, records=records, depth=depth + 1) for v in values))
    raise CodecError("a value of an unknown shape")
