"""The OpenAPI document is true: every route is in it, and real responses validate against it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from jsonschema import Draft202012Validator

from engine.api.openapi import DOCUMENT
from engine.ingest.signing import signature_header
from tests.support.api_world import encode, good_body
from tests.support.openapi import check_response, schema_validator


async def test_document_is_served_and_schemas_are_valid(sqlite_api):
    resp = await sqlite_api.client.get("/api/v1/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc == DOCUMENT and doc["openapi"].startswith("3.1")
    for schema in DOCUMENT["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    await check_response(resp, "/api/v1/openapi.json", "GET")


async def test_every_route_is_documented_and_every_documented_route_exists(sqlite_api):
    app = sqlite_api.client.server.app
    served = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "*"):
            continue
        served.add((route.resource.canonical, route.method.lower()))
    documented = {(path, method) for path, ops in DOCUMENT["paths"].items() for method in ops}
    assert served == documented


async def test_real_responses_match_the_document(sqlite_api):
    h = sqlite_api
    post = "/api/v1/signals"
    await check_response(await h.post(good_body(id="o1")), post, "POST")  # 201
    await check_response(await h.post(good_body(id="o1")), post, "POST")  # 200
    await check_response(await h.post(b"{"), post, "POST")  # 400
    await check_response(await h.post(good_body(), t=1), post, "POST")  # 401
    await check_response(await h.post(good_body(id="o1", tp="1.2")), post, "POST")  # 409
    await check_response(await h.post(encode(good_body(note="n" * 40000))), post, "POST")  # 413
    await check_response(
        await h.post(good_body(), headers={"Content-Type": "text/plain"}), post, "POST"
    )  # 415
    await check_response(await h.post(good_body(colour=1)), post, "POST")  # 422
    slow = await h.producers.add("slow", rate_per_second=Decimal("0.01"), burst=1)
    await h.post(good_body(id="s1"), producer=slow)
    limited = await h.post(good_body(id="s2"), producer=slow)
    assert limited.status == 429
    await check_response(limited, post, "POST")
    await h.producers.disable(slow.id)
    await check_response(await h.post(good_body(id="s3"), producer=slow), post, "POST")  # 403

    token = "/api/v1/signals/token/{token}"
    url = f"/api/v1/signals/token/{h.producer.token}"
    json_ct = {"Content-Type": "application/json"}
    created = await h.client.post(url, data=encode(good_body(id="tk")), headers=json_ct)
    await check_response(created, token, "POST")
    await check_response(
        await h.client.post("/api/v1/signals/token/" + "q" * 40, data=b"{}", headers=json_ct), token, "POST"
    )

    signal_id = (await created.json())["id"]
    headers = {"X-Producer-Id": h.producer.id, "X-Signature": signature_header(h.producer.secret, b"")}
    get = "/api/v1/signals/{signal_id}"
    await check_response(await h.client.get(f"/api/v1/signals/{signal_id}", headers=headers), get, "GET")
    await check_response(await h.client.get("/api/v1/signals/missing", headers=headers), get, "GET")
    await check_response(await h.client.get(f"/api/v1/signals/{signal_id}"), get, "GET")
    await check_response(
        await h.client.get(f"/api/v1/signals/token/{h.producer.token}/{signal_id}"),
        "/api/v1/signals/token/{token}/{signal_id}",
        "GET",
    )
    await check_response(await h.client.get("/healthz"), "/healthz", "GET")
    await check_response(await h.client.get("/readyz"), "/readyz", "GET")

    async def down():
        return False

    h.ctx.readiness.register("brokers", down)
    await check_response(await h.client.get("/readyz"), "/readyz", "GET")
    await check_response(await h.client.get("/metrics"), "/metrics", "GET")


@pytest.mark.parametrize(
    "body,valid",
    [
        (good_body(), True),
        (good_body(risk_percent=2, ttl_seconds=3600, confidence="0.5", strategy="x", id="a"), True),
        (good_body(colour="red"), False),
        (good_body(side="hold"), False),
        (good_body(ttl_seconds=30), False),
        (good_body(sl="1,08"), False),
        ({"instrument": "EURUSD", "side": "buy"}, False),
    ],
)
async def test_request_schema_agrees_with_the_server(sqlite_api, body, valid):
    validator = schema_validator({"$ref": "#/components/schemas/SignalIn"})
    assert validator.is_valid(body) is valid
    resp = await sqlite_api.post(body)
    assert (resp.status == 201) is valid, await resp.text()


def test_document_describes_the_signing_scheme():
    text = DOCUMENT["info"]["description"]
    assert "HMAC-SHA256" in text and "<t>.<raw body>" in text and "300" in text
