"""``GET /healthz`` (the process answers), ``GET /readyz`` (its dependencies do), ``GET /metrics``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from engine.api.context import CTX

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    assert ctx.readiness is not None
    results = await ctx.readiness.run()
    for result in results:
        ctx.metrics.ready.labels(result.name).set(1 if result.ok else 0)
    failing = [r.name for r in results if not r.ok and r.required]
    degraded = [r.name for r in results if not r.ok and not r.required]
    body: dict[str, Any] = {
        "status": "unavailable" if failing else "degraded" if degraded else "ok",
        "checks": {r.name: r.detail for r in results},
        "failing": failing,
    }
    if degraded:
        body["degraded"] = degraded
    if ctx.instance is not None:
        body["instance"] = ctx.instance()
    return web.json_response(body, status=200 if not failing else 503)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    response = web.Response(body=ctx.metrics.render())
    response.headers["Content-Type"] = ctx.metrics.content_type
    return response
