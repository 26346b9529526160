"""Fuzz: thousands of malformed requests against the real server: no 5xx, no signal stored."""

from __future__ import annotations

import http.client
import json
import time
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.ingest.schema import BodyNotJSON, SignalInvalid, parse_signal
from engine.ingest.signing import sign
from engine.store.models import Signal
from tests.support.api_world import LiveServer, good_body
from tests.support.queries import count

FIELDS = [
    "id",
    "instrument",
    "side",
    "order_type",
    "entry",
    "sl",
    "tp",
    "risk_percent",
    "ttl_seconds",
    "strategy",
    "confidence",
    "note",
]
INSTRUMENTS = frozenset({"EURUSD", "XAUUSD", "USDJPY"})

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.text(max_size=40),
    st.sampled_from(
        ["buy", "sell", "market", "limit", "stop", "EURUSD", "xauusd", "1.0845", "1e400", "-0", ""]
    ),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
bodies = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=12), json_values, max_size=12),
    st.builds(
        lambda changes: {**good_body(), **changes},
        st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=3),
    ),
    json_values,
)


def _raw(draw_body, mode: str, noise: bytes) -> bytes:
    if mode == "bytes":
        return noise
    text = json.dumps(draw_body, default=str)
    if mode == "truncate":
        return text[: max(0, len(text) // 2)].encode()
    if mode == "bigfloat":
        return text.replace("1.0", "1" + "0" * 400 + ".5", 1).encode()
    return text.encode()


def _ensure_invalid(raw: bytes) -> bytes:
    """A fuzz request must never be a valid signal: add an unknown field to one that would be."""
    try:
        parse_signal(raw, INSTRUMENTS)
    except (BodyNotJSON, SignalInvalid):
        return raw
    doc = json.loads(raw, parse_float=Decimal)
    doc["fuzz_unknown_field"] = 1
    return json.dumps(doc, default=str).encode()


def test_malformed_requests_never_5xx_and_store_nothing(sqlite_url):
    with LiveServer(sqlite_url, producer_rate=Decimal(100_000)) as server:
        _fuzz(server)


def _fuzz(server: LiveServer) -> None:
    producer = server.producer
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    statuses: dict[int, int] = {}

    @settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(
        body=bodies,
        mode=st.sampled_from(["json", "json", "json", "truncate", "bytes", "bigfloat"]),
        noise=st.binary(max_size=200),
        auth=st.sampled_from(
            ["good", "good", "good", "stale", "bad", "none", "malformed", "unknown", "token", "badtoken"]
        ),
        ctype=st.sampled_from(
            ["application/json"] * 8
            + ["application/json; charset=utf-8", "text/plain", "", "application/x-www-form-urlencoded"]
        ),
        key=st.one_of(
            st.none(), st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=140)
        ),
        garbage_header=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=80),
    )
    def run(body, mode, noise, auth, ctype, key, garbage_header):
        raw = _ensure_invalid(_raw(body, mode, noise))
        now = int(time.time())
        headers = {"X-Producer-Id": producer.id}
        if ctype:
            headers["Content-Type"] = ctype
        if key is not None and key.strip():
            headers["Idempotency-Key"] = key.strip()
        path = "/api/v1/signals"
        if auth == "good":
            headers["X-Signature"] = f"t={now},v1={sign(producer.secret, raw, now)}"
        elif auth == "stale":
            headers["X-Signature"] = f"t={now - 400},v1={sign(producer.secret, raw, now - 400)}"
        elif auth == "bad":
            headers["X-Signature"] = f"t={now},v1={sign('other', raw, now)}"
        elif auth == "malformed":
            headers["X-Signature"] = garbage_header
        elif auth == "unknown":
            headers["X-Producer-Id"] = garbage_header or "x"
            headers["X-Signature"] = f"t={now},v1={'0' * 64}"
        elif auth == "token":
            path = f"/api/v1/signals/token/{producer.token}"
        elif auth == "badtoken":
            path = f"/api/v1/signals/token/{garbage_header.replace('/', '_').replace('?', '_').replace('#', '_') or 'x'}"
        conn.request("POST", path, body=raw, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        statuses[resp.status] = statuses.get(resp.status, 0) + 1
        assert resp.status < 500, (resp.status, payload[:300], raw[:200], headers)
        assert not 200 <= resp.status < 300, (resp.status, payload[:300], raw[:200])
        if resp.getheader("Connection", "").lower() == "close":
            conn.close()

    run()
    conn.close()
    assert sum(statuses.values()) >= 1500
    assert {400, 401, 415, 422} <= set(statuses), statuses
    assert statuses[422] + statuses[400] > 500, statuses  # many reach the parser and the validator
    assert server.call(count(server.ctx.db, Signal)) == 0
