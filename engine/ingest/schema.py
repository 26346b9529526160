"""The producer signal body (docs/webhook.md): JSON parsing, schema and semantic rules.

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


MAX_TARGETS = 4
_TP_REQUIRED = "required unless targets is given"
MAX_TRAIL_POINTS = 1_000_000


class TargetIn(BaseModel):
    """One take-profit level and the share of the position closed there."""

    model_config = ConfigDict(extra="forbid")

    price: Price
    close_percent: StrictInt = Field(ge=1, le=100)


@dataclass(frozen=True, slots=True)
class Target:
    """A take-profit level as stored and traded (``tp`` alone is one target of 100 %)."""

    price: Decimal
    close_percent: int


class SignalIn(BaseModel):
    """The body as the producer sends it (before defaults from settings)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    id: CleanText | None = Field(default=None, min_length=1, max_length=64)
    instrument: CleanText = Field(min_length=1, max_length=32)
    side: Literal["buy", "sell"]
    order_type: Literal["market", "limit", "stop"] = "market"
    entry: Price | None = None
    sl: Price
    tp: Price | None = None
    targets: list[TargetIn] | None = Field(default=None, min_length=1, max_length=MAX_TARGETS)
    breakeven_after: StrictInt | None = Field(default=None, ge=0, le=MAX_TARGETS)
    trail_points: StrictInt | None = Field(default=None, ge=1, le=MAX_TRAIL_POINTS)
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

    @property
    def targets(self) -> tuple[Target, ...]:
        """The take-profit levels in order of distance from entry (``tp`` is one of 100 %)."""
        if self.body.targets is not None:
            return tuple(Target(t.price, t.close_percent) for t in self.body.targets)
        assert self.body.tp is not None
        return (Target(self.body.tp, 100),)

    @property
    def tp(self) -> Decimal:
        """The furthest target: the take profit of the whole position."""
        return self.targets[-1].price

    @property
    def breakeven_after(self) -> int:
        if self.body.breakeven_after is not None:
            return self.body.breakeven_after
        return 1 if len(self.targets) >= 2 else 0


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
        if not buy and not body.sl > body.entry:
            errors.append(FieldError("sl", "must be above entry for a sell"))
    if body.tp is None and body.targets is None:
        errors.append(FieldError("tp", _TP_REQUIRED))
    elif body.tp is not None and body.targets is not None:
        errors.append(FieldError("targets", "give either tp or targets, not both"))
    elif body.tp is not None:
        errors.extend(_levels_errors(body, [("tp", body.tp)], buy))
    else:
        assert body.targets is not None
        errors.extend(_targets_errors(body, body.targets, buy))
    count = len(body.targets) if body.targets is not None else 1
    if body.breakeven_after is not None and body.breakeven_after > count:
        errors.append(FieldError("breakeven_after", f"must be at most the number of targets ({count})"))
    return errors


def _levels_errors(body: SignalIn, levels: list[tuple[str, Decimal]], buy: bool) -> list[FieldError]:
    """Each take profit beyond the entry (or the stop, for a market order without one) and beyond
    the one before it."""
    errors: list[FieldError] = []
    above = "above" if buy else "below"
    for n, (name, price) in enumerate(levels):
        if body.entry is not None and not (price > body.entry if buy else price < body.entry):
            errors.append(FieldError(name, f"must be {above} entry for a {body.side}"))
        elif body.entry is None and n == 0 and not (body.sl < price if buy else body.sl > price):
            errors.append(FieldError("sl", f"must be {'below' if buy else 'above'} {name} for a {body.side}"))
        if n > 0:
            previous_name, previous = levels[n - 1]
            if not (price > previous if buy else price < previous):
                errors.append(FieldError(name, f"must be {above} {previous_name} for a {body.side}"))
    return errors


def _targets_errors(body: SignalIn, targets: list[TargetIn], buy: bool) -> list[FieldError]:
    errors = _levels_errors(body, [(f"targets.{n}.price", t.price) for n, t in enumerate(targets)], buy)
    total = sum(t.close_percent for t in targets)
    if total != 100:
        errors.append(FieldError("targets", f"close_percent must sum to 100, got {total}"))
    return errors


def canonical_hash(body: SignalIn) -> str:
    data: dict[str, Any] = {}
    for name in SignalIn.model_fields:
        value = getattr(body, name)
        if isinstance(value, list):
            data[name] = [{"price": format(t.price, "f"), "close_percent": t.close_percent} for t in value]
        elif value is not None:
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
        errors = _errors(exc)
        if "tp" not in data and "targets" not in data:
            errors.append(FieldError("tp", _TP_REQUIRED))
        raise SignalInvalid(errors) from None
    instrument = body.instrument.upper()
    errors = _semantic(body, instrument, instruments)
    if errors:
        raise SignalInvalid(errors)
    return ValidSignal(body, instrument, canonical_hash(body))
