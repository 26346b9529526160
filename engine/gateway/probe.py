"""The engine's view of a gateway's health: its signed ``/healthz``, as a readiness probe.

``GET /readyz`` gets one check per configured gateway (``gateway:<name>``): up when the gateway
answers, its answer verifies, and every terminal it holds is connected; otherwise a short
reason (unreachable, refused, or which logins are down and why).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from engine.brokers.remote import Endpoint
from engine.gateway.protocol import HEALTH_PATH, NONCE_HEADER, SIGNATURE_HEADER, reply_mac, sign_headers


async def fetch_health(endpoint: Endpoint, seconds: float = 5.0) -> dict[str, Any]:
    """The gateway's verified ``/healthz`` document; raises ``RuntimeError`` saying what failed."""
    context: ssl.SSLContext | bool = False
    if endpoint.url.startswith("https://"):
        context = ssl.create_default_context(cafile=endpoint.ca)
    headers = sign_headers(endpoint.token, "GET", HEALTH_PATH, b"")
    timeout = aiohttp.ClientTimeout(total=seconds)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(endpoint.url.rstrip("/") + HEALTH_PATH, headers=headers, ssl=context) as response,
        ):
            body = await response.read()
            signature = response.headers.get(SIGNATURE_HEADER, "")
            status = response.status
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise RuntimeError(f"gateway {endpoint.name} unreachable: {type(exc).__name__}") from None
    if status != 200:
        raise RuntimeError(f"gateway {endpoint.name} refused the probe ({status})")
    if signature != "v1=" + reply_mac(endpoint.token, headers[NONCE_HEADER], body):
        raise RuntimeError(f"gateway {endpoint.name}: the answer failed verification")
    doc: dict[str, Any] = json.loads(body)
    return doc


def gateway_probe(endpoint: Endpoint) -> Callable[[], Awaitable[bool | str]]:
    """A ``Readiness`` probe for one gateway."""

    async def probe() -> bool | str:
        try:
            doc = await fetch_health(endpoint, seconds=1.5)  # within the readiness timeout
        except RuntimeError as exc:
            return str(exc)
        down = [t for t in doc.get("terminals", []) if not t.get("connected")]
        if not down:
            return True
        return "; ".join(f"login {t.get('login')}: {t.get('detail') or 'disconnected'}" for t in down)

    return probe
