"""One rule for text on both databases: control characters (other than tab and newline) in a text
field are refused with 422 naming the field, never stored (SQLite) or a 500 (PostgreSQL)."""

from __future__ import annotations

import asyncio
import json

import pytest
from yarl import URL

from engine.ingest.producers import ProducerError
from engine.ingest.signing import signature_header
from engine.store.models import AuditLog, Signal
from tests.support.api_world import good_body
from tests.support.queries import count, rows

CONTROLS = ["\x00", "\x01", "\x1b", "\x7f", "\r"]


async def _refused(resp, field: str) -> None:
    assert resp.status == 422, await resp.text()
    doc = await resp.json(content_type=None)
    assert [e["field"] for e in doc["errors"]] == [field], doc
    assert "control characters" in doc["errors"][0]["message"]


@pytest.mark.parametrize("field", ["id", "strategy", "note", "instrument"])
async def test_nul_in_a_text_field_is_422_naming_it_on_both_databases(api, field):
    resp = await api.post(good_body(**{field: "ab\x00cd"}))
    await _refused(resp, field)
    assert await count(api.db, Signal) == 0
    [refusal] = await rows(api.db, AuditLog, AuditLog.action == "signal.refused")
    assert refusal.action == "signal.refused" and refusal.details["errors"][0]["field"] == field


@pytest.mark.parametrize("char", CONTROLS)
async def test_every_control_character_is_refused(api, char):
    await _refused(await api.post(good_body(note=f"line{char}")), "note")
    assert await count(api.db, Signal) == 0


async def test_tab_and_newline_are_kept(api):
    resp = await api.post(good_body(note="two\tcolumns\nand a second line"))
    assert resp.status == 201, await resp.text()
    [signal] = await rows(api.db, Signal)
    assert signal.note == "two\tcolumns\nand a second line"


async def test_nul_written_as_a_json_escape_is_refused_too(api):
    raw = json.dumps(good_body(strategy="s")).replace('"s"', '"s\\u0000"').encode()
    await _refused(await api.post(raw), "strategy")


@pytest.mark.parametrize("key", ["key\x00", "key\x01", "ke\ty"])
async def test_a_control_character_in_the_idempotency_key_is_never_a_500(api, key):
    """The HTTP parser refuses NUL and most control characters in a header (400) before the app
    sees them; what gets through (a tab) is refused by the app with a 422 naming the header."""
    raw = json.dumps(good_body()).encode()
    headers = api.signed_headers(raw)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    request = (
        f"POST /api/v1/signals HTTP/1.1\r\nHost: x\r\n{head}Idempotency-Key: {key}\r\n"
        f"Content-Length: {len(raw)}\r\nConnection: close\r\n\r\n"
    ).encode() + raw
    reader, writer = await asyncio.open_connection(api.client.host, api.client.port)
    writer.write(request)
    answer = await reader.read()
    writer.close()
    status = int(answer[9:12])
    assert status in (400, 422), answer
    if status == 422:
        doc = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert [e["field"] for e in doc["errors"]] == ["Idempotency-Key"]
    assert await count(api.db, Signal) == 0


async def test_nul_in_a_signal_id_of_the_path_is_422_not_500(api):
    headers = {"X-Producer-Id": api.producer.id, "X-Signature": signature_header(api.producer.secret, b"")}
    resp = await api.client.get(URL("/api/v1/signals/ab%00cd", encoded=True), headers=headers)
    await _refused(resp, "signal_id")


async def test_a_producer_name_with_a_control_character_is_refused(api):
    with pytest.raises(ProducerError, match="control characters"):
        await api.producers.add("beta\x00")
