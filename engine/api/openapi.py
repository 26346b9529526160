"""The OpenAPI 3.1 document of the producer API and the admin API (``openapi_admin``), served at ``GET /api/v1/openapi.json``.

Kept true by ``tests/api/test_openapi.py``: every route of the app is documented here, and real
responses (every status) validate against the schemas below.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from engine.api import openapi_admin
from engine.ingest.service import MAX_BODY_BYTES

routes = web.RouteTableDef()

_DECIMAL = {
    "description": 'A number, or a decimal string such as "1.08450" (parsed exactly, never as a float).',
    "oneOf": [
        {"type": "number"},
        {"type": "string", "pattern": r"^[+-]?\d{1,30}(\.\d{1,30})?([eE][+-]?\d{1,4})?$"},
    ],
}

_SIGNAL_IN: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["instrument", "side", "sl"],
    "properties": {
        "id": {
            "type": "string",
            "minLength": 1,
            "maxLength": 64,
            "description": "Producer-side id, unique per producer; the idempotency key when no "
            "Idempotency-Key header is sent.",
        },
        "instrument": {
            "type": "string",
            "minLength": 1,
            "maxLength": 32,
            "description": "A configured instrument (INSTRUMENTS), case-insensitive; stored upper case.",
        },
        "side": {"enum": ["buy", "sell"]},
        "order_type": {"enum": ["market", "limit", "stop"], "default": "market"},
        "entry": {**_DECIMAL, "description": "Required for limit and stop; reference price for market."},
        "sl": {**_DECIMAL, "description": "Stop loss: below entry for a buy, above for a sell."},
        "tp": {
            **_DECIMAL,
            "description": "Take profit: above entry for a buy, below for a sell. Required unless "
            "targets is given (not both).",
        },
        "targets": {
            "type": "array",
            "minItems": 1,
            "maxItems": 4,
            "description": "Take-profit levels nearest first, each beyond the previous; the shares "
            "close_percent (integers) sum to 100. Instead of tp.",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["price", "close_percent"],
                "properties": {
                    "price": _DECIMAL,
                    "close_percent": {"type": "integer", "minimum": 1, "maximum": 100},
                },
            },
        },
        "breakeven_after": {
            "type": "integer",
            "minimum": 0,
            "maximum": 4,
            "description": "After this target fills, the stop of what remains moves to entry (0: never); "
            "default 1 with two or more targets, else 0.",
        },
        "trail_points": {
            "type": "integer",
            "minimum": 1,
            "maximum": 1000000,
            "description": "After the first target, the stop trails the best price by this many points "
            "(only ever tightening).",
        },
        "risk_percent": {**_DECIMAL, "description": "0 < x <= 10; default DEFAULT_RISK_PERCENT."},
        "ttl_seconds": {
            "type": "integer",
            "minimum": 60,
            "maximum": 86400,
            "description": "Approval window; default APPROVAL_TTL_SECONDS.",
        },
        "strategy": {"type": "string", "maxLength": 32},
        "confidence": {**_DECIMAL, "description": "0..1"},
        "note": {"type": "string", "maxLength": 500, "description": "Shown to subscribers (escaped)."},
    },
}

_ACCEPTED = {
    "type": "object",
    "required": ["id", "status", "received_at"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "status": {"enum": ["accepted", "dispatched", "expired", "cancelled"]},
        "received_at": {"type": "string", "format": "date-time"},
    },
}

_NULLABLE_DECIMAL = {"type": ["string", "null"], "description": "Exact decimal as a string."}

_SIGNAL = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "id",
        "status",
        "received_at",
        "expires_at",
        "client_id",
        "idempotency_key",
        "instrument",
        "side",
        "order_type",
        "entry",
        "sl",
        "tp",
        "targets",
        "breakeven_after",
        "trail_points",
        "risk_percent",
        "ttl_seconds",
        "strategy",
        "confidence",
        "note",
    ],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "status": {"enum": ["accepted", "dispatched", "expired", "cancelled"]},
        "received_at": {"type": "string", "format": "date-time"},
        "expires_at": {"type": "string", "format": "date-time"},
        "client_id": {"type": ["string", "null"], "description": "The body's id, if it had one."},
        "idempotency_key": {"type": "string"},
        "instrument": {"type": "string"},
        "side": {"enum": ["buy", "sell"]},
        "order_type": {"enum": ["market", "limit", "stop"]},
        "entry": _NULLABLE_DECIMAL,
        "sl": {"type": "string"},
        "tp": {"type": "string", "description": "The furthest target."},
        "targets": {
            "type": ["array", "null"],
            "description": "The targets as sent (null when the signal had tp alone).",
            "items": {
                "type": "object",
                "properties": {"price": {"type": "string"}, "close_percent": {"type": "integer"}},
            },
        },
        "breakeven_after": {"type": "integer"},
        "trail_points": {"type": ["integer", "null"]},
        "risk_percent": {"type": "string"},
        "ttl_seconds": {"type": "integer"},
        "strategy": {"type": ["string", "null"]},
        "confidence": _NULLABLE_DECIMAL,
        "note": {"type": ["string", "null"]},
    },
}

_PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "urn:tradebot:problem:<reason code>"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "urn:tradebot:request:<request id>"},
        "errors": {
            "type": "array",
            "description": "422 only: every field at fault (a body field or the Idempotency-Key header).",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "additionalProperties": False,
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

_READY = {
    "type": "object",
    "required": ["status", "checks", "failing"],
    "properties": {
        "status": {"enum": ["ok", "degraded", "unavailable"]},
        "checks": {"type": "object", "additionalProperties": {"type": "string"}},
        "failing": {"type": "array", "items": {"type": "string"}},
        "degraded": {
            "description": "Parts that are down but do not stop this instance serving (e.g. the "
            "Telegram budget on its local share while Redis is unreachable).",
            "type": "array",
            "items": {"type": "string"},
        },
        "instance": {
            "description": "This instance among several: its id, whether it runs the trading loop, "
            "the MT5 accounts it owns, Redis and the Telegram budget.",
            "type": "object",
            "required": ["id", "leader", "accounts"],
            "properties": {
                "id": {"type": "string"},
                "leader": {"type": "boolean"},
                "accounts": {"type": "array", "items": {"type": "integer"}},
                "redis": {"type": "string"},
                "telegram_budget": {"type": "string"},
            },
        },
    },
}


def _problem(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if headers:
        out["headers"] = headers
    return out


_REQUEST_ID = {
    "name": "X-Request-Id",
    "in": "header",
    "required": False,
    "description": "Up to 32 of [A-Za-z0-9._:-] (or a UUID); echoed back and used in the server's logs.",
    "schema": {"type": "string"},
}
_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "1..128 printable ASCII. Default: the body's id, else sha256 of the canonical body.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
}
_TOKEN = {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}
_SIGNAL_ID = {"name": "signal_id", "in": "path", "required": True, "schema": {"type": "string"}}

_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait", "required": True, "schema": {"type": "integer"}}
}
_RETRY_AFTER_OPTIONAL = {
    "Retry-After": {
        "description": "Seconds to wait (when the store is down)",
        "required": False,
        "schema": {"type": "integer"},
    }
}
_REPLAYED = {
    "Idempotent-Replayed": {
        "description": "Always true on a replay",
        "required": True,
        "schema": {"const": "true"},
    },
    "Location": {"required": True, "schema": {"type": "string"}},
}


def _post_responses(auth_401: str) -> dict[str, Any]:
    return {
        "201": {
            "description": "Accepted and stored.",
            "headers": {
                "Location": {
                    "description": "/api/v1/signals/<id>",
                    "required": True,
                    "schema": {"type": "string"},
                }
            },
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}},
        },
        "200": {
            "description": "The same delivery again: the original answer.",
            "headers": _REPLAYED,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}},
        },
        "400": _problem("The body is not JSON."),
        "401": _problem(auth_401),
        "403": _problem("The producer is disabled."),
        "409": _problem("The idempotency key was used before with a different body."),
        "413": _problem(f"The body is over {MAX_BODY_BYTES} bytes (refused before it is parsed)."),
        "415": _problem("The Content-Type is not application/json."),
        "422": _problem("Schema or semantic errors; errors lists each field."),
        "429": _problem("Over the producer's rate limit.", _RETRY_AFTER),
        "503": _problem(
            "The server cannot read producer secrets or reach its store; retry later.", _RETRY_AFTER_OPTIONAL
        ),
    }


def _get_responses(auth_401: str) -> dict[str, Any]:
    return {
        "200": {
            "description": "The signal.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Signal"}}},
        },
        "401": _problem(auth_401),
        "403": _problem("The producer is disabled."),
        "404": _problem("This producer has no signal with this id."),
        "429": _problem("Over the producer's rate limit.", _RETRY_AFTER),
    }


_UPDATE_IN: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["action"],
    "description": "One update to a signal; each action takes only its own fields (CONTRACTS 1a).",
    "properties": {
        "action": {"enum": ["move_sl", "move_tp", "close", "cancel", "note"]},
        "sl": {
            "description": 'move_sl: the new stop, a price or "entry" (each position\'s open price).',
            "oneOf": [*_DECIMAL["oneOf"], {"const": "entry"}],
        },
        "target": {
            "type": "integer",
            "minimum": 1,
            "maximum": 4,
            "description": "move_tp: default the last.",
        },
        "price": {**_DECIMAL, "description": "move_tp: the new take profit."},
        "percent": {"type": "integer", "minimum": 1, "maximum": 100, "description": "close: default 100."},
        "text": {
            "type": "string",
            "minLength": 1,
            "maxLength": 500,
            "description": "note: told to subscribers.",
        },
    },
}

_UPDATE_ACCEPTED = {
    "type": "object",
    "required": ["id", "signal_id", "action", "received_at"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "signal_id": {"type": "string", "format": "uuid"},
        "action": {"enum": ["move_sl", "move_tp", "close", "cancel", "note"]},
        "received_at": {"type": "string", "format": "date-time"},
    },
}

_UPDATE_PROGRESS = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "signal_id", "action", "params", "received_at", "status", "counts", "positions"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "signal_id": {"type": "string", "format": "uuid"},
        "action": {"enum": ["move_sl", "move_tp", "close", "cancel", "note"]},
        "params": {"type": "object"},
        "received_at": {"type": "string", "format": "date-time"},
        "status": {"enum": ["in_progress", "done"]},
        "counts": {
            "type": "object",
            "additionalProperties": False,
            "required": ["applied", "refused", "pending"],
            "properties": {k: {"type": "integer"} for k in ("applied", "refused", "pending")},
        },
        "positions": {
            "type": "array",
            "description": "One item per position (or resting order) of every subscriber the update concerns.",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "kind", "status", "reason_code", "reason"],
                "properties": {
                    "id": {"type": "integer"},
                    "kind": {"enum": ["position", "order"]},
                    "status": {"enum": ["applied", "refused", "pending"]},
                    "reason_code": {"type": ["string", "null"]},
                    "reason": {"type": ["string", "null"]},
                },
            },
        },
    },
}


def _update_post_responses(auth_401: str) -> dict[str, Any]:
    out = _post_responses(auth_401)
    accepted = out.pop("201")
    accepted["description"] = "Accepted; it is being applied (see Location for its progress)."
    accepted["headers"]["Location"]["description"] = "/api/v1/signals/<signal id>/updates/<update id>"
    schema = {"$ref": "#/components/schemas/UpdateAccepted"}
    accepted["content"] = {"application/json": {"schema": schema}}
    out["200"]["content"] = {"application/json": {"schema": schema}}
    out["404"] = _problem("This producer has no signal with this id.")
    return {"202": accepted, **out}


def _update_get_responses(auth_401: str) -> dict[str, Any]:
    out = _get_responses(auth_401)
    out["200"] = {
        "description": "The update's progress per position.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/UpdateProgress"}}},
    }
    out["404"] = _problem("This producer has no such update of this signal.")
    return out


_UPDATE_ID = {"name": "update_id", "in": "path", "required": True, "schema": {"type": "string"}}
_UPDATE_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/UpdateIn"}}},
}
_SIGNAL_REF = {
    **_SIGNAL_ID,
    "description": "The signal's id, or the producer's own id from the signal's body.",
}

_SIGNED = "Missing or unknown producer, malformed or bad signature, or timestamp outside ±300 s."
_TOKENED = "Unknown token."
_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SignalIn"}}},
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "tradebot producer API",
        "version": "1",
        "description": (
            "Post trading signals. Sign each request: X-Signature: t=<unix seconds>,v1=<hex>, where "
            'v1 = lowercase hex HMAC-SHA256(producer secret, "<t>.<raw body>") and t is within '
            "±300 s of the server clock. Clients that cannot sign use the token route."
        ),
    },
    "servers": [{"url": "/"}],
    "components": {
        "securitySchemes": {
            "producerId": {"type": "apiKey", "in": "header", "name": "X-Producer-Id"},
            "signature": {
                "type": "apiKey",
                "in": "header",
                "name": "X-Signature",
                "description": 't=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>',
            },
            **openapi_admin.SECURITY_SCHEMES,
        },
        "schemas": {
            "SignalIn": _SIGNAL_IN,
            "Accepted": _ACCEPTED,
            "Signal": _SIGNAL,
            "UpdateIn": _UPDATE_IN,
            "UpdateAccepted": _UPDATE_ACCEPTED,
            "UpdateProgress": _UPDATE_PROGRESS,
            "Problem": _PROBLEM,
            "Ready": _READY,
            **openapi_admin.SCHEMAS,
        },
    },
    "paths": {
        **openapi_admin.PATHS,
        "/api/v1/signals": {
            "post": {
                "operationId": "postSignal",
                "summary": "Post a signed signal",
                "security": [{"producerId": [], "signature": []}],
                "parameters": [_IDEMPOTENCY, _REQUEST_ID],
                "requestBody": _BODY,
                "responses": _post_responses(_SIGNED),
            }
        },
        "/api/v1/signals/token/{token}": {
            "post": {
                "operationId": "postSignalByToken",
                "summary": "Post a signal with the producer's URL token (for clients that cannot sign)",
                "parameters": [_TOKEN, _IDEMPOTENCY, _REQUEST_ID],
                "requestBody": _BODY,
                "responses": _post_responses(_TOKENED),
            }
        },
        "/api/v1/signals/{signal_id}": {
            "get": {
                "operationId": "getSignal",
                "summary": "Read one of your signals (sign an empty body)",
                "security": [{"producerId": [], "signature": []}],
                "parameters": [_SIGNAL_ID, _REQUEST_ID],
                "responses": _get_responses(_SIGNED),
            }
        },
        "/api/v1/signals/token/{token}/{signal_id}": {
            "get": {
                "operationId": "getSignalByToken",
                "summary": "Read one of your signals with the URL token",
                "parameters": [_TOKEN, _SIGNAL_ID, _REQUEST_ID],
                "responses": _get_responses(_TOKENED),
            }
        },
        "/api/v1/signals/{signal_id}/updates": {
            "post": {
                "operationId": "postSignalUpdate",
                "summary": "Update one of your signals: move_sl, move_tp, close, cancel or note (signed)",
                "security": [{"producerId": [], "signature": []}],
                "parameters": [_SIGNAL_REF, _IDEMPOTENCY, _REQUEST_ID],
                "requestBody": _UPDATE_BODY,
                "responses": _update_post_responses(_SIGNED),
            }
        },
        "/api/v1/signals/token/{token}/{signal_id}/updates": {
            "post": {
                "operationId": "postSignalUpdateByToken",
                "summary": "Update one of your signals with the URL token",
                "parameters": [_TOKEN, _SIGNAL_REF, _IDEMPOTENCY, _REQUEST_ID],
                "requestBody": _UPDATE_BODY,
                "responses": _update_post_responses(_TOKENED),
            }
        },
        "/api/v1/signals/{signal_id}/updates/{update_id}": {
            "get": {
                "operationId": "getSignalUpdate",
                "summary": "An update's progress per position (sign an empty body)",
                "security": [{"producerId": [], "signature": []}],
                "parameters": [_SIGNAL_REF, _UPDATE_ID, _REQUEST_ID],
                "responses": _update_get_responses(_SIGNED),
            }
        },
        "/api/v1/signals/token/{token}/{signal_id}/updates/{update_id}": {
            "get": {
                "operationId": "getSignalUpdateByToken",
                "summary": "An update's progress per position, with the URL token",
                "parameters": [_TOKEN, _SIGNAL_REF, _UPDATE_ID, _REQUEST_ID],
                "responses": _update_get_responses(_TOKENED),
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "The process answers",
                "responses": {
                    "200": {
                        "description": "Alive",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["status"],
                                    "properties": {"status": {"const": "ok"}},
                                }
                            }
                        },
                    }
                },
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Every dependency answers (database, brokers, Telegram, ...)",
                "responses": {
                    "200": {
                        "description": "Ready (status degraded: some part is down but the instance serves)",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Ready"}}},
                    },
                    "503": {
                        "description": "Not ready; failing names the checks that are down",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Ready"}}},
                    },
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus text format",
                "responses": {"200": {"description": "Metrics", "content": {"text/plain": {}}}},
            }
        },
    },
}


@routes.get("/api/v1/openapi.json")
async def openapi(_request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)
