"""Headers the API reads that are not printable ASCII (bytes that are not UTF-8, say) are a 400
or 401 problem, never a 500; and the server does not name its software versions."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.support.api_world import Harness, encode, good_body


async def raw_request(harness: Harness, head: bytes, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send bytes exactly as given (aiohttp's client would refuse these headers)."""
    port = harness.client.server.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    await writer.drain()
    response = await reader.read()
    writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    header_block, _, payload = rest.partition(b"\r\n\r\n")
    headers = {}
    for line in header_block.split(b"\r\n"):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, payload


@pytest.mark.parametrize(
    ("header", "value"),
    [
        (b"X-Producer-Id", b"\xff\xfe\xfa"),
        (b"X-Producer-Id", "prödücer".encode()),
        (b"X-Signature", b"t=1,v1=\xff\xff"),
        (b"X-Signature", "t=1,v1=é".encode()),
    ],
)
async def test_non_ascii_auth_headers_are_a_400_problem(
    sqlite_api: Harness, header: bytes, value: bytes
) -> None:
    raw = encode(good_body())
    headers = {
        b"X-Producer-Id": sqlite_api.producer.id.encode(),
        b"X-Signature": b"t=1,v1=00",
        b"Content-Type": b"application/json",
    }
    headers[header] = value
    head = b"POST /api/v1/signals HTTP/1.1\r\nHost: x\r\n" + b"".join(
        k + b": " + v + b"\r\n" for k, v in headers.items()
    )
    status, response_headers, payload = await raw_request(sqlite_api, head, raw)
    assert status == 400, payload
    assert response_headers["content-type"].startswith("application/problem+json")
    doc = json.loads(payload)
    assert doc["type"].endswith("malformed_header") and header.decode() in doc["detail"]


async def test_non_ascii_idempotency_key_is_refused_not_a_500(sqlite_api: Harness) -> None:
    raw = encode(good_body())
    signed = sqlite_api.signed_headers(raw)
    head = b"POST /api/v1/signals HTTP/1.1\r\nHost: x\r\n" + b"".join(
        k.encode() + b": " + v.encode() + b"\r\n" for k, v in signed.items()
    )
    status, _headers, payload = await raw_request(sqlite_api, head + b"Idempotency-Key: \xff\xfe\r\n", raw)
    assert 400 <= status < 500, payload


async def test_non_ascii_token_in_the_url_is_a_401(sqlite_api: Harness) -> None:
    head = (
        b"POST /api/v1/signals/token/%FF%FE"
        + b"a" * 30
        + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    )
    status, _headers, payload = await raw_request(sqlite_api, head, b"{}")
    assert status == 401, payload


async def test_server_header_names_no_versions(sqlite_api: Harness) -> None:
    for path in ("/healthz", "/no-such-page"):
        resp = await sqlite_api.client.get(path)
        assert resp.headers["Server"] == "tradebot"
