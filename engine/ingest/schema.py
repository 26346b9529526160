"""The producer signal body (CONTRACTS section 1): JSON parsing, schema and semantic rules.

Numbers are parsed as ``Decimal`` straight from the JSON text (``parse_float=Decimal``), never
through float. Unknown fields are refused. ``parse_signal`` raises ``BodyNotJSON`` (HTTP 400) or
``SignalInvalid`` (HTTP 422, with every bad field; text fields follow ``engine.store.text``:
no control characters but tab and newline) and otherwise returns a ``ValidSignal`` whose
``body_hash`` is the SHA-256 of its canonical form: the same signal with other whitespace, key
order or ``1.10`` for ``1.1`` hashes the same.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, StrictInt, ValidationError

from engine.store.text import CleanText

MAX_PRICE = Decimal(10) ** 15
MAX_PLACES = 12  # the Money column keeps 12 decimal places
_DECIMAL_STRING = re.compile(r"^[+-]?\d{1,30}(\.\d{1,30})?([eE][+-]?\d{1,4})?$")


class BodyNotJSON(Exception):
    """The body is not a JSON document (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


class SignalInvalid(Exception):
    """Schema or semantic errors (HTTP 422); ``errors`` names every bad field."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def load_json(raw: bytes) -> Any:
    """Parse JSON with exact decimals; NaN/Infinity, bad UTF-8 and huge integers are not JSON."""
    try:
        text = raw.decode("utf-8")
        return _DECODER.decode(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BodyNotJSON(str(exc)[:200]) from None


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("must be a number or a decimal string")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str) and _DECIMAL_STRING.match(value):
        result = Decimal(value)
    else:
        raise ValueError("must be a number or a decimal string")
    if not result.is_finite():
        raise ValueError("must be a finite number")
    return result


def _price(value: Any) -> Decimal:
    result = _to_decimal(value)
    if not Decimal(0) < result <= MAX_PRICE:
        raise ValueError(f"must be above 0 and at most {MAX_PRICE:f}")
    return _places(result)


def _risk(value: Any) -> Decimal:
    result = _to_decimal(value)
    if not Decimal(0) < result <= Decimal(10):
        raise ValueError("must be above 0 and at most 10")
    return _places(result)


def _confidence(value: Any) -> Decimal:
    result = _to_decimal(value)
    if not Decimal(0) <= result <= Decimal(1):
        raise ValueError("must be between 0 and 1")
    return _places(result)


def _places(value: Decimal) -> Decimal:
    value = value.normalize()
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_PLACES:
        raise ValueError(f"at most {MAX_PLACES} decimal places")
    return value if isinstance(exponent, int) and exponent <= 0 else value.quantize(Decimal(1))


Price = Annotated[Decimal, PlainValidator(_price)]
RiskPercent = Annotated[Decimal, PlainValidator(_risk)]
Confidence = Annotated[Decimal, PlainValidator(_confidence)]


class SignalIn(BaseModel):
    """The body as the producer sends it (before defaults from settings)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    id: CleanText | None = Field(default=None, min_length=1, max_length=64)
    instrument: CleanText = Field(min_length=1, max_length=32)
    side: Literal["buy", "sell"]
    order_type: Literal["market", "limit", "stop"] = "market"
    entry: Price | None = None
    sl: Price
    tp: Price
    risk_percent: RiskPercent | None = None
    ttl_seconds: StrictInt | None = Field(default=None, ge=60, le=86400)
    strategy: CleanText | None = Field(default=None, max_length=32)
    confidence: Confidence | None = None
    note: CleanText | None = Field(default=None, max_length=500)


@dataclass(frozen=True, slots=True)
class ValidSignal:
    body: SignalIn
    instrument: str  # upper case
    body_hash: str


_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "required",
}


def _errors(exc: ValidationError) -> list[FieldError]:
    out: list[FieldError] = []
    for err in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in err["loc"]) or "(body)"
        message = _MESSAGES.get(err["type"], err["msg"])
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        out.append(FieldError(field, message))
    return out


def _semantic(body: SignalIn, instrument: str, instruments: frozenset[str]) -> list[FieldError]:
    errors: list[FieldError] = []
    if instrument not in instruments:
        errors.append(FieldError("instrument", f"{instrument!r} is not a configured instrument"))
    if body.order_type != "market" and body.entry is None:
        errors.append(FieldError("entry", f"required for {body.order_type} orders"))
    buy = body.side == "buy"
    if body.entry is not None:
        if buy and not body.sl < body.entry:
            errors.append(FieldError("sl", "must be below entry for a buy"))
        if buy and not body.tp > body.entry:
            errors.append(FieldError("tp", "must be above entry for a buy"))
        if not buy and not body.sl > body.entry:
            errors.append(FieldError("sl", "must be above entry for a sell"))
        if not buy and not body.tp < body.entry:
            errors.append(FieldError("tp", "must be below entry for a sell"))
    elif buy and not body.sl < body.tp:
        errors.append(FieldError("sl", "must be below tp for a buy"))
    elif not buy and not body.sl > body.tp:
        errors.append(FieldError("sl", "must be above tp for a sell"))
    return errors


def canonical_hash(body: SignalIn) -> str:
    data: dict[str, Any] = {}
    for name in SignalIn.model_fields:
        value = getattr(body, name)
        if value is not None:
            data[name] = format(value, "f") if isinstance(value, Decimal) else value
    data["instrument"] = body.instrument.upper()
    return hashlib.sha256(_CANONICAL.encode(data).encode()).hexdigest()


def parse_signal(raw: bytes, instruments: frozenset[str]) -> ValidSignal:
    """Parse and check a signal body; raises ``BodyNotJSON`` or ``SignalInvalid``."""
    data = load_json(raw)
    if not isinstance(data, dict):
        raise SignalInvalid([FieldError("(body)", "must be a JSON object")])
    try:
        body = SignalIn.model_validate(data)
    except ValidationError as exc:
        raise SignalInvalid(_errors(exc)) from None
    instrument = body.instrument.upper()
    errors = _semantic(body, instrument, instruments)
    if errors:
        raise SignalInvalid(errors)
    return ValidSignal(body, instrument, canonical_hash(body))
