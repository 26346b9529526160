"""Slow and greedy clients on the HTTP server: header deadline, idle timeout, connections per client.

aiohttp's own keep-alive timer (``keepalive_timeout``, set to ``HTTP_IDLE_TIMEOUT_SECONDS``) starts
when a connection opens and again after each response, and closes a connection still waiting for a
request when it fires; bytes arriving do not push it back, so it bounds a slow request's headers
too, but only by the idle timeout. ``GuardedProtocol`` adds the tighter bound: a request's headers
must be complete within ``HTTP_HEADER_TIMEOUT_SECONDS`` of the connection opening (first request)
or of their first byte (later requests on a kept-alive connection), else the connection is closed.
It also caps open connections per client address (``HTTP_MAX_CONNECTIONS_PER_CLIENT``): the
connection over the cap is closed at once, before aiohttp sees it.

``GuardedProtocol`` wraps the ``RequestHandler`` aiohttp makes for each connection (its public
protocol factory, ``web.Server``) and forwards every protocol call to it. To tell "waiting for a
request" from "handling one" it reads two of the handler's attributes, ``_request_count`` (requests
parsed) and ``_waiter`` (set while it waits for the next one), as of aiohttp 3.14;
tests/api/test_api_slow_clients.py fails if a new aiohttp changes them.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from loguru import logger

from engine.observability.metrics import Metrics


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_seconds: float = 10.0
    idle_timeout_seconds: float = 75.0
    max_connections_per_client: int = 50

    @classmethod
    def from_settings(cls, settings: Any) -> ConnectionLimits:
        return cls(
            header_timeout_seconds=float(settings.http_header_timeout_seconds),
            idle_timeout_seconds=float(settings.http_idle_timeout_seconds),
            max_connections_per_client=int(settings.http_max_connections_per_client),
        )


class ConnectionGuard:
    """Counts open connections per client address; makes the protocol for each new connection."""

    def __init__(self, limits: ConnectionLimits, metrics: Metrics | None = None) -> None:
        self.limits = limits
        self._metrics = metrics
        self.open: Counter[str] = Counter()

    def factory(self, server: web.Server) -> Callable[[], asyncio.Protocol]:
        return lambda: GuardedProtocol(server(), self)

    def admit(self, client: str) -> bool:
        if self.open[client] >= self.limits.max_connections_per_client:
            self.closed("too_many_connections")
            return False
        self.open[client] += 1
        return True

    def release(self, client: str) -> None:
        self.open[client] -= 1
        if self.open[client] <= 0:
            del self.open[client]

    def closed(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.http_connections_closed.labels(reason).inc()


def _client_of(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer or "unknown")


class GuardedProtocol(asyncio.Protocol):
    def __init__(self, handler: Any, guard: ConnectionGuard) -> None:
        self._handler = handler  # aiohttp.web_protocol.RequestHandler
        self._guard = guard
        self._client: str | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._armed_at_count = 0

    # -- the header deadline -------------------------------------------------------------------
    def _waiting_for_request(self) -> bool:
        waiter = self._handler._waiter
        return waiter is not None and not waiter.done()

    def _arm(self) -> None:
        self._cancel()
        self._armed_at_count = self._handler._request_count
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self._guard.limits.header_timeout_seconds, self._expire)

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        no_new_request = self._handler._request_count == self._armed_at_count
        if no_new_request and (self._waiting_for_request() or self._handler._waiter is None):
            logger.debug("closing a connection from {}: request headers too slow", self._client)
            self._guard.closed("header_timeout")
            self._handler.force_close()

    # -- asyncio.Protocol, forwarded to aiohttp's handler ----------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        client = _client_of(transport)
        if not self._guard.admit(client):
            logger.debug("refusing a connection from {}: over the per-client limit", client)
            assert isinstance(transport, asyncio.Transport)
            transport.abort()
            return
        self._client = client
        self._handler.connection_made(transport)
        self._arm()  # the first request's headers are due within the header timeout

    def data_received(self, data: bytes) -> None:
        if self._client is None:
            return
        before = self._handler._request_count
        self._handler.data_received(data)
        if self._handler._request_count != before:
            self._cancel()  # a request's headers are complete
        elif self._deadline is None and self._waiting_for_request():
            self._arm()  # the first bytes of the next request on a kept-alive connection

    def eof_received(self) -> bool | None:
        if self._client is None:
            return None
        result: bool | None = self._handler.eof_received()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        if self._client is None:
            return
        self._cancel()
        self._guard.release(self._client)
        self._handler.connection_lost(exc)

    def pause_writing(self) -> None:
        self._handler.pause_writing()

    def resume_writing(self) -> None:
        self._handler.resume_writing()


class GuardedSite(web.TCPSite):
    """``web.TCPSite`` whose connections go through ``ConnectionGuard`` (as aiohttp 3.14 starts one)."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard) -> None:
        super().__init__(runner, host, port)
        self._guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        self._server = await loop.create_server(
            self._guard.factory(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        if self._server.sockets:
            self._bound_port = self._server.sockets[0].getsockname()[1]
        else:
            self._bound_port = self._port
