"""The admin REST API's part of the OpenAPI document (merged into ``engine.api.openapi.DOCUMENT``).

The schemas mirror ``engine.ops.views`` as ``as_json`` writes them (Decimals as exact strings,
times ISO 8601); ``tests/api/test_admin_api.py`` validates real answers against them.
"""

from __future__ import annotations

from typing import Any

_DEC = {"type": "string", "description": "Exact decimal"}
_DEC_OR_NULL = {"type": ["string", "null"], "description": "Exact decimal"}
_TIME = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_STR_OR_NULL = {"type": ["string", "null"]}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(properties),
        "properties": properties,
    }


_OWNER = {
    "oneOf": [
        {"type": "null", "description": "The operator's own account"},
        _object({"telegram_id": {"type": "integer"}, "username": _STR_OR_NULL, "first_name": _STR_OR_NULL}),
    ]
}
_SCOPE = _object(
    {"kind": {"enum": ["everything", "account", "subscriber"]}, "id": {"type": ["integer", "null"]}}
)

SCHEMAS: dict[str, Any] = {
    "AdminScope": _SCOPE,
    "AdminScopeIn": {
        "type": "object",
        "additionalProperties": False,
        "description": "No body (or {}): everything. At most one of account and subscriber.",
        "properties": {
            "account": {"type": "integer", "minimum": 1, "description": "An execution account id"},
            "subscriber": {"type": "integer", "minimum": 1, "description": "A subscriber's Telegram id"},
        },
    },
    "EngineStatus": _object(
        {
            "paused": {"type": "boolean"},
            "paused_by": _STR_OR_NULL,
            "paused_at": _TIME_OR_NULL,
            "heartbeat_at": _TIME_OR_NULL,
            "leader": {
                "oneOf": [
                    {"type": "null"},
                    _object(
                        {
                            "instance": {"type": "string"},
                            "loop_id": _STR_OR_NULL,
                            "alive": {"type": "boolean"},
                        }
                    ),
                ]
            },
            "open_positions": {"type": "integer"},
            "pending_orders": {"type": "integer"},
            "outbox_pending": {"type": "integer"},
            "accounts_total": {"type": "integer"},
            "paused_by_name": {
                **_STR_OR_NULL,
                "description": "The pausing actor as people know it (@name); null for the operator",
            },
            "gateways": {
                "type": "array",
                "description": "The MT5 gateways of the settings, probed now",
                "items": _object(
                    {"name": {"type": "string"}, "up": {"type": "boolean"}, "detail": _STR_OR_NULL}
                ),
            },
            "simulated_market": {
                "type": "boolean",
                "description": "Paper accounts trade the simulated random-walk market (no terminal prices)",
            },
            "instances": {
                "type": "array",
                "description": "Every instance (tradebot run) seen in the last hour, by id",
                "items": _object(
                    {
                        "id": {"type": "string"},
                        "host": {"type": "string"},
                        "pid": {"type": "integer"},
                        "started_at": {"type": "string", "format": "date-time"},
                        "seen_at": {"type": "string", "format": "date-time"},
                        "alive": {"type": "boolean", "description": "Seen within the account lease time"},
                        "leader": {"type": "boolean", "description": "Runs the trading loop"},
                        "accounts": {"type": "integer", "description": "MT5 accounts it owns"},
                        "redis": _STR_OR_NULL,
                        "telegram_budget": _STR_OR_NULL,
                    }
                ),
            },
            "accounts": {
                "type": "array",
                "items": _object(
                    {
                        "id": {"type": "integer"},
                        "kind": {"enum": ["paper", "mt5"]},
                        "label": _STR_OR_NULL,
                        "owner": _OWNER,
                        "trading_state": {"enum": ["active", "reducing", "halted"]},
                        "state_reason": _STR_OR_NULL,
                        "drawdown_state": {"enum": ["ok", "soft", "hard"]},
                        "currency": {"type": "string"},
                        "equity": _DEC_OR_NULL,
                        "equity_at": _TIME_OR_NULL,
                        "equity_live": {"type": "boolean"},
                        "open_positions": {"type": "integer"},
                        "pending_orders": {"type": "integer"},
                    }
                ),
            },
        }
    ),
    "PositionsReport": _object(
        {
            "scope": {"$ref": "#/components/schemas/AdminScope"},
            "positions_total": {"type": "integer"},
            "orders_total": {"type": "integer"},
            "positions": {
                "type": "array",
                "items": _object(
                    {
                        "id": {"type": "integer"},
                        "account_id": {"type": "integer"},
                        "owner": _OWNER,
                        "ticket": {"type": "string"},
                        "symbol": {"type": "string"},
                        "side": {"enum": ["buy", "sell"]},
                        "volume": _DEC,
                        "open_price": _DEC,
                        "sl": _DEC_OR_NULL,
                        "tp": _DEC_OR_NULL,
                        "status": {"enum": ["open", "closing"]},
                        "opened_at": _TIME,
                    }
                ),
            },
            "orders": {
                "type": "array",
                "items": _object(
                    {
                        "id": {"type": "string"},
                        "account_id": {"type": "integer"},
                        "owner": _OWNER,
                        "ticket": _STR_OR_NULL,
                        "symbol": {"type": "string"},
                        "side": {"enum": ["buy", "sell"]},
                        "order_type": {"enum": ["market", "limit", "stop"]},
                        "volume": _DEC_OR_NULL,
                        "price": _DEC_OR_NULL,
                        "sl": _DEC_OR_NULL,
                        "tp": _DEC_OR_NULL,
                        "status": {"enum": ["pending", "retry_wait", "placed"]},
                        "expires_at": _TIME_OR_NULL,
                    }
                ),
            },
        }
    ),
    "PauseResult": _object(
        {
            "scope": {"$ref": "#/components/schemas/AdminScope"},
            "action": {"enum": ["pause", "resume"]},
            "changed": {"type": "boolean"},
            "accounts": {
                "type": "array",
                "items": _object(
                    {
                        "account_id": {"type": "integer"},
                        "outcome": {"enum": ["changed", "unchanged", "still_in_drawdown"]},
                        "trading_state": {"enum": ["active", "reducing", "halted"]},
                    }
                ),
            },
        }
    ),
    "CloseAllResult": _object(
        {
            "scope": {"$ref": "#/components/schemas/AdminScope"},
            "requested": {"type": "integer"},
            "closed": {"type": "integer"},
            "failed": {"type": "integer"},
            "pnl": _DEC,
            "orders_requested": {"type": "integer"},
            "orders_cancelled": {"type": "integer"},
            "orders_failed": {"type": "integer"},
            "errors": {"type": "array", "items": {"type": "string"}},
            "currency": {**_STR_OR_NULL, "description": "The scope's one account currency; null if mixed"},
            "actor": _STR_OR_NULL,
            "actor_name": {**_STR_OR_NULL, "description": "Who asked, as people know them; null: operator"},
        }
    ),
}

SECURITY_SCHEMES = {
    "adminToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "`tradebot admin token add NAME --scope read|trade`; read: status and positions; "
        "trade: also pause, resume and closeall.",
    }
}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _ok(schema: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


_AUTH = {
    "401": _problem("No bearer token, or an unknown or revoked one (WWW-Authenticate: Bearer)."),
    "503": _problem("This process runs no engine."),
}
_SCOPE_QUERY = [
    {"name": "account", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1}},
    {"name": "subscriber", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1}},
]
_SCOPE_BODY = {
    "required": False,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AdminScopeIn"}}},
}


def _action(operation: str, summary: str, schema: str) -> dict[str, Any]:
    return {
        "post": {
            "operationId": operation,
            "summary": summary,
            "security": [{"adminToken": []}],
            "requestBody": _SCOPE_BODY,
            "responses": {
                "200": _ok(schema, "Done; the same result the CLI and Telegram give."),
                **_AUTH,
                "400": _problem("The body is not JSON."),
                "403": _problem("A read token cannot act."),
                "404": _problem("No such account or subscriber."),
                "415": _problem("The body is not application/json."),
                "422": _problem("The scope is not valid; errors lists each field."),
            },
        }
    }


PATHS: dict[str, Any] = {
    "/api/v1/admin/status": {
        "get": {
            "operationId": "adminStatus",
            "summary": "Engine status: pause, heartbeat, trading loop, accounts, positions, orders, outbox",
            "security": [{"adminToken": []}],
            "responses": {"200": _ok("EngineStatus", "The status."), **_AUTH},
        }
    },
    "/api/v1/admin/positions": {
        "get": {
            "operationId": "adminPositions",
            "summary": "Open positions and pending orders (everything, one account, one subscriber)",
            "security": [{"adminToken": []}],
            "parameters": _SCOPE_QUERY,
            "responses": {
                "200": _ok("PositionsReport", "Positions and pending orders."),
                **_AUTH,
                "404": _problem("No such account or subscriber."),
                "422": _problem("The scope is not valid."),
            },
        }
    },
    "/api/v1/admin/pause": _action(
        "adminPause", "Pause everything, or put accounts in closes-only", "PauseResult"
    ),
    "/api/v1/admin/resume": _action(
        "adminResume", "Resume everything, or make accounts active", "PauseResult"
    ),
    "/api/v1/admin/closeall": _action(
        "adminCloseAll", "Cancel every pending order and close every position of the scope", "CloseAllResult"
    ),
}
