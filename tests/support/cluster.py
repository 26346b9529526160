"""For the multi-instance tests: a fresh PostgreSQL database and a producer posting through the
balancer (the instances themselves are ``sandbox.cluster.InstanceProcess``, as ``make cluster``'s)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout

from engine.ingest.signing import signature_header
from engine.store.migrate import upgrade_async
from tests.support.databases import PG_ADMIN_URL, pg_admin


@asynccontextmanager
async def fresh_pg_database(prefix: str = "tradebot_cluster") -> AsyncIterator[str]:
    """A migrated PostgreSQL database of its own (the instances are other processes), dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    await pg_admin(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        await upgrade_async(url)
        yield url
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def post_signal(base_url: str, producer_id: str, secret: str, body: dict[str, Any]) -> None:
    """A producer delivering a signal, retried until an answer (an instance may be down)."""
    raw = json.dumps(body).encode()
    async with ClientSession(timeout=ClientTimeout(total=10)) as http:
        while True:
            headers = {
                "Content-Type": "application/json",
                "X-Producer-Id": producer_id,
                "X-Signature": signature_header(secret, raw),
            }
            try:
                async with http.post(f"{base_url}/api/v1/signals", data=raw, headers=headers) as resp:
                    if resp.status in (200, 201):
                        return
                    assert resp.status >= 500, (resp.status, await resp.text())
            except (ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.1)
