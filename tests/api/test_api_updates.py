"""``POST /api/v1/signals/<id>/updates`` and its progress: answered like a signal, against the document."""

from __future__ import annotations

import json
import time

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import func, select

from engine.api.openapi import DOCUMENT
from engine.ingest.signing import signature_header
from engine.store.models import AuditLog, DomainEvent, SignalUpdate
from tests.support.api_world import encode, good_body

UPDATES = "/api/v1/signals/{signal_id}/updates"
PROGRESS = "/api/v1/signals/{signal_id}/updates/{update_id}"


async def _check(resp, path, method):
    op = DOCUMENT["paths"][path][method.lower()]
    status = str(resp.status)
    assert status in op["responses"], f"{method} {path} answered {status}, which is not documented"
    spec = op["responses"][status]
    for header, header_spec in spec.get("headers", {}).items():
        if header_spec.get("required"):
            assert header in resp.headers
    content = spec.get("content", {})
    if content:
        schema = content[resp.headers["Content-Type"].split(";")[0]].get("schema")
        if schema is not None:
            Draft202012Validator({**schema, "components": DOCUMENT["components"]}).validate(
                await resp.json(content_type=None)
            )


async def _signal(api, **changes) -> str:
    resp = await api.post(good_body(id="setup-7", **changes))
    assert resp.status == 201
    return (await resp.json())["id"]


async def _update(api, ref: str, body, *, key=None, producer=None, t=None):
    raw = encode(body)
    headers = api.signed_headers(raw, key=key, producer=producer, t=t)
    return await api.client.post(f"/api/v1/signals/{ref}/updates", data=raw, headers=headers)


async def _count(api) -> int:
    async with api.db.sessions() as s:
        return int(await s.scalar(select(func.count(SignalUpdate.id))) or 0)


@pytest.mark.parametrize(
    "body",
    [
        {"action": "move_sl", "sl": "1.0830"},
        {"action": "move_sl", "sl": "entry"},
        {"action": "move_tp", "target": 1, "price": 1.0920},
        {"action": "close", "percent": 50},
        {"action": "close"},
        {"action": "cancel"},
        {"action": "note", "text": "careful: NFP at 13:30"},
    ],
)
async def test_each_action_is_accepted_with_an_id_and_its_progress(api, body) -> None:
    signal_id = await _signal(api)
    resp = await _update(api, signal_id, body)
    assert resp.status == 202, await resp.text()
    await _check(resp, UPDATES, "POST")
    answer = await resp.json()
    assert resp.headers["Location"] == f"/api/v1/signals/{signal_id}/updates/{answer['id']}"
    path = resp.headers["Location"]
    get = await api.client.get(path, headers=api.signed_headers(b""))
    assert get.status == 200
    await _check(get, PROGRESS, "GET")
    view = await get.json()
    assert view["action"] == body["action"] and view["counts"]["pending"] == 0
    async with api.db.sessions() as s:
        [event] = (await s.scalars(select(DomainEvent).where(DomainEvent.type == "signal.updated"))).all()
    assert event.payload["update_id"] == answer["id"]


async def test_the_producers_own_id_replays_and_conflicts(api) -> None:
    signal_id = await _signal(api)
    first = await _update(api, "setup-7", {"action": "close", "percent": 50})
    assert first.status == 202
    again = await _update(api, signal_id, {"action": "close", "percent": 50})  # same update, other ref
    assert again.status == 200 and again.headers["Idempotent-Replayed"] == "true"
    await _check(again, UPDATES, "POST")
    assert (await again.json())["id"] == (await first.json())["id"]
    # (another second: the exact same signed request within a second would be the same delivery)
    later = int(time.time()) + 2
    keyed = await _update(api, signal_id, {"action": "close", "percent": 50}, key="half-2", t=later)
    assert keyed.status == 202  # a second half, on purpose: its own key
    conflict = await _update(api, signal_id, {"action": "close", "percent": 25}, key="half-2")
    assert conflict.status == 409
    await _check(conflict, UPDATES, "POST")
    assert await _count(api) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "explode"}, "action"),
        ({"sl": "1.08"}, "action"),
        ({"action": "move_sl"}, "sl"),
        ({"action": "move_sl", "sl": "soon"}, "sl"),
        ({"action": "move_sl", "sl": -1}, "sl"),
        ({"action": "move_sl", "sl": "1.08", "percent": 50}, "percent"),
        ({"action": "move_tp", "target": 1}, "price"),
        ({"action": "move_tp", "target": 5, "price": "1.09"}, "target"),
        ({"action": "close", "percent": 0}, "percent"),
        ({"action": "close", "percent": 101}, "percent"),
        ({"action": "close", "percent": "50"}, "percent"),
        ({"action": "note"}, "text"),
        ({"action": "note", "text": "x" * 501}, "text"),
        ({"action": "cancel", "why": "changed my mind"}, "why"),
        ([{"action": "cancel"}], "(body)"),
    ],
)
async def test_bad_bodies_are_422_naming_the_field_and_write_nothing(api, body, field) -> None:
    signal_id = await _signal(api)
    resp = await _update(api, signal_id, body)
    assert resp.status == 422, await resp.text()
    await _check(resp, UPDATES, "POST")
    problem = await resp.json()
    assert field in [e["field"] for e in problem["errors"]], problem
    assert await _count(api) == 0
    async with api.db.sessions() as s:
        refused = await s.scalar(select(func.count(AuditLog.id)).where(AuditLog.action == "signal.refused"))
    assert refused == 1


async def test_not_json_is_400(api) -> None:
    signal_id = await _signal(api)
    resp = await _update(api, signal_id, b"{not json")
    assert resp.status == 400
    assert await _count(api) == 0


async def test_unknown_signal_and_another_producers_signal_are_404(api) -> None:
    signal_id = await _signal(api)
    unknown = await _update(api, "no-such-setup", {"action": "cancel"})
    assert unknown.status == 404
    await _check(unknown, UPDATES, "POST")
    other = await api.producers.add("beta")
    theirs = await _update(api, signal_id, {"action": "cancel"}, producer=other)
    assert theirs.status == 404
    by_external = await _update(api, "setup-7", {"action": "cancel"}, producer=other)
    assert by_external.status == 404
    get = await api.client.get(
        f"/api/v1/signals/{signal_id}/updates/00000000-0000-0000-0000-000000000000",
        headers=api.signed_headers(b""),
    )
    assert get.status == 404
    assert await _count(api) == 0


async def test_signature_and_rate_limit_apply(api) -> None:
    signal_id = await _signal(api)
    raw = json.dumps({"action": "cancel"}).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Producer-Id": api.producer.id,
        "X-Signature": signature_header("wrong-secret", raw),
    }
    resp = await api.client.post(f"/api/v1/signals/{signal_id}/updates", data=raw, headers=headers)
    assert resp.status == 401
    await _check(resp, UPDATES, "POST")
    assert await _count(api) == 0


async def test_token_route(api) -> None:
    await _signal(api)
    path = f"/api/v1/signals/token/{api.producer.token}/setup-7/updates"
    resp = await api.client.post(path, json={"action": "note", "text": "hello"})
    assert resp.status == 202
    await _check(resp, "/api/v1/signals/token/{token}/{signal_id}/updates", "POST")
    update_id = (await resp.json())["id"]
    get = await api.client.get(f"/api/v1/signals/token/{api.producer.token}/setup-7/updates/{update_id}")
    assert get.status == 200
    await _check(get, "/api/v1/signals/token/{token}/{signal_id}/updates/{update_id}", "GET")
    bad = await api.client.post(
        "/api/v1/signals/token/" + "z" * 40 + "/setup-7/updates", json={"action": "cancel"}
    )
    assert bad.status == 401
