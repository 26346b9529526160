"""``tradebot gateway serve``: the terminals of this host, served to authenticated engines.

Routes (``engine.gateway.protocol`` has the wire format and the signature scheme):
- ``POST /v1/call``: one allow-listed MetaTrader5 function on one account's terminal;
- ``POST /v1/constants``: the module's allowed constants;
- ``GET /healthz`` (signed): every terminal's connection, trading permission and ping;
- ``GET /livez``: the process answers (nothing else; for a service manager).

Sessions: ``initialize``/``login`` with ``login=`` pick (or start) that account's worker; a
successful one opens a session whose random id the client sends with every later call. The
terminal path is the gateway's own setting (``GATEWAY_TERMINALS``), never the client's: a
client never names a program, a module or a file. ``shutdown`` closes the session (and the
worker when it was the login's last). A call without a valid session answers like a terminal
that is not connected: ``None`` and ``(-10004, 'No IPC connection')``.

Refusals are RFC 7807 problems and a warning log line with the reason and the peer (never the
token, the signature or a password): 401 unsigned/stale/replayed/bad signature, 403 a function
outside the allow-list, 400 a malformed body, 413 too large, 429 over the per-client rate.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web
from loguru import logger

from engine.api.problem import Problem
from engine.gateway.protocol import (
    CALL_PATH,
    CONSTANTS_PATH,
    FUNCTIONS,
    HEALTH_PATH,
    LIVE_PATH,
    MAX_BODY_BYTES,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    AuthError,
    CodecError,
    Verifier,
    constants_of,
    decode,
    reply_mac,
)
from engine.gateway.terminals import RES_E_INTERNAL_FAIL_CONNECT, RES_E_INVALID_PARAMS, TerminalPool
from engine.ingest.ratelimit import RateLimiter

MAX_SESSIONS = 10_000
_BOOL_FUNCTIONS = frozenset({"initialize", "login", "symbol_select"})
NO_SESSION = [RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection: no gateway session (initialize first)"]


@dataclass
class Session:
    login: int
    peer: str
    opened: float = field(default_factory=time.monotonic)


@dataclass
class GatewayState:
    pool: TerminalPool
    verifier: Verifier
    token: str
    constants: dict[str, int]
    rate_per_second: Decimal = Decimal(1000)
    burst: int = 2000
    limiter: RateLimiter = field(default_factory=RateLimiter)
    sessions: dict[str, Session] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)  # reason -> count (shown by /healthz)


STATE_KEY = web.AppKey("gateway_state", GatewayState)


def _peer(request: web.Request) -> str:
    return request.remote or "?"


def _refuse(state: GatewayState, request: web.Request, problem: Problem) -> web.Response:
    state.refused[problem.reason] = state.refused.get(problem.reason, 0) + 1
    logger.warning(
        "gateway: refused {} {} from {}: {} ({})",
        request.method, request.path, _peer(request), problem.reason, problem.detail,
    )  # fmt: skip
    return problem.response()


def _signed(state: GatewayState, nonce: str, payload: dict[str, Any]) -> web.Response:
    body = json.dumps(payload, separators=(",", ":"), allow_nan=True).encode()
    return web.Response(
        body=body,
        content_type="application/json",
        headers={SIGNATURE_HEADER: "v1=" + reply_mac(state.token, nonce, body)},
    )


async def _authenticate(state: GatewayState, request: web.Request) -> tuple[str, bytes]:
    """Rate limit, size, signature; the nonce and the raw body of an accepted request."""
    decision = state.limiter.take(_peer(request), state.rate_per_second, state.burst)
    if not decision.allowed:
        raise Problem(429, "rate_limited", "too many requests from this client",
                      headers={"Retry-After": decision.retry_after_header})  # fmt: skip
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise Problem(
            413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes", headers={"Connection": "close"}
        )
    body = await request.content.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise Problem(
            413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes", headers={"Connection": "close"}
        )
    try:
        nonce = state.verifier.verify(request.method, request.path, request.headers, body)
    except AuthError as exc:
        raise Problem(401, exc.reason, str(exc)) from None
    return nonce, body


def _parse_call(body: bytes) -> tuple[str | None, str, tuple[Any, ...], dict[str, Any]]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Problem(400, "bad_json", "the body is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("call"), str):
        raise Problem(400, "bad_call", 'the body must be {"session", "call", "args", "kwargs"}')
    call = doc["call"]
    if call not in FUNCTIONS:
        raise Problem(403, "not_allowed", f"{call[:64]!r} is not a function this gateway serves")
    session, args, kwargs = doc.get("session"), doc.get("args", []), doc.get("kwargs", {})
    if session is not None and not isinstance(session, str):
        raise Problem(400, "bad_call", "session must be a string")
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise Problem(400, "bad_call", "args must be a list and kwargs an object")
    try:
        decoded_args = tuple(decode(a, records=False) for a in args)
        decoded_kwargs = {str(k): decode(v, records=False) for k, v in kwargs.items()}
    except CodecError as exc:
        raise Problem(400, "bad_value", str(exc)) from None
    return session, call, decoded_args, decoded_kwargs


def _login_of(call: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    raw = kwargs.get("login", args[0] if call == "login" and args else None)
    if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0:
        return raw
    return None


def _has_session(state: GatewayState, login: int) -> bool:
    return any(s.login == login for s in state.sessions.values())


async def _open(
    state: GatewayState, request: web.Request, call: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """initialize / login: the account's worker, and a session when the terminal says yes."""
    login = _login_of(call, args, kwargs)
    if login is None:
        return {
            "result": False,
            "error": [RES_E_INVALID_PARAMS, "the gateway needs login= to pick a terminal"],
        }
    if call == "initialize":
        if args or kwargs.get("path") is not None:
            return {"result": False, "error": [RES_E_INVALID_PARAMS,
                    "terminal paths are set on the gateway host (GATEWAY_TERMINALS), not by the client"]}  # fmt: skip
        path = state.pool.config.path_for(login)
        args = (path,) if path else ()
    result, error = await state.pool.invoke(login, call, args, kwargs)
    if result is not True:
        logger.info("gateway: {} for login {} from {} failed: {}", call, login, _peer(request), error)
        if not _has_session(state, login):
            await state.pool.release(login)  # no worker lingers for a login nobody holds
        return {"result": result, "error": error}
    if len(state.sessions) >= MAX_SESSIONS:
        state.sessions.pop(next(iter(state.sessions)))
    sid = secrets.token_urlsafe(24)
    state.sessions[sid] = Session(login, _peer(request))
    logger.info("gateway: session opened for login {} from {}", login, _peer(request))
    return {"result": True, "error": error, "session": sid}


async def call_handler(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        nonce, body = await _authenticate(state, request)
        sid, call, args, kwargs = _parse_call(body)
    except Problem as problem:
        return _refuse(state, request, problem)
    if call in ("initialize", "login"):
        return _signed(state, nonce, await _open(state, request, call, args, kwargs))
    session = state.sessions.get(sid) if sid else None
    if session is None:
        return _signed(state, nonce, {"result": False if call in _BOOL_FUNCTIONS else None,
                                      "error": NO_SESSION, "session": None})  # fmt: skip
    if call == "shutdown":  # the terminal is shut down only when its login's last session ends
        state.sessions.pop(str(sid), None)
        logger.info("gateway: session closed for login {}", session.login)
        if not _has_session(state, session.login):
            await state.pool.release(session.login)
        return _signed(state, nonce, {"result": None, "error": [1, "Success"], "session": None})
    result, error = await state.pool.invoke(session.login, call, args, kwargs)
    return _signed(state, nonce, {"result": result, "error": error})


async def constants_handler(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        nonce, _body = await _authenticate(state, request)
    except Problem as problem:
        return _refuse(state, request, problem)
    return _signed(state, nonce, {"constants": state.constants})


async def health_handler(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        nonce, _body = await _authenticate(state, request)
    except Problem as problem:
        return _refuse(state, request, problem)
    terminals = await state.pool.health()
    ok = all(t["connected"] for t in terminals)
    return _signed(state, nonce, {
        "status": "ok" if ok else "degraded", "terminals": terminals, "sessions": len(state.sessions),
        "isolation": state.pool.isolation, "refused": dict(state.refused),
    })  # fmt: skip


async def live_handler(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def build_gateway_app(
    pool: TerminalPool,
    token: str,
    *,
    max_skew: int = 30,
    rate_per_second: Decimal = Decimal(1000),
    burst: int = 2000,
) -> web.Application:
    from engine.brokers.mt5_link import load_module

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[STATE_KEY] = GatewayState(
        pool=pool,
        verifier=Verifier(token, max_skew=max_skew),
        token=token,
        constants=constants_of(load_module(pool.config.module)),
        rate_per_second=rate_per_second,
        burst=burst,
    )
    app.router.add_post(CALL_PATH, call_handler)
    app.router.add_post(CONSTANTS_PATH, constants_handler)
    app.router.add_get(HEALTH_PATH, health_handler)
    app.router.add_get(LIVE_PATH, live_handler)

    async def close_pool(_app: web.Application) -> None:
        await pool.close()

    app.on_cleanup.append(close_pool)
    return app


__all__ = ["NONCE_HEADER", "GatewayState", "build_gateway_app"]
