"""Producer updates to a signal (CONTRACTS 1a).

``POST /api/v1/signals/{signal_id}/updates`` (signed) and
``POST /api/v1/signals/token/{token}/{signal_id}/updates`` (URL token): the same checks, in the
same order, as a signal (``engine.api.signals.authenticated_post``), then the update's own: JSON
(400), schema and rules (422, every field named), the signal (404: unknown, or another
producer's), idempotency (200 replay or 409); then the update is committed and 202 answered
with its id. ``GET .../updates/{update_id}`` (signed over an empty body, or the token) gives its
progress per position. A refused request leaves only an audit line.
"""

from __future__ import annotations

import json
import time

from aiohttp import web
from loguru import logger
from sqlalchemy.exc import InterfaceError, OperationalError

from engine.api.context import CTX
from engine.api.problem import Problem
from engine.api.signals import (
    IDEMPOTENCY_HEADER,
    REPLAYED_HEADER,
    Caller,
    audit_refusal,
    authenticated_get,
    authenticated_post,
)
from engine.ingest.schema import BodyNotJSON, SignalInvalid
from engine.ingest.service import IdempotencyConflict, rfc3339
from engine.management.updates import SignalNotFound, UpdateOutcome

routes = web.RouteTableDef()


def _location(outcome: UpdateOutcome) -> str:
    return f"/api/v1/signals/{outcome.signal_id}/updates/{outcome.update_id}"


def _accepted(outcome: UpdateOutcome) -> web.Response:
    body = {
        "id": outcome.update_id,
        "signal_id": outcome.signal_id,
        "action": outcome.action,
        "received_at": rfc3339(outcome.received_at),
    }
    headers = {"Location": _location(outcome)}
    if outcome.replayed:
        headers[REPLAYED_HEADER] = "true"
    return web.Response(
        status=200 if outcome.replayed else 202,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers=headers,
    )


async def _post(request: web.Request, token_route: bool) -> web.Response:
    ctx = request.app[CTX]
    caller = Caller()
    started = time.perf_counter()
    try:
        producer, raw, signature = await authenticated_post(request, ctx, caller, token_route)
        try:
            outcome = await ctx.updates.submit(
                producer.id,
                request.match_info["signal_id"],
                raw,
                idempotency_key=request.headers.get(IDEMPOTENCY_HEADER),
                signature=signature,
            )
        except BodyNotJSON as exc:
            raise Problem(400, "not_json", f"the body is not JSON: {exc}") from None
        except SignalInvalid as exc:
            raise Problem(422, "invalid_update", "the update has invalid fields", errors=exc.errors) from None
        except SignalNotFound:
            raise Problem(404, "not_found", "this producer has no signal with this id") from None
        except IdempotencyConflict as exc:
            raise Problem(
                409, "idempotency_conflict", "this idempotency key was already used with a different body"
            ) from exc
        except (OperationalError, InterfaceError) as exc:
            logger.opt(exception=exc).error("the store is unavailable; update not accepted")
            raise Problem(
                503,
                "store_unavailable",
                "the store is unavailable; retry later",
                headers={"Retry-After": "5"},
            ) from None
        return _accepted(outcome)
    except Problem as problem:
        ctx.metrics.signals_refused.labels(problem.reason).inc()
        await audit_refusal(ctx, request, problem, caller)
        raise
    finally:
        ctx.metrics.ingest_latency.observe(time.perf_counter() - started)


async def _get(request: web.Request, token_route: bool) -> web.Response:
    ctx = request.app[CTX]
    producer = await authenticated_get(request, ctx, token_route)
    view = await ctx.updates.progress(
        producer.id, request.match_info["signal_id"], request.match_info["update_id"]
    )
    if view is None:
        raise Problem(404, "not_found", "this producer has no such update of this signal")
    return web.json_response(view)


@routes.post("/api/v1/signals/token/{token}/{signal_id}/updates")
async def post_update_by_token(request: web.Request) -> web.Response:
    return await _post(request, token_route=True)


@routes.post("/api/v1/signals/{signal_id}/updates")
async def post_update(request: web.Request) -> web.Response:
    return await _post(request, token_route=False)


@routes.get("/api/v1/signals/token/{token}/{signal_id}/updates/{update_id}")
async def get_update_by_token(request: web.Request) -> web.Response:
    return await _get(request, token_route=True)


@routes.get("/api/v1/signals/{signal_id}/updates/{update_id}")
async def get_update(request: web.Request) -> web.Response:
    return await _get(request, token_route=False)
