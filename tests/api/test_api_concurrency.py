"""Twenty identical deliveries at once store one signal (database constraints, both databases)."""

from __future__ import annotations

import asyncio
from collections import Counter

from engine.store.models import DomainEvent, Signal
from tests.support.api_world import encode, good_body
from tests.support.queries import count


async def test_twenty_identical_deliveries_at_once_store_one_signal(api):
    raw = encode(good_body(id="burst-1"))
    # each delivery signed on its own (as retries would be), all racing for the same key
    requests = [
        api.client.post("/api/v1/signals", data=raw, headers=api.signed_headers(raw)) for _ in range(20)
    ]
    responses = await asyncio.gather(*requests)
    statuses = Counter(r.status for r in responses)
    assert statuses == {201: 1, 200: 19}, statuses
    ids = {(await r.json())["id"] for r in responses}
    assert len(ids) == 1
    assert all(r.headers.get("Idempotent-Replayed") == "true" for r in responses if r.status == 200)
    assert await count(api.db, Signal) == 1
    assert await count(api.db, DomainEvent) == 1


async def test_twenty_copies_of_one_signed_request_at_once(api):
    raw = encode(good_body())  # no key, no id: the key is derived; the signature is shared too
    headers = api.signed_headers(raw)
    responses = await asyncio.gather(
        *(api.client.post("/api/v1/signals", data=raw, headers=headers) for _ in range(20))
    )
    assert Counter(r.status for r in responses) == {201: 1, 200: 19}
    assert await count(api.db, Signal) == 1


async def test_concurrent_distinct_signals_are_all_stored(api):
    bodies = [encode(good_body(id=f"d-{i}")) for i in range(20)]
    responses = await asyncio.gather(
        *(api.client.post("/api/v1/signals", data=b, headers=api.signed_headers(b)) for b in bodies)
    )
    assert Counter(r.status for r in responses) == {201: 20}
    assert await count(api.db, Signal) == 20
    assert await count(api.db, DomainEvent) == 20
