"""Bot API errors as Telegram words them: ``<Prefix>: <text>`` with an HTTP status equal to the code."""

from __future__ import annotations

from typing import Any

_PREFIX = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class ApiError(Exception):
    """An error answer: ``{"ok": false, "error_code", "description", "parameters"?}``."""

    def __init__(
        self,
        code: int,
        description: str,
        *,
        retry_after: int | None = None,
        migrate_to_chat_id: int | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after
        self.migrate_to_chat_id = migrate_to_chat_id
        self.reason = reason  # why a 429 was returned (stats), not part of the answer

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        parameters: dict[str, int] = {}
        if self.migrate_to_chat_id is not None:
            parameters["migrate_to_chat_id"] = self.migrate_to_chat_id
        if self.retry_after is not None:
            parameters["retry_after"] = self.retry_after
        if parameters:
            out["parameters"] = parameters
        return out

    def headers(self) -> dict[str, str]:
        if self.retry_after is not None:
            return {"Retry-After": str(self.retry_after)}
        return {}


def prefixed(code: int, text: str) -> str:
    """``text`` with the status prefix, first letter lowered as the Bot API server does."""
    prefix = _PREFIX.get(code, "Bad Request")
    if not text:
        return prefix
    if text.startswith(prefix):
        return text
    keep = len(text) >= 2 and (text[1] == "_" or text[1].isupper())
    return f"{prefix}: {text if keep else text[0].lower() + text[1:]}"


def bad_request(text: str) -> ApiError:
    return ApiError(400, prefixed(400, text))


def forbidden(text: str) -> ApiError:
    return ApiError(403, prefixed(403, text))


def conflict(text: str) -> ApiError:
    return ApiError(409, prefixed(409, text))


def too_many_requests(retry_after: int, reason: str) -> ApiError:
    retry_after = max(1, int(retry_after))
    return ApiError(
        429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after, reason=reason
    )


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized")


def not_found(text: str = "") -> ApiError:
    return ApiError(404, prefixed(404, text))


QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the same as a "
    "current content and reply markup of the message"
)


class ControlError(Exception):
    """An error of the control API (``/_emulator/...``): plain JSON ``{"error": ...}`` with a status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
