"""The admin REST API: bearer tokens (401 / 403), the command layer's results, problem documents,
and every answer valid against the OpenAPI document."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from jsonschema import Draft202012Validator

from engine.api import build_http_app
from engine.api.openapi import DOCUMENT
from engine.ops.tokens import AdminTokens
from engine.store.db import Database
from tests.support.ops import OpsWorld, ops_world
from tradebot.app import build_api_context


@dataclass
class Admin:
    client: TestClient
    world: OpsWorld
    tokens: AdminTokens

    async def call(self, method: str, path: str, token: str | None = None, **kw: Any) -> ClientResponse:
        headers = dict(kw.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        response = await self.client.request(method, f"/api/v1/admin/{path}", headers=headers, **kw)
        await check(response, f"/api/v1/admin/{path.split('?')[0]}", method)
        return response


async def check(response: ClientResponse, path: str, method: str) -> None:
    """The answer's status, content type and body are what the OpenAPI document says."""
    operation = DOCUMENT["paths"][path][method.lower()]
    spec = operation["responses"].get(str(response.status))
    assert spec is not None, f"{method} {path} answered {response.status}, which is not documented"
    content_type = response.headers["Content-Type"].split(";")[0]
    assert content_type in spec["content"], f"{content_type} not documented for {response.status}"
    schema = spec["content"][content_type]["schema"]
    Draft202012Validator({**schema, "components": DOCUMENT["components"]}).validate(
        await response.json(content_type=None)
    )


@pytest.fixture
async def admin(db: Database) -> AsyncIterator[Admin]:
    async with ops_world(db) as world:
        services = world.services
        ctx = build_api_context(services)
        client = TestClient(TestServer(build_http_app(ctx), host="127.0.0.1"))
        await client.start_server()
        try:
            yield Admin(client, world, AdminTokens(services.db))
        finally:
            await client.close()


async def test_tokens_and_scopes(admin: Admin) -> None:
    reader = (await admin.tokens.add("dash", "read")).token
    trader = (await admin.tokens.add("ci", "trade")).token
    revoked = (await admin.tokens.add("old", "trade")).token
    assert await admin.tokens.revoke("old") and not await admin.tokens.revoke("old")

    for path, method in (("status", "GET"), ("positions", "GET"), ("pause", "POST"), ("closeall", "POST")):
        for token in (None, revoked, "tba_" + "x" * 43, "not-a-token"):
            refused = await admin.call(method, path, token)
            assert refused.status == 401, (path, token)
            assert refused.headers["WWW-Authenticate"].startswith("Bearer")
            assert refused.headers["Content-Type"].startswith("application/problem+json")
    for path in ("pause", "resume", "closeall"):
        forbidden = await admin.call("POST", path, reader)
        assert forbidden.status == 403 and "read token" in (await forbidden.json())["detail"]
    assert not await admin.world.services.control.is_paused()  # nothing happened
    assert await admin.world.audit("admin.pause") == []

    status = await admin.call("GET", "status", reader)
    assert status.status == 200 and (await status.json())["paused"] is False
    paused = await admin.call("POST", "pause", trader)
    assert paused.status == 200 and (await paused.json())["changed"] is True
    assert await admin.world.services.control.is_paused()
    [line] = await admin.world.audit("admin.pause")
    assert (line.actor, line.target) == ("token:ci", "everything")
    listed = {t.name: t for t in await admin.tokens.list()}
    assert listed["ci"].last_used_at is not None and listed["old"].revoked_at is not None
    assert listed["dash"].scope == "read"


async def test_positions_and_closeall_with_a_trade_token(admin: Admin) -> None:
    token = (await admin.tokens.add("ci", "trade")).token
    await admin.world.fill(0)
    await admin.world.place_limit(1)
    account = admin.world.pairs[1][1].id
    report = await (await admin.call("GET", "positions", token)).json()
    assert (report["positions_total"], report["orders_total"]) == (1, 1)
    assert report["orders"][0]["status"] == "placed" and Decimal(report["orders"][0]["price"]) == Decimal(
        "1.095"
    )
    one = await (await admin.call("GET", f"positions?account={account}", token)).json()
    assert one["scope"] == {"kind": "account", "id": account} and one["positions_total"] == 0

    closed = await admin.call("POST", "closeall", token, json={"account": account})
    body = await closed.json()
    assert closed.status == 200 and (body["orders_cancelled"], body["requested"]) == (1, 0)
    everything = await (await admin.call("POST", "closeall", token)).json()
    assert (everything["closed"], everything["requested"], everything["orders_requested"]) == (1, 1, 0)
    lines = await admin.world.audit("admin.closeall")
    assert [(line.actor, line.target) for line in lines] == [
        ("token:ci", f"account:{account}"),
        ("token:ci", "everything"),
    ]


async def test_bad_scopes_are_problems_that_change_nothing(admin: Admin) -> None:
    token = (await admin.tokens.add("ci", "trade")).token
    bad: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "positions?account=abc", {}),
        ("GET", "positions?account=1&subscriber=2", {}),
        ("POST", "pause", {"json": {"account": -1}}),
        ("POST", "pause", {"json": {"colour": "red"}}),
        ("POST", "pause", {"json": [1]}),
        ("POST", "pause", {"json": {"account": 1.5}}),
    ]
    for method, path, kw in bad:
        answer = await admin.call(method, path, token, **kw)
        assert answer.status == 422, (path, kw, answer.status)
    assert (
        await admin.call("POST", "pause", token, data=b"{", headers={"Content-Type": "application/json"})
    ).status == 400
    assert (
        await admin.call("POST", "pause", token, data=b"x", headers={"Content-Type": "text/plain"})
    ).status == 415
    missing = await admin.call("POST", "resume", token, json={"account": 999_999})
    assert missing.status == 404 and (await missing.json())["type"].endswith("not_found")
    assert await admin.world.audit("admin.pause") == [] and await admin.world.audit("admin.resume") == []
