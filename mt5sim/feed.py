"""A deterministic price feed: every process computes the same quote for (symbol, time, seed).

The mid price is ``base * exp(vol * W(t))`` where ``W`` is a sum of smoothly interpolated,
hash-seeded noise octaves with periods from 1 s to about 18 h, each weighted by the square root
of its period, so it moves like a random walk at every scale up to a day and stays near its base
over longer spans. Nothing is stored: a quote is a pure function of its arguments, which is what
lets separate processes (the paper broker, the simulated terminal, a test) agree on prices.

Quotes are ``Decimal`` on the symbol's tick grid; the ask is the bid plus the symbol's spread.
The walk does not pause while a market is closed (the market-hours rule only gates trading).
"""

from __future__ import annotations

import hashlib
import math
import os
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal

from mt5sim.specs import DEFAULT_SPECS, Spec

_PERIODS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536)


def default_seed() -> int:
    return int(os.environ.get("MT5SIM_SEED", "0"))


def _noise(seed: int, symbol: str, octave: int, knot: int) -> float:
    digest = hashlib.blake2b(f"{seed}|{symbol}|{octave}|{knot}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**63 - 1.0


def walk(seed: int, symbol: str, t: float) -> float:
    """The dimensionless walk value W(t) for a symbol (t in Unix seconds)."""
    total = 0.0
    for octave, period in enumerate(_PERIODS):
        x = t / period
        knot = math.floor(x)
        frac = x - knot
        a = _noise(seed, symbol, octave, knot)
        b = _noise(seed, symbol, octave, knot + 1)
        smooth = frac * frac * (3.0 - 2.0 * frac)
        total += (a + (b - a) * smooth) * math.sqrt(period)
    return total


def to_grid(price: Decimal, spec: Spec) -> Decimal:
    ticks = (price / spec.tick_size).to_integral_value(rounding=ROUND_FLOOR)
    return (ticks * spec.tick_size).quantize(spec.point)


def spread_of(spec: Spec) -> Decimal:
    raw = spec.point * spec.spread
    ticks = max(1, int((raw / spec.tick_size).to_integral_value()))
    return (spec.tick_size * ticks).quantize(spec.point)


def walk_mid(spec: Spec, t: float, seed: int) -> Decimal:
    factor = math.exp(spec.volatility * walk(seed, spec.name, t))
    return spec.base_price * Decimal(repr(factor))


def quote_for(spec: Spec, t: float, seed: int) -> tuple[Decimal, Decimal]:
    spread = spread_of(spec)
    bid = to_grid(walk_mid(spec, t, seed) - spread / 2, spec)
    return bid, bid + spread


def quote(symbol: str, at: datetime | None = None, seed: int | None = None) -> tuple[Decimal, Decimal]:
    """(bid, ask) of a default symbol at ``at`` (default now), without any terminal or login.

    ``seed`` defaults to ``MT5SIM_SEED`` (else 0), the same default the simulated terminal uses,
    so a paper account and a simulated MT5 account see the same market. Prices pushed into a
    terminal's state file with ``mt5sim.control.set_price`` are not seen here; use
    ``mt5sim.control.quote(symbol)`` for the price a terminal sees.
    """
    spec = DEFAULT_SPECS.get(symbol.upper())
    if spec is None:
        raise KeyError(f"unknown symbol {symbol!r}")
    when = at if at is not None else datetime.now(UTC)
    if when.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    return quote_for(spec, when.timestamp(), default_seed() if seed is None else seed)


def symbols() -> list[str]:
    return sorted(DEFAULT_SPECS)
