"""The body of a signal update (CONTRACTS 1a): parsing and rules, like a signal's.

``{"action": "move_sl", "sl": <price> | "entry"}``, ``{"action": "move_tp", "target": 1..4,
"price": <price>}``, ``{"action": "close", "percent": 1..100}``, ``{"action": "cancel"}``,
``{"action": "note", "text": "..."}``. Numbers are exact decimals (``engine.ingest.schema``); a
field that another action takes is refused by name, so a typo never silently does nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, StrictInt, ValidationError

from engine.ingest.schema import _CANONICAL, FieldError, Price, SignalInvalid, _errors, _price, load_json

Action = Literal["move_sl", "move_tp", "close", "cancel", "note"]
ACTIONS: tuple[str, ...] = ("move_sl", "move_tp", "close", "cancel", "note")
TRADING_ACTIONS = frozenset({"move_sl", "move_tp", "close", "cancel"})
MAX_TARGETS = 4

# The fields each action takes (besides ``action``).
FIELDS: dict[str, frozenset[str]] = {
    "move_sl": frozenset({"sl"}),
    "move_tp": frozenset({"target", "price"}),
    "close": frozenset({"percent"}),
    "cancel": frozenset(),
    "note": frozenset({"text"}),
}


def _stop(value: Any) -> Decimal | str:
    if value == "entry":
        return "entry"
    try:
        return _price(value)
    except ValueError:
        raise ValueError('must be a price above 0 or "entry"') from None


Stop = Annotated[Decimal | str, PlainValidator(_stop)]


class UpdateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action
    sl: Stop | None = None
    target: StrictInt | None = Field(default=None, ge=1, le=MAX_TARGETS)
    price: Price | None = None
    percent: StrictInt | None = Field(default=None, ge=1, le=100)
    text: str | None = Field(default=None, min_length=1, max_length=500)


@dataclass(frozen=True, slots=True)
class ValidUpdate:
    action: str
    params: dict[str, Any]  # JSON-safe: decimals as strings, defaults filled in
    body_hash: str


def _rules(body: UpdateIn, given: set[str]) -> list[FieldError]:
    errors = [
        FieldError(name, f"not taken by action {body.action!r}")
        for name in sorted(given - FIELDS[body.action] - {"action"})
    ]
    if body.action == "move_sl" and body.sl is None:
        errors.append(FieldError("sl", 'required: a price or "entry"'))
    if body.action == "move_tp" and body.price is None:
        errors.append(FieldError("price", "required"))
    if body.action == "note" and body.text is None:
        errors.append(FieldError("text", "required"))
    return errors


def _params(body: UpdateIn) -> dict[str, Any]:
    if body.action == "move_sl":
        assert body.sl is not None
        return {"sl": body.sl if isinstance(body.sl, str) else format(body.sl, "f")}
    if body.action == "move_tp":
        assert body.price is not None
        return {"target": body.target, "price": format(body.price, "f")}  # target None: the last
    if body.action == "close":
        return {"percent": body.percent if body.percent is not None else 100}
    if body.action == "note":
        return {"text": body.text}
    return {}


def parse_update(raw: bytes) -> ValidUpdate:
    """Parse and check an update body; raises ``BodyNotJSON`` or ``SignalInvalid`` (422)."""
    data = load_json(raw)
    if not isinstance(data, dict):
        raise SignalInvalid([FieldError("(body)", "must be a JSON object")])
    try:
        body = UpdateIn.model_validate(data)
    except ValidationError as exc:
        raise SignalInvalid(_errors(exc)) from None
    errors = _rules(body, set(data))
    if errors:
        raise SignalInvalid(errors)
    params = _params(body)
    canonical = _CANONICAL.encode({"action": body.action, **params})
    return ValidUpdate(body.action, params, hashlib.sha256(canonical.encode()).hexdigest())


def decimal_or_none(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))
