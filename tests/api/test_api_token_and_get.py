"""The token route for producers that cannot sign, and reading a signal back."""

from __future__ import annotations

import time

from engine.ingest.signing import signature_header
from engine.store.models import AuditLog, Signal
from tests.support.api_world import encode, good_body
from tests.support.queries import count, rows


async def _post_token(h, body, token=None, key=None):
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key
    return await h.client.post(
        f"/api/v1/signals/token/{token or h.producer.token}", data=encode(body), headers=headers
    )


async def test_token_route_accepts_and_dedupes(api):
    first = await _post_token(api, good_body(id="tv-1"))
    assert first.status == 201, await first.text()
    again = await _post_token(api, good_body(id="tv-1"))
    assert again.status == 200 and again.headers["Idempotent-Replayed"] == "true"
    [row] = await rows(api.db, Signal)
    assert row.signature is None and row.producer_id == api.producer.id


async def test_token_route_same_body_rules(sqlite_api):
    resp = await _post_token(sqlite_api, good_body(colour="red"))
    assert resp.status == 422
    resp = await sqlite_api.client.post(
        f"/api/v1/signals/token/{sqlite_api.producer.token}",
        data=b"x",
        headers={"Content-Type": "text/plain"},
    )
    assert resp.status == 415
    assert (await _post_token(sqlite_api, b"{nope")).status == 400
    assert await count(sqlite_api.db, Signal) == 0


async def test_unknown_token_is_401_and_disabled_is_403(sqlite_api):
    real = sqlite_api.producer.token
    # One character changed, always to a different one: a fixed replacement collides when the real
    # token already ends in it.
    near_miss = real[:-1] + ("B" if real.endswith("A") else "A")
    for token in ("short", "x" * 43, near_miss, "y" * 300):
        resp = await _post_token(sqlite_api, good_body(), token=token)
        assert resp.status == 401
        assert (await resp.json(content_type=None))["type"].endswith("unknown_token")
    await sqlite_api.producers.disable(sqlite_api.producer.id)
    assert (await _post_token(sqlite_api, good_body())).status == 403
    audit_rows = await rows(sqlite_api.db, AuditLog, AuditLog.action == "signal.refused")
    dumped = repr([(r.actor, r.target, r.details) for r in audit_rows])
    assert sqlite_api.producer.token not in dumped and "y" * 300 not in dumped


async def test_get_signal_signed_and_by_token(api):
    resp = await api.post(good_body(id="g-1", confidence="0.75", strategy="s1"))
    signal_id = (await resp.json())["id"]
    headers = {
        "X-Producer-Id": api.producer.id,
        "X-Signature": signature_header(api.producer.secret, b""),
    }
    got = await api.client.get(f"/api/v1/signals/{signal_id}", headers=headers)
    assert got.status == 200, await got.text()
    doc = await got.json()
    assert doc["id"] == signal_id and doc["client_id"] == "g-1"
    assert (doc["entry"], doc["sl"], doc["tp"], doc["confidence"]) == ("1.0845", "1.0815", "1.0905", "0.75")
    assert doc["instrument"] == "EURUSD" and doc["status"] == "accepted"
    by_token = await api.client.get(f"/api/v1/signals/token/{api.producer.token}/{signal_id}")
    assert by_token.status == 200 and await by_token.json() == doc


async def test_get_signal_refusals(api):
    resp = await api.post(good_body())
    signal_id = (await resp.json())["id"]
    other = await api.producers.add("other")
    ok_headers = {"X-Producer-Id": other.id, "X-Signature": signature_header(other.secret, b"")}
    # another producer's signal is not found
    assert (await api.client.get(f"/api/v1/signals/{signal_id}", headers=ok_headers)).status == 404
    assert (await api.client.get("/api/v1/signals/nope", headers=ok_headers)).status == 404
    stale = {
        "X-Producer-Id": api.producer.id,
        "X-Signature": signature_header(api.producer.secret, b"", int(time.time()) - 999),
    }
    assert (await api.client.get(f"/api/v1/signals/{signal_id}", headers=stale)).status == 401
    assert (await api.client.get(f"/api/v1/signals/{signal_id}")).status == 401
    assert (await api.client.get(f"/api/v1/signals/token/{'z' * 43}/{signal_id}")).status == 401
