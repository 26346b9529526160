"""The engine's aiohttp application: producer API, admin API, health, readiness, metrics.

``build_http_app(ctx)`` returns a ``web.Application``; the composition root may add routes or
sub-applications to it (the Telegram webhook, for one) with ``extra_routes``/``subapps`` or with
``app.router.add_*`` before it starts. One middleware gives every request a correlation id
(an incoming sane ``X-Request-Id`` is honoured and echoed back), counts it by route template and
status, and turns any error into an RFC 7807 problem document.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from aiohttp import web
from aiohttp.typedefs import Middleware
from loguru import logger

from engine.api import health, openapi, signal_updates, signals
from engine.api.admin import ADMIN_API, AdminApi
from engine.api.admin import routes as admin_routes
from engine.api.context import (
    CTX,
    REQUEST_ID_HEADER,
    SERVER_NAME,
    ApiContext,
    Handler,
    request_id,
    route_label,
)
from engine.api.problem import Problem
from engine.observability.logs import correlation
from engine.ops.tokens import AdminTokens

__all__ = ["CTX", "ApiContext", "build_http_app", "request_id", "route_label"]


def _status_of(exc: web.HTTPException) -> Problem:
    reason = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
        exc.status, "http_error"
    )
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return Problem(exc.status, reason, exc.reason or "error", headers=headers)


def _middleware(ctx: ApiContext) -> Middleware:
    metrics = ctx.metrics

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        incoming = request.headers.get(REQUEST_ID_HEADER)
        cid, honoured = request_id(incoming)
        started = time.perf_counter()
        with correlation(cid):
            instance = f"urn:tradebot:request:{cid}"
            response: web.StreamResponse
            try:
                response = await handler(request)
            except Problem as problem:
                response = problem.response(instance)
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                response = _status_of(exc).response(instance)
            except Exception as exc:
                logger.opt(exception=exc).error(
                    "unhandled error in {} {}", request.method, route_label(request)
                )
                response = Problem(500, "internal_error", "internal error; see the server log").response(
                    instance
                )
            # echo the caller's id as sent when it was honoured, else tell it the one we used
            response.headers[REQUEST_ID_HEADER] = incoming if honoured and incoming else cid
            route = route_label(request)
            metrics.http_requests.labels(route, request.method, str(response.status)).inc()
            metrics.http_latency.labels(route).observe(time.perf_counter() - started)
            return response

    return observe


def build_http_app(
    ctx: ApiContext,
    *,
    extra_routes: Iterable[web.AbstractRouteDef] = (),
    subapps: Mapping[str, web.Application] | None = None,
    middlewares: Iterable[Middleware] = (),
) -> web.Application:
    """The HTTP application; add more routes to the returned app before starting it."""
    app = web.Application(middlewares=[_middleware(ctx), *middlewares])
    app[CTX] = ctx
    app[ADMIN_API] = AdminApi(ctx.ops, AdminTokens(ctx.db))

    async def _open(_app: web.Application) -> None:
        ctx.refusals.start()

    async def _close(_app: web.Application) -> None:
        await ctx.refusals.stop()  # the last minute's counts are written, not lost

    app.on_startup.append(_open)
    app.on_cleanup.append(_close)

    async def _plain_server_header(_request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Server"] = SERVER_NAME  # not aiohttp's "Python/3.x aiohttp/x.y"

    app.on_response_prepare.append(_plain_server_header)
    app.add_routes(signals.routes)
    app.add_routes(signal_updates.routes)
    app.add_routes(health.routes)
    app.add_routes(openapi.routes)
    app.add_routes(admin_routes)
    app.add_routes(list(extra_routes))
    for prefix, sub in (subapps or {}).items():
        app.add_subapp(prefix, sub)
    return app
