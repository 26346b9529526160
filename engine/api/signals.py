"""The producer webhook (docs/webhook.md).

``POST /api/v1/signals`` (HMAC-signed) and ``POST /api/v1/signals/token/{token}`` (URL token),
and reading a stored signal back: ``GET /api/v1/signals/{signal_id}`` signed like a POST over an
empty body, or ``GET /api/v1/signals/token/{token}/{signal_id}``.

The order of checks, signed route: the declared body size (413), the content type (415), the
producer id (401), the body read with a hard 32 KiB cap whatever the headers say (413), the
signature (401), whether the producer is enabled (403), its rate (429), JSON (400), schema and
rules (422), idempotency (200 replay or 409); then the signal is committed and 201 answered.
Token route: 413, 415, the token (401), 403, 429, the capped body (413), then the same.
A refused request leaves only an audit line (the reason, the status, the route template and the
caller's address; never a secret, token or signature). Requests refused before the caller is
authenticated are counted instead (``engine.api.refusals``): one audit line per source and minute.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable
from dataclasses import dataclass

from aiohttp import web
from loguru import logger
from sqlalchemy.exc import InterfaceError, OperationalError

from engine.api.context import CTX, ApiContext, route_label
from engine.api.problem import Problem
from engine.ingest.producers import ProducerAuth
from engine.ingest.schema import BodyNotJSON, FieldError, SignalInvalid
from engine.ingest.service import MAX_BODY_BYTES, IdempotencyConflict, Outcome, rfc3339, signal_view
from engine.ingest.signing import SignatureError, verify
from engine.store.audit import audit
from engine.store.crypto import CryptoError
from engine.store.text import control_character

routes = web.RouteTableDef()

PRODUCER_HEADER = "X-Producer-Id"
SIGNATURE_HEADER = "X-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_MAX_ID = 64


@dataclass
class Caller:
    producer_id: str | None = None  # the authenticated producer, once known
    claimed: str | None = None  # what X-Producer-Id said (for the audit line of a refusal)


def _too_large() -> Problem:
    return Problem(
        413,
        "body_too_large",
        f"the body is over {MAX_BODY_BYTES} bytes",
        headers={"Connection": "close"},
    )


async def read_capped(request: web.Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """Read the body, refusing (413) as soon as it passes ``limit`` bytes, whatever the headers say."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large()
    chunks: list[bytes] = []
    total = 0
    try:
        while True:
            chunk = await request.content.read(limit + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise _too_large()
    except Problem:
        raise
    except Exception as exc:
        raise Problem(400, "unreadable_body", f"the body could not be read: {type(exc).__name__}") from None
    return b"".join(chunks)


def _check_content_type(request: web.Request) -> None:
    if request.content_type != "application/json":
        raise Problem(415, "unsupported_media_type", "send the body as Content-Type: application/json")


def ascii_header(request: web.Request, name: str) -> str | None:
    """A header's value when it is printable ASCII; anything else (bytes that are not UTF-8,
    non-ASCII text, control characters) is a 400 naming the header, never an error further on."""
    value = request.headers.get(name)
    if value is None:
        return None
    if not (value.isascii() and value.isprintable()):
        raise Problem(400, "malformed_header", f"the {name} header must be printable ASCII")
    return value


async def _by_header(ctx: ApiContext, request: web.Request, caller: Caller) -> ProducerAuth:
    claimed = (ascii_header(request, PRODUCER_HEADER) or "").strip()
    if not claimed:
        raise Problem(401, "missing_producer", f"the {PRODUCER_HEADER} header is missing")
    caller.claimed = claimed[:_MAX_ID]
    if len(claimed) > _MAX_ID:
        raise Problem(401, "unknown_producer", "no producer has this id")
    producer = await _lookup(ctx.producers.by_id(claimed))
    if producer is None:
        raise Problem(401, "unknown_producer", "no producer has this id")
    return producer


async def _by_token(ctx: ApiContext, request: web.Request) -> ProducerAuth:
    token = request.match_info["token"]
    producer = None
    if 16 <= len(token) <= 128 and token.isascii() and token.isprintable():
        producer = await _lookup(ctx.producers.by_token(token))
    if producer is None:
        raise Problem(401, "unknown_token", "no producer has this token")
    return producer


async def _lookup(fetch: Awaitable[ProducerAuth | None]) -> ProducerAuth | None:
    try:
        return await fetch
    except CryptoError as exc:
        logger.error("producer secret cannot be decrypted: {}", exc)
        raise Problem(503, "secret_store_unavailable", "the server cannot read producer secrets") from None


def _verify(producer: ProducerAuth, body: bytes, header: str | None) -> str:
    if producer.secret is None:
        logger.error("signed request from producer {} but SECRET_KEY is not set", producer.id)
        raise Problem(503, "secret_store_unavailable", "the server cannot read producer secrets")
    try:
        return verify(producer.secret, body, header).signature
    except SignatureError as exc:
        raise Problem(401, exc.reason, exc.message) from None


def _allow(ctx: ApiContext, producer: ProducerAuth, caller: Caller) -> None:
    caller.producer_id = producer.id
    if not producer.active:
        raise Problem(403, "producer_disabled", "this producer is disabled")
    settings = ctx.settings
    rate = producer.rate_per_second or settings.producer_rate_per_second
    burst = producer.burst or settings.producer_burst
    decision = ctx.limiter.take(producer.id, rate, burst)
    if not decision.allowed:
        raise Problem(
            429,
            "rate_limited",
            f"over the limit of {rate} requests a second (burst {burst})",
            headers={"Retry-After": decision.retry_after_header},
        )


async def audit_refusal(ctx: ApiContext, request: web.Request, problem: Problem, caller: Caller) -> None:
    if caller.producer_id is None:
        # Not authenticated: counted and audited per source and minute, never a row per request.
        ctx.refusals.record(request.remote, problem.reason, route_label(request))
        return
    details: dict[str, object] = {
        "status": problem.status,
        "reason": problem.reason,
        "route": route_label(request),
        "method": request.method,
        "remote": request.remote,
    }
    if problem.errors:
        details["errors"] = [{"field": e.field, "message": e.message} for e in problem.errors[:20]]
    actor = f"producer:{caller.producer_id}" if caller.producer_id else "anonymous"
    target = caller.producer_id or caller.claimed
    try:
        async with ctx.db.session() as session:
            audit(session, actor[:64], "signal.refused", target, **details)
    except Exception as exc:
        logger.opt(exception=exc).error("could not write the audit line of a refused signal")


def _accepted(outcome: Outcome) -> web.Response:
    body = {"id": outcome.signal_id, "status": outcome.status, "received_at": rfc3339(outcome.received_at)}
    headers = {"Location": f"/api/v1/signals/{outcome.signal_id}"}
    if outcome.replayed:
        headers[REPLAYED_HEADER] = "true"
    return web.Response(
        status=200 if outcome.replayed else 201,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers=headers,
    )


async def authenticated_post(
    request: web.Request, ctx: ApiContext, caller: Caller, token_route: bool
) -> tuple[ProducerAuth, bytes, str | None]:
    """The checks every producer POST passes, in order (signals and their updates alike):
    413, 415, the producer (401), the capped body (413), the signature (401), 403, 429.
    Returns the producer, the raw body and the signature (None on the token route)."""
    declared = request.content_length
    if declared is not None and declared > MAX_BODY_BYTES:
        raise _too_large()
    _check_content_type(request)
    if token_route:
        producer = await _by_token(ctx, request)
        _allow(ctx, producer, caller)
        return producer, await read_capped(request), None
    producer = await _by_header(ctx, request, caller)
    raw = await read_capped(request)
    signature = _verify(producer, raw, ascii_header(request, SIGNATURE_HEADER))
    _allow(ctx, producer, caller)
    return producer, raw, signature


async def authenticated_get(request: web.Request, ctx: ApiContext, token_route: bool) -> ProducerAuth:
    """The producer behind a GET (signed over an empty body, or the URL token); refusals audited."""
    caller = Caller()
    try:
        if token_route:
            producer = await _by_token(ctx, request)
        else:
            producer = await _by_header(ctx, request, caller)
            _verify(producer, b"", ascii_header(request, SIGNATURE_HEADER))
        _allow(ctx, producer, caller)
    except Problem as problem:
        await audit_refusal(ctx, request, problem, caller)
        raise
    return producer


async def _post(request: web.Request, ctx: ApiContext, caller: Caller, token_route: bool) -> web.Response:
    producer, raw, signature = await authenticated_post(request, ctx, caller, token_route)
    try:
        outcome = await ctx.ingest.ingest(
            producer.id, raw, idempotency_key=request.headers.get(IDEMPOTENCY_HEADER), signature=signature
        )
    except BodyNotJSON as exc:
        raise Problem(400, "not_json", f"the body is not JSON: {exc}") from None
    except SignalInvalid as exc:
        raise Problem(422, "invalid_signal", "the signal has invalid fields", errors=exc.errors) from None
    except IdempotencyConflict as exc:
        raise Problem(
            409, "idempotency_conflict", "this idempotency key was already used with a different body"
        ) from exc
    except (OperationalError, InterfaceError) as exc:
        logger.opt(exception=exc).error("the store is unavailable; signal not accepted")
        raise Problem(
            503,
            "store_unavailable",
            "the signal store is unavailable; retry later",
            headers={"Retry-After": "5"},
        ) from None
    if outcome.replayed:
        ctx.metrics.signals_replayed.inc()
    else:
        ctx.metrics.signals_accepted.inc()
    return _accepted(outcome)


async def _handle_post(request: web.Request, token_route: bool) -> web.Response:
    ctx = request.app[CTX]
    caller = Caller()
    started = time.perf_counter()
    try:
        return await _post(request, ctx, caller, token_route)
    except Problem as problem:
        ctx.metrics.signals_refused.labels(problem.reason).inc()
        await audit_refusal(ctx, request, problem, caller)
        raise
    finally:
        ctx.metrics.ingest_latency.observe(time.perf_counter() - started)


@routes.post("/api/v1/signals")
async def post_signal(request: web.Request) -> web.Response:
    return await _handle_post(request, token_route=False)


@routes.post("/api/v1/signals/token/{token}")
async def post_signal_by_token(request: web.Request) -> web.Response:
    return await _handle_post(request, token_route=True)


async def _get(request: web.Request, token_route: bool) -> web.Response:
    ctx = request.app[CTX]
    producer = await authenticated_get(request, ctx, token_route)
    signal_id = request.match_info["signal_id"]
    if (found := control_character(signal_id)) is not None:
        raise Problem(
            422,
            "invalid_signal_id",
            "the signal id is not valid",
            errors=[FieldError("signal_id", f"must not contain control characters ({found})")],
        )
    row = await ctx.ingest.get(producer.id, signal_id) if len(signal_id) <= 36 else None
    if row is None:
        raise Problem(404, "not_found", "this producer has no signal with this id")
    return web.json_response(signal_view(row))


@routes.get("/api/v1/signals/{signal_id}")
async def get_signal(request: web.Request) -> web.Response:
    return await _get(request, token_route=False)


@routes.get("/api/v1/signals/token/{token}/{signal_id}")
async def get_signal_by_token(request: web.Request) -> web.Response:
    return await _get(request, token_route=True)
