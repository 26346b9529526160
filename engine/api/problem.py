"""RFC 7807 problem documents (``application/problem+json``) for every HTTP error."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from engine.ingest.schema import FieldError

PROBLEM_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:tradebot:problem:"

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Problem(Exception):
    """Raise from a handler to answer with a problem document.

    ``reason`` is a stable code (it is the last part of ``type`` and the label of the refusal
    metrics); ``detail`` is a human sentence for the producer's developer.
    """

    def __init__(
        self,
        status: int,
        reason: str,
        detail: str,
        *,
        errors: Iterable[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.errors = list(errors)
        self.headers = dict(headers or {})

    def body(self, instance: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": TYPE_PREFIX + self.reason,
            "title": _TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            doc["instance"] = instance
        if self.errors or self.status == 422:
            doc["errors"] = [{"field": e.field, "message": e.message} for e in self.errors]
        return doc

    def response(self, instance: str | None = None) -> web.Response:
        response = web.Response(
            status=self.status,
            body=json.dumps(self.body(instance), ensure_ascii=False).encode(),
            content_type=PROBLEM_TYPE,
            headers=self.headers,
        )
        if self.headers.get("Connection", "").lower() == "close":
            response.force_close()  # e.g. 413: do not read an unwanted body to reuse the connection
        return response
