"""Checking real responses against the producer API's OpenAPI document."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from engine.api.openapi import DOCUMENT


def schema_validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for ``schema`` that resolves the document's components."""
    return Draft202012Validator({**schema, "components": DOCUMENT["components"]})


def operation(path: str, method: str) -> dict[str, Any]:
    return DOCUMENT["paths"][path][method.lower()]


async def check_response(resp: Any, path: str, method: str) -> None:
    """Validate a real response against the document: status documented, content type, schema."""
    op = operation(path, method)
    status = str(resp.status)
    assert status in op["responses"], f"{method} {path} answered {status}, which is not documented"
    spec = op["responses"][status]
    for header, header_spec in spec.get("headers", {}).items():
        if header_spec.get("required"):
            assert header in resp.headers, f"{method} {path} {status}: documented header {header} missing"
    content = spec.get("content", {})
    if not content:
        return
    ctype = resp.headers["Content-Type"].split(";")[0]
    assert ctype in content, f"{method} {path} {status}: {ctype} not documented"
    schema = content[ctype].get("schema")
    if schema is not None:
        schema_validator(schema).validate(await resp.json(content_type=None))
