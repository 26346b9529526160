"""The engine's aiohttp application: producer API, health, readiness, metrics.

``build_http_app(ctx)`` returns a ``web.Application``; the composition root may add routes or
sub-applications to it (the Telegram webhook, for one) with ``extra_routes``/``subapps`` or with
``app.router.add_*`` before it starts. One middleware gives every request a correlation id
(an incoming sane ``X-Request-Id`` is honoured and echoed back), counts it by route template and
status, and turns any error into an RFC 7807 problem document.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware
from loguru import logger

from engine.api.problem import Problem
from engine.ingest.producers import ProducerService
from engine.ingest.ratelimit import RateLimiter
from engine.ingest.service import IngestService
from engine.observability.logs import correlation
from engine.observability.metrics import Metrics
from engine.observability.readiness import Readiness
from engine.settings import Settings
from engine.store.crypto import SecretBox
from engine.store.db import Database
from engine.store.events import EventRelay
from engine.store.ids import hex_id

REQUEST_ID_HEADER = "X-Request-Id"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,32}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
UNMATCHED = "<unmatched>"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ApiContext:
    """Everything the HTTP layer needs, built once by the composition root (or a test)."""

    db: Database
    settings: Settings
    relay: EventRelay | None = None
    box: SecretBox | None = None
    metrics: Metrics = field(default_factory=Metrics)
    readiness: Readiness | None = None
    producers: ProducerService | None = None
    ingest: IngestService | None = None
    limiter: RateLimiter = field(default_factory=RateLimiter)

    def __post_init__(self) -> None:
        if self.readiness is None:
            self.readiness = Readiness()
        self.readiness.register("database", self.db.ping)
        if self.producers is None:
            self.producers = ProducerService(self.db, self.box)
        if self.ingest is None:
            self.ingest = IngestService(self.db, self.settings, self.relay)


CTX: web.AppKey[ApiContext] = web.AppKey("tradebot_api_context", ApiContext)


def request_id(incoming: str | None) -> tuple[str, bool]:
    """The correlation id for a request and whether it is the caller's ``X-Request-Id``.

    A sane incoming id (up to 32 characters of ``[A-Za-z0-9._:-]``, or a UUID, used without its
    dashes) is honoured; anything else is replaced by a new random id.
    """
    if incoming:
        if _UUID.match(incoming):
            return incoming.replace("-", "").lower(), True
        if _SANE_REQUEST_ID.match(incoming):
            return incoming, True
    return hex_id(8), False


def route_label(request: web.Request) -> str:
    info = request.match_info
    route = info.route if info is not None else None
    resource = route.resource if route is not None else None
    if resource is None or info.http_exception is not None:
        return UNMATCHED
    return resource.canonical


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
    from engine.api import health, openapi, signals

    app = web.Application(middlewares=[_middleware(ctx), *middlewares])
    app[CTX] = ctx

    app.add_routes(signals.routes)
    app.add_routes(health.routes)
    app.add_routes(openapi.routes)
    app.add_routes(list(extra_routes))
    for prefix, sub in (subapps or {}).items():
        app.add_subapp(prefix, sub)
    return app
