"""The ``X-Signature`` scheme, shared by producers (inbound) and outbound events.

``X-Signature: t=<unix seconds>,v1=<hex>`` where ``v1`` is the lowercase hex HMAC-SHA256 of
``"<t>.<raw body bytes>"`` under the shared secret (the scheme Stripe uses for its webhooks).
A header may carry several ``v1`` values (a sender rotating its secret); one matching is enough.
The timestamp must be within ``TOLERANCE_SECONDS`` of the verifier's clock, so a captured
request cannot be replayed later; inside the window the receiver dedupes by signature.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

HEADER = "X-Signature"
TOLERANCE_SECONDS = 300
_MAX_HEADER = 1024
_HEX = frozenset("0123456789abcdef")


class SignatureError(Exception):
    """Why a signature was refused. ``reason`` is a stable code for logs and metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Verified:
    timestamp: int
    signature: str  # the v1 value that matched


def sign(secret: str, body: bytes, t: int) -> str:
    """The lowercase hex HMAC-SHA256 of ``"<t>.<body>"``."""
    message = str(int(t)).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, t: int | None = None) -> str:
    """The full ``X-Signature`` value for ``body``, stamped now unless ``t`` is given."""
    stamp = int(time.time()) if t is None else int(t)
    return f"t={stamp},v1={sign(secret, body, stamp)}"


def parse_header(value: str | None) -> tuple[int, list[str]]:
    """Split ``t=..,v1=..[,v1=..]`` into the timestamp and the candidate signatures."""
    if not value:
        raise SignatureError("missing_signature", "the X-Signature header is missing")
    if len(value) > _MAX_HEADER:
        raise SignatureError("malformed_signature", "the X-Signature header is too long")
    stamp: int | None = None
    candidates: list[str] = []
    for part in value.split(","):
        key, sep, item = part.strip().partition("=")
        if not sep:
            raise SignatureError(
                "malformed_signature", "X-Signature must look like t=<unix seconds>,v1=<hex>"
            )
        if key == "t":
            if stamp is not None or not item.isascii() or not item.isdigit() or len(item) > 12:
                raise SignatureError("malformed_signature", "X-Signature t= must be unix seconds")
            stamp = int(item)
        elif key == "v1":
            item = item.lower()
            if len(item) != 64 or not set(item) <= _HEX:
                raise SignatureError("malformed_signature", "X-Signature v1= must be 64 hex digits")
            candidates.append(item)
        # other schemes (v0, v2, ...) are ignored, as Stripe does
    if stamp is None or not candidates:
        raise SignatureError("malformed_signature", "X-Signature must look like t=<unix seconds>,v1=<hex>")
    return stamp, candidates


def verify(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> Verified:
    """Check ``header`` against ``body``; raises ``SignatureError`` with the reason it fails."""
    stamp, candidates = parse_header(header)
    clock = time.time() if now is None else now
    if abs(clock - stamp) > tolerance:
        raise SignatureError(
            "stale_timestamp",
            f"X-Signature t= is outside the ±{tolerance} s window around the server clock",
        )
    expected = sign(secret, body, stamp)
    matched: str | None = None
    for candidate in candidates:
        # compare every candidate, constant time each, so timing says nothing about which matched
        if hmac.compare_digest(expected, candidate):
            matched = candidate
    if matched is None:
        raise SignatureError("bad_signature", "X-Signature does not match the body and the secret")
    return Verified(stamp, matched)
