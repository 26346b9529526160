"""Running the HTTP app on a socket, with an access log that never shows a producer's URL token."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from loguru import logger

from engine.observability.logs import redact

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


async def start_http_server(app: web.Application, host: str, port: int, **kwargs: Any) -> web.AppRunner:
    """Start serving ``app``; stop with ``await runner.cleanup()``."""
    runner = web.AppRunner(app, access_log_class=AccessLogger, **kwargs)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner
