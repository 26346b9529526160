"""Running the HTTP app on a socket, with an access log that never shows a producer's URL token.

Slow and greedy clients are cut off (``engine.api.connections``): request headers must arrive
within the header timeout, idle keep-alive connections close after the idle timeout, and each
client address may hold only so many connections at once.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from loguru import logger

from engine.api.connections import ConnectionGuard, ConnectionLimits, GuardedSite
from engine.observability.logs import redact
from engine.observability.metrics import Metrics

_TOKEN_PATH = re.compile(r"(/token/)[^/?#\s]+")


def safe_path(path: str) -> str:
    """``path`` with any ``/token/<token>`` segment masked."""
    return _TOKEN_PATH.sub(r"\1***", path)


class AccessLogger(AbstractAccessLogger):
    """One DEBUG line per request: method, path (token masked), status, time, request id."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        logger.debug(
            "{} {} -> {} in {:.1f} ms",
            request.method,
            redact(safe_path(request.path)),
            response.status,
            time * 1000,
        )

    @property
    def enabled(self) -> bool:
        return True


async def start_http_server(
    app: web.Application,
    host: str,
    port: int,
    *,
    limits: ConnectionLimits | None = None,
    metrics: Metrics | None = None,
    **kwargs: Any,
) -> web.AppRunner:
    """Start serving ``app``; stop with ``await runner.cleanup()``."""
    limits = limits or ConnectionLimits()
    runner = web.AppRunner(
        app, access_log_class=AccessLogger, keepalive_timeout=limits.idle_timeout_seconds, **kwargs
    )
    await runner.setup()
    site = GuardedSite(runner, host, port, ConnectionGuard(limits, metrics))
    await site.start()
    return runner
