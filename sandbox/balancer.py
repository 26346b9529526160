"""A small round-robin HTTP load balancer for trying several instances on one machine.

Production puts nginx or HAProxy in front of the instances (``docs/deploy.md``); ``make cluster``
and the multi-instance tests put this in front of them instead. Each request (the Telegram
webhook, the producer API, health) goes to the next backend in turn; a backend that refuses the
connection or drops it before answering is skipped and the request is tried on the next one, as
nginx's ``proxy_next_upstream error timeout`` does (every route behind it is idempotent: a webhook
update is stored once by its update id, a signal once by its idempotency key). Headers (the
``X-Telegram-Bot-Api-Secret-Token`` among them) and bodies pass through unchanged.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"}
)


@dataclass
class BalancerStats:
    forwarded: Counter[str] = field(default_factory=Counter)  # by backend
    skipped: Counter[str] = field(default_factory=Counter)  # backend down: tried the next one
    failed: int = 0  # no backend answered


class RoundRobin:
    """``await RoundRobin(backends).start()``; ``url`` is where clients go; ``await stop()``."""

    def __init__(
        self, backends: list[str], *, host: str = "127.0.0.1", port: int = 0, timeout_seconds: float = 30.0
    ) -> None:
        if not backends:
            raise ValueError("a balancer needs at least one backend")
        self.backends = [b.rstrip("/") for b in backends]
        self.host, self.port = host, port
        self.stats = BalancerStats()
        self._next = itertools.cycle(range(len(self.backends)))
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds, sock_connect=2.0)
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> RoundRobin:
        self._session = aiohttp.ClientSession(timeout=self._timeout, auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["X-Forwarded-For"] = request.remote or ""
        first = next(self._next)
        for step in range(len(self.backends)):
            backend = self.backends[(first + step) % len(self.backends)]
            try:
                async with self._session.request(
                    request.method,
                    backend + request.path_qs,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                ) as upstream:
                    payload = await upstream.read()
                    self.stats.forwarded[backend] += 1
                    answer = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
                    return web.Response(status=upstream.status, body=payload, headers=answer)
            except (aiohttp.ClientConnectionError, TimeoutError):
                self.stats.skipped[backend] += 1  # down, or died mid-request: the next one
        self.stats.failed += 1
        return web.Response(status=502, text="no backend answered")
