"""POST /api/v1/signals: every status of the CONTRACTS table, on SQLite and PostgreSQL where the
store is involved."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from decimal import Decimal

import pytest

from engine.ingest.signing import sign
from engine.store.events import SIGNAL_ACCEPTED
from engine.store.models import AuditLog, DomainEvent, Signal
from tests.support.api_world import encode, good_body
from tests.support.queries import count, rows


async def _problem(resp, status):
    assert resp.status == status, await resp.text()
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    doc = await resp.json(content_type=None)
    assert doc["status"] == status
    assert {"type", "title", "status", "detail"} <= set(doc)
    return doc


# --- 201 ---------------------------------------------------------------------------------------


async def test_accepted_signal_is_stored_exactly_with_defaults(api):
    resp = await api.post(good_body(instrument="eurUSD"))
    assert resp.status == 201, await resp.text()
    doc = await resp.json()
    assert set(doc) == {"id", "status", "received_at"}
    assert doc["status"] == "accepted"
    assert resp.headers["Location"] == f"/api/v1/signals/{doc['id']}"
    assert doc["received_at"].endswith("Z")

    [row] = await rows(api.db, Signal)
    assert row.id == doc["id"]
    assert row.producer_id == api.producer.id
    assert row.instrument == "EURUSD"
    assert (row.entry, row.sl, row.tp) == (Decimal("1.0845"), Decimal("1.0815"), Decimal("1.0905"))
    assert row.risk_percent == api.ctx.settings.default_risk_percent
    assert row.ttl_seconds == api.ctx.settings.approval_ttl_seconds
    assert row.expires_at - row.received_at == timedelta(seconds=row.ttl_seconds)
    assert row.status == "accepted" and row.note == "breakout"
    assert row.signature is not None and len(row.signature) == 64


async def test_decimals_are_parsed_exactly_never_through_float(api):
    # 0.1 + 0.2 style values and many digits: a float round trip would change them
    body = good_body(
        instrument="USDJPY",
        entry="151.123456789012",
        sl=151.023456789011,
        tp=151.323456789013,
        risk_percent=0.3,
        confidence=0.1,
        ttl_seconds=120,
    )
    resp = await api.post(body)
    assert resp.status == 201, await resp.text()
    [row] = await rows(api.db, Signal)
    assert row.entry == Decimal("151.123456789012")
    assert row.sl == Decimal("151.023456789011")
    assert row.tp == Decimal("151.323456789013")
    assert row.risk_percent == Decimal("0.3") and row.confidence == Decimal("0.1")
    assert row.ttl_seconds == 120


async def test_market_order_without_entry_checks_sl_against_tp(sqlite_api):
    resp = await sqlite_api.post(good_body(order_type=None, entry=None, side="sell", sl="1.1", tp="1.0"))
    assert resp.status == 201, await resp.text()
    resp = await sqlite_api.post(good_body(order_type=None, entry=None, side="sell", sl="1.0", tp="1.1"))
    doc = await _problem(resp, 422)
    assert doc["errors"] == [{"field": "sl", "message": "must be above tp for a sell"}]


# --- 200 replays and 409 -----------------------------------------------------------------------


async def test_same_key_and_body_replays_the_original(api):
    first = await api.post(good_body(), key="order-1")
    assert first.status == 201
    original = await first.json()
    time.sleep(0.01)
    # a retry is signed again (new t), possibly with other whitespace and key order
    retry_body = json.dumps(dict(reversed(list(good_body().items()))), indent=2)
    again = await api.post(retry_body, key="order-1", t=int(time.time()) - 1)
    assert again.status == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.json() == original
    assert await count(api.db, Signal) == 1
    assert await count(api.db, DomainEvent) == 1


async def test_same_key_other_body_is_a_conflict(api):
    assert (await api.post(good_body(), key="k-1")).status == 201
    resp = await api.post(good_body(tp="1.1"), key="k-1")
    doc = await _problem(resp, 409)
    assert doc["type"].endswith("idempotency_conflict")
    assert await count(api.db, Signal) == 1


async def test_body_id_is_the_key_when_no_header(api):
    assert (await api.post(good_body(id="sig-7"))).status == 201
    again = await api.post(good_body(id="sig-7"))
    assert again.status == 200 and again.headers["Idempotent-Replayed"] == "true"
    conflict = await api.post(good_body(id="sig-7", sl="1.08"))
    assert conflict.status == 409
    [row] = await rows(api.db, Signal)
    assert row.external_id == "sig-7" and row.idempotency_key == "sig-7"


async def test_without_key_or_id_the_body_hash_is_the_key(api):
    assert (await api.post(good_body())).status == 201
    assert (await api.post(good_body())).status == 200
    assert (await api.post(good_body(tp="1.1"))).status == 201
    keys = sorted(r.idempotency_key for r in await rows(api.db, Signal))
    assert all(k.startswith("sha256:") for k in keys) and len(set(keys)) == 2


async def test_exact_signature_replay_is_a_duplicate_even_with_another_key(api):
    raw = encode(good_body())
    headers = api.signed_headers(raw, key="first")
    first = await api.client.post("/api/v1/signals", data=raw, headers=headers)
    assert first.status == 201
    # an attacker replays the captured request, changing the unsigned Idempotency-Key header
    headers["Idempotency-Key"] = "second"
    replay = await api.client.post("/api/v1/signals", data=raw, headers=headers)
    assert replay.status == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert (await replay.json())["id"] == (await first.json())["id"]
    assert await count(api.db, Signal) == 1


# --- 400, 413, 415 -----------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe{}", b'{"a": NaN}', b"[1, 2"])
async def test_not_json_is_400(sqlite_api, raw):
    doc = await _problem(await sqlite_api.post(raw), 400)
    assert doc["type"].endswith("not_json")
    assert await count(sqlite_api.db, Signal) == 0


async def test_wrong_content_type_is_415(sqlite_api):
    raw = encode(good_body())
    headers = sqlite_api.signed_headers(raw)
    headers["Content-Type"] = "text/plain"
    resp = await sqlite_api.client.post("/api/v1/signals", data=raw, headers=headers)
    await _problem(resp, 415)
    del headers["Content-Type"]
    resp = await sqlite_api.client.post("/api/v1/signals", data=raw, headers=headers)
    await _problem(resp, 415)


async def test_body_over_32_kib_is_413(sqlite_api):
    raw = encode(good_body(note="x" * 40_000))
    doc = await _problem(await sqlite_api.post(raw), 413)
    assert doc["type"].endswith("body_too_large")
    assert await count(sqlite_api.db, Signal) == 0


async def _raw_exchange(harness, request: bytes, *, wait_for_answer_first: bool = False) -> bytes:
    import asyncio

    server = harness.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()


def _head(harness, path: str, extra: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-Producer-Id: {harness.producer.id}\r\n{extra}\r\n"
    ).encode()


async def test_413_without_content_length_chunked_stream_is_capped(sqlite_api):
    body = encode(good_body(note="y" * 400)) * 100  # 40+ KiB, never announced
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 4096]), body[i : i + 4096]) for i in range(0, len(body), 4096)
    )
    sig = f"t={int(time.time())},v1={sign(sqlite_api.producer.secret, body, int(time.time()))}"
    request = _head(sqlite_api, "/api/v1/signals", f"X-Signature: {sig}\r\nTransfer-Encoding: chunked\r\n")
    answer = await _raw_exchange(sqlite_api, request + chunks + b"0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"application/problem+json" in answer
    assert await count(sqlite_api.db, Signal) == 0


async def test_413_when_declared_length_is_too_big_answered_before_the_body_is_sent(sqlite_api):
    # the client claims 1 MB and sends nothing more: the answer comes at once, from the header
    request = _head(sqlite_api, "/api/v1/signals", "X-Signature: t=1,v1=00\r\nContent-Length: 1000000\r\n")
    answer = await _raw_exchange(sqlite_api, request)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert await count(sqlite_api.db, Signal) == 0


async def test_413_on_the_token_route_chunked(sqlite_api):
    body = b"[" + b"1," * 20_000 + b"1]"
    path = f"/api/v1/signals/token/{sqlite_api.producer.token}"
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    answer = await _raw_exchange(sqlite_api, request + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


async def test_a_short_content_length_cannot_smuggle_the_rest_of_the_body(sqlite_api):
    # Content-Length says 20 but 40 KiB follow: only the declared 20 bytes can be the body (HTTP
    # framing); they fail the signature, the surplus is refused as a malformed next request, and
    # nothing is stored.
    import asyncio
    import re

    body = encode(good_body(note="z" * 40_000))
    t = int(time.time())
    sig = f"t={t},v1={sign(sqlite_api.producer.secret, body, t)}"
    request = _head(sqlite_api, "/api/v1/signals", f"X-Signature: {sig}\r\nContent-Length: 20\r\n")
    answer = await _raw_exchange(sqlite_api, request + body)
    statuses = re.findall(rb"HTTP/1\.[01] (\d{3})", answer)
    assert statuses and all(s.startswith(b"4") for s in statuses), answer[:200]
    await asyncio.sleep(0.1)
    assert await count(sqlite_api.db, Signal) == 0


# --- 401, 403 ----------------------------------------------------------------------------------


async def test_401_variants(sqlite_api):
    h = sqlite_api
    raw = encode(good_body())
    cases = {}
    headers = h.signed_headers(raw)
    del headers["X-Producer-Id"]
    cases["missing_producer"] = headers
    headers = h.signed_headers(raw)
    headers["X-Producer-Id"] = "00000000-0000-4000-8000-000000000000"
    cases["unknown_producer"] = headers
    headers = h.signed_headers(raw)
    del headers["X-Signature"]
    cases["missing_signature"] = headers
    headers = h.signed_headers(raw)
    headers["X-Signature"] = "sha256=abc"
    cases["malformed_signature"] = headers
    headers = h.signed_headers(raw)
    headers["X-Signature"] = f"t={int(time.time())},v1={sign('not-the-secret', raw, int(time.time()))}"
    cases["bad_signature"] = headers
    cases["stale_timestamp"] = h.signed_headers(raw, t=int(time.time()) - 301)
    for reason, headers in cases.items():
        resp = await h.client.post("/api/v1/signals", data=raw, headers=headers)
        doc = await _problem(resp, 401)
        assert doc["type"] == f"urn:tradebot:problem:{reason}", doc
    future = await h.post(good_body(), t=int(time.time()) + 301)
    assert (await _problem(future, 401))["type"].endswith("stale_timestamp")
    # inside the window on both sides is fine
    assert (await h.post(good_body(id="a"), t=int(time.time()) - 290)).status == 201
    assert (await h.post(good_body(id="b"), t=int(time.time()) + 290)).status == 201
    assert await count(h.db, Signal) == 2


async def test_signature_covers_the_body(sqlite_api):
    raw = encode(good_body())
    headers = sqlite_api.signed_headers(raw)
    tampered = raw.replace(b"1.09050", b"1.19050")
    resp = await sqlite_api.client.post("/api/v1/signals", data=tampered, headers=headers)
    assert (await _problem(resp, 401))["type"].endswith("bad_signature")


async def test_disabled_producer_is_403(api):
    assert await api.producers.disable(api.producer.id)
    doc = await _problem(await api.post(good_body()), 403)
    assert doc["type"].endswith("producer_disabled")
    assert await count(api.db, Signal) == 0
    await api.producers.enable(api.producer.id)
    assert (await api.post(good_body())).status == 201


# --- 422 ---------------------------------------------------------------------------------------


async def test_422_lists_every_bad_field(sqlite_api):
    body = {
        "instrument": "EURUSD",
        "side": "hold",
        "sl": True,
        "tp": "1.2.3",
        "ttl_seconds": 59,
        "risk_percent": 11,
        "confidence": 1.5,
        "strategy": "s" * 33,
        "colour": "red",
    }
    doc = await _problem(await sqlite_api.post(body), 422)
    fields = {e["field"]: e["message"] for e in doc["errors"]}
    assert set(fields) == {
        "side",
        "sl",
        "tp",
        "ttl_seconds",
        "risk_percent",
        "confidence",
        "strategy",
        "colour",
    }
    assert fields["colour"] == "unknown field"
    assert fields["sl"] == "must be a number or a decimal string"


async def test_422_semantic_rules(sqlite_api):
    cases = [
        (good_body(instrument="DOGEUSD"), {"instrument"}),
        (good_body(entry=None), {"entry"}),
        (good_body(order_type="stop", entry=None), {"entry"}),
        (good_body(sl="1.09", tp="1.08"), {"sl", "tp"}),
        (good_body(side="sell"), {"sl", "tp"}),
        (good_body(sl="1.0845"), {"sl"}),
        (good_body(sl="0"), {"sl"}),
        (good_body(sl="1.0000000000001"), {"sl"}),
        (good_body(tp=1e16), {"tp"}),
        (good_body(ttl_seconds=600.0), {"ttl_seconds"}),
        ({"instrument": "EURUSD"}, {"side", "sl", "tp"}),
        ([good_body()], {"(body)"}),
    ]
    for body, fields in cases:
        doc = await _problem(await sqlite_api.post(body), 422)
        assert {e["field"] for e in doc["errors"]} == fields, (body, doc)
    assert await count(sqlite_api.db, Signal) == 0


async def test_sell_with_levels_on_the_right_sides_is_accepted(sqlite_api):
    body = good_body(
        side="sell", order_type="stop", entry="2350.5", sl="2360", tp="2330", instrument="xauusd"
    )
    assert (await sqlite_api.post(body)).status == 201


@pytest.mark.parametrize("key", ["x" * 129, "tab\there", "é"])
async def test_bad_idempotency_key_is_422(sqlite_api, key):
    raw = encode(good_body())
    headers = sqlite_api.signed_headers(raw)
    headers["Idempotency-Key"] = key
    resp = await sqlite_api.client.post("/api/v1/signals", data=raw, headers=headers)
    doc = await _problem(resp, 422)
    assert doc["errors"] == [
        {"field": "Idempotency-Key", "message": "must be 1 to 128 printable ASCII characters"}
    ]


# --- 429 ---------------------------------------------------------------------------------------


async def test_rate_limit_429_with_retry_after(api):
    other = await api.producers.add("slow", rate_per_second=Decimal("0.5"), burst=2)
    statuses = [(await api.post(good_body(id=f"r{i}"), producer=other)).status for i in range(2)]
    assert statuses == [201, 201]
    resp = await api.post(good_body(id="r3"), producer=other)
    doc = await _problem(resp, 429)
    assert doc["type"].endswith("rate_limited")
    assert int(resp.headers["Retry-After"]) == 2
    # another producer has its own bucket (settings default 10/s burst 20)
    assert (await api.post(good_body(id="r4"))).status == 201
    assert await count(api.db, Signal) == 3


async def test_default_rate_limit_comes_from_settings(sqlite_db):
    from aiohttp.test_utils import TestClient, TestServer

    from engine.api import build_http_app
    from tests.support.api_world import Harness, build_context

    ctx, relay = await build_context(sqlite_db, producer_rate_per_second=Decimal(1), producer_burst=3)
    producer = await ctx.producers.add("p")
    async with TestClient(TestServer(build_http_app(ctx))) as client:
        h = Harness(client, ctx, producer, relay)
        statuses = [(await h.post(good_body(id=f"d{i}"))).status for i in range(4)]
    assert statuses == [201, 201, 201, 429]


# --- the domain event and the audit trail ------------------------------------------------------


async def test_signal_accepted_event_is_committed_with_the_signal(api):
    resp = await api.post(good_body(strategy="trend"))
    signal_id = (await resp.json())["id"]
    [event] = await rows(api.db, DomainEvent)
    assert event.type == SIGNAL_ACCEPTED
    assert event.payload["signal_id"] == signal_id
    assert event.payload["producer_id"] == api.producer.id
    assert event.payload["sl"] == "1.0815" and event.payload["strategy"] == "trend"
    assert event.processed_at is None


async def test_signal_and_event_are_one_transaction(api, monkeypatch):
    import engine.ingest.service

    # make the event row impossible to write: the signal must not be stored either
    monkeypatch.setattr(engine.ingest.service, "event_payload", lambda values: {"bad": object()})
    resp = await api.post(good_body())
    assert resp.status == 500
    assert await count(api.db, Signal) == 0
    assert await count(api.db, DomainEvent) == 0


async def test_relay_is_woken_after_commit(sqlite_db):
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    from engine.api import build_http_app
    from tests.support.api_world import Harness, build_context

    ctx, relay = await build_context(sqlite_db, relay_poll_seconds=60)  # only notify() delivers in time
    got: list = []
    arrived = asyncio.Event()

    async def subscriber(event):
        got.append(event)
        arrived.set()

    relay.subscribe("test", subscriber)
    producer = await ctx.producers.add("p")
    relay.start()
    try:
        await asyncio.sleep(0.05)
        async with TestClient(TestServer(build_http_app(ctx))) as client:
            resp = await Harness(client, ctx, producer, relay).post(good_body())
            signal_id = (await resp.json())["id"]
            await asyncio.wait_for(arrived.wait(), 5)
    finally:
        await relay.stop()
    assert [(e.type, e.payload["signal_id"]) for e in got] == [(SIGNAL_ACCEPTED, signal_id)]


async def test_refusals_store_only_an_audit_line(api):
    await api.post(b"{oops")  # 400
    await api.post(good_body(colour="red"))  # 422
    await api.post(good_body(), t=1)  # 401 stale: not authenticated, so counted, not one line per request
    audit_rows = await rows(api.db, AuditLog, AuditLog.action == "signal.refused")
    assert sorted(r.details["status"] for r in audit_rows) == [400, 422]
    by_status = {r.details["status"]: r for r in audit_rows}
    assert by_status[422].details["errors"] == [{"field": "colour", "message": "unknown field"}]
    assert by_status[422].actor == f"producer:{api.producer.id}"
    assert all(r.correlation_id for r in audit_rows)
    assert api.ctx.refusals is not None and api.ctx.refusals.pending() == 1
    await api.ctx.refusals.flush(everything=True)
    [counted] = await rows(api.db, AuditLog, AuditLog.action == "signal.unauthenticated")
    assert counted.actor == "anonymous" and counted.target == "127.0.0.1"
    assert counted.details["count"] == 1 and counted.details["reasons"] == [
        {"reason": "stale_timestamp", "count": 1}
    ]
    assert await count(api.db, Signal) == 0
    assert await count(api.db, DomainEvent) == 0


async def test_store_outage_is_503_with_retry_after_and_nothing_half_written(sqlite_api, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from tests.support.openapi import check_response

    async def store_down(statements):
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(sqlite_api.ctx.ingest._writer, "run", store_down)
    resp = await sqlite_api.post(good_body())
    doc = await _problem(resp, 503)
    assert doc["type"].endswith("store_unavailable") and resp.headers["Retry-After"] == "5"
    await check_response(resp, "/api/v1/signals", "POST")
    monkeypatch.undo()
    assert (await sqlite_api.post(good_body())).status == 201  # the producer's retry goes through
