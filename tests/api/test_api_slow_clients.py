"""Slowloris and connection floods, over real sockets: the header deadline, the idle timeout and the
per-client connection cap of the engine's HTTP server (engine.api.connections)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web

from engine.api import build_http_app, start_http_server
from engine.api.connections import ConnectionLimits
from engine.observability.metrics import Metrics
from engine.settings import Settings
from engine.store.db import Database
from tradebot.app import build_api_context, build_services

HEADER_TIMEOUT = 1.5
IDLE_TIMEOUT = 4.0
PER_CLIENT = 3
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"


@dataclass
class Server:
    port: int
    metrics: Metrics
    runner: web.AppRunner

    async def connect(self, source: str = "127.0.0.1") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port, local_addr=(source, 0))

    def closed(self, reason: str) -> float:
        sample = self.metrics.registry.get_sample_value(
            "tradebot_http_connections_closed_total", {"reason": reason}
        )
        return sample or 0.0


@pytest.fixture
async def server(sqlite_db: Database) -> AsyncIterator[Server]:
    settings = Settings(_env_file=None, database_url=sqlite_db.url)  # type: ignore[call-arg]
    metrics = Metrics()
    ctx = build_api_context(build_services(settings, db=sqlite_db), metrics=metrics)
    limits = ConnectionLimits(
        header_timeout_seconds=HEADER_TIMEOUT,
        idle_timeout_seconds=IDLE_TIMEOUT,
        max_connections_per_client=PER_CLIENT,
    )
    runner = await start_http_server(build_http_app(ctx), "127.0.0.1", 0, limits=limits, metrics=metrics)
    try:
        yield Server(runner.addresses[0][1], metrics, runner)
    finally:
        await runner.cleanup()


async def _response(reader: asyncio.StreamReader) -> int:
    """Read one response (status line, headers, Content-Length body); its status."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode().split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    await asyncio.wait_for(reader.readexactly(length), 10)
    return int(lines[0].split()[1])


async def _closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    """True when the server closes the connection within ``within`` seconds."""
    try:
        return await asyncio.wait_for(reader.read(1), within) == b""
    except ConnectionResetError:
        return True


async def _drip(writer: asyncio.StreamWriter, data: bytes, every: float) -> None:
    """Send ``data`` one byte every ``every`` seconds (a slowloris client), until the server closes."""
    for byte in data:
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except (ConnectionError, OSError):
            return
        await asyncio.sleep(every)


async def test_headers_sent_one_byte_a_second_are_cut_off_at_the_header_timeout(server: Server) -> None:
    reader, writer = await server.connect()
    started = time.monotonic()
    drip = asyncio.create_task(_drip(writer, REQUEST, every=1.0))
    try:
        assert await _closed_by_server(reader, within=HEADER_TIMEOUT + 3)
        took = time.monotonic() - started
    finally:
        drip.cancel()
        writer.close()
    # closed by the header deadline, well before the idle timeout or the last byte (39 s away)
    assert HEADER_TIMEOUT - 0.1 <= took < IDLE_TIMEOUT, took
    assert server.closed("header_timeout") == 1


async def test_slow_headers_of_a_later_request_on_a_kept_alive_connection_are_cut_off(server: Server) -> None:
    reader, writer = await server.connect()
    writer.write(REQUEST)
    assert await _response(reader) == 200
    drip = asyncio.create_task(_drip(writer, REQUEST, every=1.0))
    started = time.monotonic()
    try:
        assert await _closed_by_server(reader, within=HEADER_TIMEOUT + 3)
    finally:
        drip.cancel()
        writer.close()
    assert time.monotonic() - started < IDLE_TIMEOUT
    assert server.closed("header_timeout") == 1


async def test_a_normal_keep_alive_client_works_and_an_idle_one_is_closed(server: Server) -> None:
    reader, writer = await server.connect()
    try:
        for _ in range(3):
            writer.write(REQUEST)
            assert await _response(reader) == 200
            # idle between requests for longer than the header timeout: that is not a slow request
            await asyncio.sleep(HEADER_TIMEOUT + 0.5)
        writer.write(REQUEST)
        assert await _response(reader) == 200
        idle_from = time.monotonic()
        assert await _closed_by_server(reader, within=IDLE_TIMEOUT + 3)
        assert time.monotonic() - idle_from >= IDLE_TIMEOUT - 0.5
    finally:
        writer.close()
    assert server.closed("header_timeout") == 0


async def test_connections_over_the_per_client_cap_are_refused_while_others_connect(server: Server) -> None:
    held = []
    for _ in range(PER_CLIENT):
        reader, writer = await server.connect("127.0.0.1")
        writer.write(REQUEST)
        assert await _response(reader) == 200
        held.append((reader, writer))
    try:
        reader, writer = await server.connect("127.0.0.1")
        assert await _closed_by_server(reader, within=2)  # closed at once, never answered
        writer.close()
        assert server.closed("too_many_connections") == 1

        other_reader, other_writer = await server.connect("127.0.0.2")  # another client is served
        other_writer.write(REQUEST)
        assert await _response(other_reader) == 200
        other_writer.close()

        # a connection closed by the client frees its slot
        held.pop()[1].close()
        deadline = time.monotonic() + 5
        while True:
            reader, writer = await server.connect("127.0.0.1")
            writer.write(REQUEST)
            try:
                status = await _response(reader)
            except (asyncio.IncompleteReadError, ConnectionResetError):
                status = 0
            writer.close()
            if status == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert status == 200
    finally:
        for _, w in held:
            w.close()
