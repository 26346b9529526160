"""/healthz, /readyz, /metrics, the correlation id and problem documents for unknown routes."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from engine.api.app import request_id
from tests.support.api_world import good_body


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_healthz(sqlite_api):
    resp = await sqlite_api.client.get("/healthz")
    assert resp.status == 200 and await resp.json() == {"status": "ok"}


async def test_readyz_names_failing_checks(api):
    resp = await api.client.get("/readyz")
    assert resp.status == 200
    doc = await resp.json()
    instance = doc.pop("instance")
    assert doc == {"status": "ok", "checks": {"database": "ok"}, "failing": []}
    assert instance["id"] and instance["leader"] is False and instance["accounts"] == []
    assert instance["redis"] == "not configured"

    async def brokers_down():
        return "mt5 account 3 disconnected"

    async def telegram_raises():
        raise ConnectionError("no route")

    async def heartbeat_hangs():
        await asyncio.sleep(10)
        return True

    readiness = api.ctx.readiness
    readiness._timeout = 0.2
    readiness.register("brokers", brokers_down)
    readiness.register("telegram", telegram_raises)
    readiness.register("heartbeat", heartbeat_hangs)
    resp = await api.client.get("/readyz")
    assert resp.status == 503
    doc = await resp.json()
    assert doc["status"] == "unavailable"
    assert sorted(doc["failing"]) == ["brokers", "heartbeat", "telegram"]
    assert doc["checks"]["database"] == "ok"
    assert doc["checks"]["brokers"] == "mt5 account 3 disconnected"
    assert "ConnectionError" in doc["checks"]["telegram"]
    metrics = _samples(await (await api.client.get("/metrics")).text())
    assert metrics[("tradebot_ready_check", (("check", "telegram"),))] == 0
    assert metrics[("tradebot_ready_check", (("check", "database"),))] == 1


async def test_readyz_503_when_the_database_is_down(sqlite_api):
    async def db_down():
        return False

    sqlite_api.ctx.readiness.register("database", db_down)
    resp = await sqlite_api.client.get("/readyz")
    assert resp.status == 503 and (await resp.json())["failing"] == ["database"]


async def test_readyz_degraded_part_shows_but_keeps_the_instance_ready(sqlite_api):
    async def local_share():
        return "local share 1/3: Redis unreachable (ConnectionError)"

    sqlite_api.ctx.readiness.register("telegram_budget", local_share, required=False)
    resp = await sqlite_api.client.get("/readyz")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["status"] == "degraded" and doc["failing"] == [] and doc["degraded"] == ["telegram_budget"]
    assert doc["checks"]["telegram_budget"].startswith("local share 1/3")


async def test_metrics_count_requests_outcomes_and_latency(sqlite_api):
    h = sqlite_api
    assert (await h.post(good_body(id="m1"))).status == 201
    assert (await h.post(good_body(id="m1"))).status == 200
    assert (await h.post(good_body(colour="x"))).status == 422
    assert (await h.post(b"{")).status == 400
    await h.client.post(
        f"/api/v1/signals/token/{h.producer.token}", data=b"{}", headers={"Content-Type": "application/json"}
    )
    resp = await h.client.get("/metrics")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    m = _samples(text)
    route = "/api/v1/signals"
    assert m[("tradebot_http_requests_total", (("method", "POST"), ("route", route), ("status", "201")))] == 1
    assert m[("tradebot_http_requests_total", (("method", "POST"), ("route", route), ("status", "422")))] == 1
    token_route = ("route", "/api/v1/signals/token/{token}")
    assert m[("tradebot_http_requests_total", (("method", "POST"), token_route, ("status", "422")))] == 1
    assert h.producer.token not in text
    assert m[("tradebot_signals_accepted_total", ())] == 1
    assert m[("tradebot_signals_replayed_total", ())] == 1
    assert m[("tradebot_signals_refused_total", (("reason", "invalid_signal"),))] == 2
    assert m[("tradebot_signals_refused_total", (("reason", "not_json"),))] == 1
    assert m[("tradebot_signal_ingest_seconds_count", ())] == 5


async def test_each_app_has_its_own_registry(sqlite_api):
    from engine.observability.metrics import Metrics

    a, b = Metrics(), Metrics()
    a.signals_accepted.inc()
    assert b"tradebot_signals_accepted_total 1.0" in a.render()
    assert b"tradebot_signals_accepted_total 0.0" in b.render()


async def test_request_id_is_honoured_when_sane_and_echoed(sqlite_api):
    from engine.store.models import AuditLog
    from tests.support.queries import rows

    resp = await sqlite_api.client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert resp.headers["X-Request-Id"] == "abc-123"
    resp = await sqlite_api.client.get("/healthz", headers={"X-Request-Id": "bad id with spaces"})
    generated = resp.headers["X-Request-Id"]
    assert generated != "bad id with spaces" and len(generated) == 16
    resp = await sqlite_api.client.get("/healthz")
    assert len(resp.headers["X-Request-Id"]) == 16 and resp.headers["X-Request-Id"] != generated
    # the id is the correlation id of everything the request does (here: the audit line)
    raw = b"{"
    headers = sqlite_api.signed_headers(raw)
    headers["X-Request-Id"] = "req-42"
    resp = await sqlite_api.client.post("/api/v1/signals", data=raw, headers=headers)
    assert (await resp.json(content_type=None))["instance"] == "urn:tradebot:request:req-42"
    [line] = await rows(sqlite_api.db, AuditLog, AuditLog.action == "signal.refused")
    assert line.correlation_id == "req-42"


def test_request_id_rules():
    assert request_id("abc") == ("abc", True)
    assert request_id("0F8FAD5B-D9CB-469F-A165-70867728950E") == ("0f8fad5bd9cb469fa16570867728950e", True)
    for bad in ("x" * 33, "a b", "é", "a\nb", ""):
        cid, honoured = request_id(bad)
        assert not honoured and len(cid) == 16
    assert request_id(None)[1] is False


async def test_unknown_route_and_method_are_problem_documents(sqlite_api):
    resp = await sqlite_api.client.get("/api/v1/nothing")
    assert resp.status == 404 and resp.headers["Content-Type"] == "application/problem+json"
    resp = await sqlite_api.client.delete("/api/v1/signals")
    assert resp.status == 405 and (await resp.json(content_type=None))["status"] == 405
    assert "POST" in resp.headers["Allow"]


async def test_extra_routes_and_subapps_can_be_added(sqlite_db):
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from engine.api import build_http_app
    from tests.support.api_world import build_context

    async def hook(_request):
        return web.json_response({"ok": True})

    sub = web.Application()
    sub.router.add_get("/ping", hook)
    ctx, _ = await build_context(sqlite_db)
    app = build_http_app(ctx, extra_routes=[web.post("/telegram/webhook", hook)], subapps={"/admin": sub})
    app.router.add_get("/later", hook)
    async with TestClient(TestServer(app)) as client:
        for method, path in (("POST", "/telegram/webhook"), ("GET", "/admin/ping"), ("GET", "/later")):
            resp = await client.request(method, path)
            assert resp.status == 200 and "X-Request-Id" in resp.headers
