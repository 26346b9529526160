"""The admin REST API under ``/api/v1/admin/``: the command layer (``engine.ops``) over HTTP.

Authenticated by ``Authorization: Bearer <token>`` (``tradebot admin token add NAME --scope
read|trade``): no token, an unknown one or a revoked one is 401; a ``read`` token may read
(status, positions) but not act (pause, resume, closeall): 403. The actor of each action is
``token:<name>``. Results are the command layer's plain data as JSON (``engine.ops.views.as_json``);
errors are problem documents.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from engine.api.problem import Problem
from engine.ingest.schema import FieldError
from engine.ops.service import OpsService
from engine.ops.tokens import READ, TRADE, AdminTokenInfo, AdminTokens
from engine.ops.views import OpsError, Scope, as_json

routes = web.RouteTableDef()
PREFIX = "/api/v1/admin"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="tradebot-admin"'}
_SCOPE_FIELDS = ("account", "subscriber")


@dataclass(frozen=True)
class AdminApi:
    """What the admin routes need; ``build_http_app`` puts it on the app."""

    ops: OpsService
    tokens: AdminTokens


ADMIN_API: web.AppKey[AdminApi] = web.AppKey("tradebot_admin_api", AdminApi)


def _ctx(request: web.Request) -> AdminApi:
    return request.app[ADMIN_API]


async def _authorize(request: web.Request, needed: str) -> AdminTokenInfo:
    ctx = _ctx(request)
    header = request.headers.get("Authorization", "")
    scheme, _sep, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "unauthorized", "send Authorization: Bearer <admin token>", headers=_CHALLENGE)
    info = await ctx.tokens.authenticate(token.strip())
    if info is None:
        raise Problem(401, "unauthorized", "unknown or revoked admin token", headers=_CHALLENGE)
    if not info.allows(needed):
        raise Problem(403, "forbidden", f"a {info.scope} token cannot do this; it needs the {needed} scope")
    return info


def _scope_from(values: dict[str, Any]) -> Scope:
    errors = [FieldError(k, "unknown field") for k in values if k not in _SCOPE_FIELDS]
    ids: dict[str, int | None] = {}
    for key in _SCOPE_FIELDS:
        raw = values.get(key)
        if raw is None:
            ids[key] = None
            continue
        try:
            number = int(raw) if not isinstance(raw, bool) else 0
        except (TypeError, ValueError):
            number = 0
        if number <= 0 or (isinstance(raw, str) and not raw.isdigit()) or isinstance(raw, float):
            errors.append(FieldError(key, "must be a positive integer"))
        ids[key] = number
    if ids["account"] is not None and ids["subscriber"] is not None:
        errors.append(FieldError("subscriber", "give an account or a subscriber, not both"))
    if errors:
        raise Problem(422, "invalid_scope", "the scope is not valid", errors=errors)
    return Scope.of(ids["account"], ids["subscriber"])


async def _body_scope(request: web.Request) -> Scope:
    raw = await request.read()
    if not raw.strip():
        return Scope.everything()
    if request.content_type != "application/json":
        raise Problem(415, "unsupported_media_type", "send application/json (or no body)")
    try:
        body = json.loads(raw)
    except ValueError:
        raise Problem(400, "bad_json", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise Problem(
            422, "invalid_scope", "the body must be a JSON object", errors=[FieldError("", "object")]
        )
    return _scope_from(body)


def _ops(request: web.Request) -> OpsService:
    ops = _ctx(request).ops
    return ops


async def _run(coro: Any) -> web.Response:
    try:
        result = await coro
    except OpsError as exc:
        status = 404 if exc.code == "not_found" else 422
        raise Problem(status, exc.code, exc.message) from None
    return web.json_response(as_json(result))


@routes.get(f"{PREFIX}/status")
async def status(request: web.Request) -> web.Response:
    await _authorize(request, READ)
    return await _run(_ops(request).status())


@routes.get(f"{PREFIX}/positions")
async def positions(request: web.Request) -> web.Response:
    await _authorize(request, READ)
    scope = _scope_from(dict(request.query))
    return await _run(_ops(request).positions(scope, limit=1000))


@routes.post(f"{PREFIX}/pause")
async def pause(request: web.Request) -> web.Response:
    token = await _authorize(request, TRADE)
    scope = await _body_scope(request)
    return await _run(_ops(request).pause(scope, f"token:{token.name}"))


@routes.post(f"{PREFIX}/resume")
async def resume(request: web.Request) -> web.Response:
    token = await _authorize(request, TRADE)
    scope = await _body_scope(request)
    return await _run(_ops(request).resume(scope, f"token:{token.name}"))


@routes.post(f"{PREFIX}/closeall")
async def closeall(request: web.Request) -> web.Response:
    token = await _authorize(request, TRADE)
    scope = await _body_scope(request)
    return await _run(_ops(request).close_all(scope, f"token:{token.name}"))
