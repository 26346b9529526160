"""What the HTTP layer shares: its context (built once by the composition root), request ids, route labels.

Route modules (``signals``, ``signal_updates``, ``health``, ``openapi``, ``admin``) import this, never ``engine.api.app``, which
imports them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from engine.api.refusals import RefusalAggregator
from engine.ingest.producers import ProducerService
from engine.ingest.ratelimit import RateLimiter
from engine.ingest.service import IngestService
from engine.management.updates import UpdateService
from engine.observability.metrics import Metrics
from engine.observability.readiness import Readiness
from engine.ops.service import OpsService
from engine.settings import Settings
from engine.store.db import Database
from engine.store.ids import hex_id

REQUEST_ID_HEADER = "X-Request-Id"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,32}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
UNMATCHED = "<unmatched>"
SERVER_NAME = "tradebot"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ApiContext:
    """Everything the HTTP layer needs, built once by the composition root
    (``tradebot.app.build_api_context``)."""

    db: Database
    settings: Settings
    producers: ProducerService
    ingest: IngestService
    updates: UpdateService  # producers' updates to their signals (CONTRACTS 1a)
    ops: OpsService  # the command layer, for the admin API (/api/v1/admin/)
    refusals: RefusalAggregator  # unauthenticated refusals, audited per source and minute
    metrics: Metrics
    readiness: Readiness
    limiter: RateLimiter = field(default_factory=RateLimiter)  # per-producer buckets, in memory
    # This instance among several (id, leadership, MT5 accounts owned, Redis state) for /readyz.
    instance: Callable[[], dict[str, Any]] | None = None


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
