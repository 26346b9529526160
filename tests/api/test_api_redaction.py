"""Secrets, tokens and signatures never reach a log line or an audit line."""

from __future__ import annotations

import io
import time

import aiohttp

from engine.api import build_http_app, start_http_server
from engine.api.server import safe_path
from engine.ingest.signing import signature_header
from engine.observability.logs import setup_logging
from engine.store.models import AuditLog
from tests.support.api_world import build_context, encode, good_body
from tests.support.queries import rows


async def test_logs_and_audit_lines_hold_no_secret_material(sqlite_db):
    buf = io.StringIO()
    setup_logging("DEBUG", json_lines=True, stream=buf)
    ctx, _relay = await build_context(sqlite_db)
    producer = await ctx.producers.add("quiet")
    # a second producer whose token is never registered with the redactor by a lookup
    runner = await start_http_server(build_http_app(ctx), "127.0.0.1", 0)
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    signatures = []
    try:
        async with aiohttp.ClientSession() as client:

            async def signed(raw, t=None, secret=producer.secret):
                header = signature_header(secret, raw, t)
                signatures.append(header.split("v1=")[1])
                headers = {
                    "Content-Type": "application/json",
                    "X-Producer-Id": producer.id,
                    "X-Signature": header,
                }
                async with client.post(base + "/api/v1/signals", data=raw, headers=headers) as resp:
                    return resp.status

            assert await signed(encode(good_body())) == 201
            assert await signed(encode(good_body(colour=1))) == 422
            assert await signed(encode(good_body()), t=int(time.time()) - 1000) == 401
            assert await signed(encode(good_body(id="w")), secret="wrong-secret-value") == 401
            token_url = f"{base}/api/v1/signals/token/{producer.token}"
            for body in (encode(good_body(id="t1")), b"{bad"):
                async with client.post(
                    token_url, data=body, headers={"Content-Type": "application/json"}
                ) as resp:
                    assert resp.status in (201, 400)
            guessed = "G" * 43
            async with client.post(
                f"{base}/api/v1/signals/token/{guessed}",
                data=b"{}",
                headers={"Content-Type": "application/json"},
            ) as resp:
                assert resp.status == 401
    finally:
        await runner.cleanup()
        setup_logging("INFO")
    logs = buf.getvalue()
    assert "/api/v1/signals/token/***" in logs  # the access log did see those requests
    audit_text = repr([(r.actor, r.target, r.details) for r in await rows(sqlite_db, AuditLog)])
    for text in (logs, audit_text):
        assert producer.secret not in text
        assert producer.token not in text
        assert guessed not in text
        for v1 in signatures:
            assert v1 not in text


def test_safe_path_masks_tokens():
    assert safe_path("/api/v1/signals/token/abc_DEF-123") == "/api/v1/signals/token/***"
    assert safe_path("/api/v1/signals/token/abc/0f8f") == "/api/v1/signals/token/***/0f8f"
    assert safe_path("/api/v1/signals") == "/api/v1/signals"
