"""Symbol specifications the simulated trade server ships with, and their trading sessions.

Sessions (America/New_York wall clock, so daylight saving follows New York):
- ``fx`` (FX and metals): closed from Friday 17:00 to Sunday 17:00.
- ``index``: the FX weekend plus a daily 17:00-18:00 maintenance break.
- ``crypto``: always open.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from mt5sim import constants as c

NEW_YORK = ZoneInfo("America/New_York")


@dataclass(frozen=True)
class Spec:
    name: str
    digits: int
    tick_size: Decimal
    contract_size: Decimal
    volume_min: Decimal
    volume_max: Decimal
    volume_step: Decimal
    base_price: Decimal  # centre of the simulated random walk
    spread: int  # points
    volatility: float  # relative volatility per sqrt(second)
    currency_base: str
    currency_profit: str
    currency_margin: str
    description: str
    path: str
    session: str = "fx"  # fx | index | crypto
    calc_mode: int = c.SYMBOL_CALC_MODE_FOREX
    stops_level: int = 0  # points
    freeze_level: int = 0  # points
    trade_mode: int = c.SYMBOL_TRADE_MODE_FULL
    exemode: int = c.SYMBOL_TRADE_EXECUTION_MARKET
    filling_mode: int = c.FILLING_BIT_FOK | c.FILLING_BIT_IOC
    expiration_mode: int = (
        c.EXPIRATION_BIT_GTC
        | c.EXPIRATION_BIT_DAY
        | c.EXPIRATION_BIT_SPECIFIED
        | c.EXPIRATION_BIT_SPECIFIED_DAY
    )
    order_mode: int = 127
    volume_limit: Decimal = Decimal(0)

    @property
    def point(self) -> Decimal:
        return Decimal(1).scaleb(-self.digits)

    def with_overrides(self, overrides: dict[str, Any]) -> Spec:
        fields = {f.name: f for f in dataclasses.fields(self)}
        clean: dict[str, Any] = {}
        for key, value in overrides.items():
            if key not in fields:
                raise ValueError(f"unknown symbol field {key!r}")
            current = getattr(self, key)
            clean[key] = Decimal(str(value)) if isinstance(current, Decimal) else type(current)(value)
        return dataclasses.replace(self, **clean)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = str(value) if isinstance(value, Decimal) else value
        return out


def _fx(name: str, base: str, digits: int, price: str, spread: int, **kw: Any) -> Spec:
    tick = Decimal(1).scaleb(-digits)
    return Spec(
        name=name,
        digits=digits,
        tick_size=tick,
        contract_size=Decimal(100000),
        volume_min=Decimal("0.01"),
        volume_max=Decimal(100),
        volume_step=Decimal("0.01"),
        base_price=Decimal(price),
        spread=spread,
        volatility=1.3e-5,
        currency_base=name[:3],
        currency_profit=name[3:6],
        currency_margin=name[:3],
        description=base,
        path=f"Forex\\{name}",
        stops_level=10,
        freeze_level=5,
        **kw,
    )


DEFAULT_SPECS: dict[str, Spec] = {
    s.name: s
    for s in (
        _fx("EURUSD", "Euro vs US Dollar", 5, "1.08500", 8),
        _fx("GBPUSD", "Great Britain Pound vs US Dollar", 5, "1.27000", 12),
        _fx("USDJPY", "US Dollar vs Japanese Yen", 3, "150.000", 10),
        Spec(
            name="XAUUSD",
            digits=2,
            tick_size=Decimal("0.01"),
            contract_size=Decimal(100),
            volume_min=Decimal("0.01"),
            volume_max=Decimal(50),
            volume_step=Decimal("0.01"),
            base_price=Decimal("2350.00"),
            spread=25,
            volatility=2.7e-5,
            currency_base="XAU",
            currency_profit="USD",
            currency_margin="XAU",
            description="Gold vs US Dollar",
            path="Metals\\XAUUSD",
            calc_mode=c.SYMBOL_CALC_MODE_CFD,
            stops_level=20,
            freeze_level=10,
            exemode=c.SYMBOL_TRADE_EXECUTION_INSTANT,
            filling_mode=c.FILLING_BIT_FOK,
        ),
        Spec(
            name="US500",
            digits=2,
            tick_size=Decimal("0.25"),
            contract_size=Decimal(1),
            volume_min=Decimal("0.1"),
            volume_max=Decimal(100),
            volume_step=Decimal("0.1"),
            base_price=Decimal("5200.00"),
            spread=50,
            volatility=2.7e-5,
            currency_base="USD",
            currency_profit="USD",
            currency_margin="USD",
            description="US 500 Cash Index",
            path="Indices\\US500",
            session="index",
            calc_mode=c.SYMBOL_CALC_MODE_CFDINDEX,
            stops_level=100,
            freeze_level=0,
            filling_mode=c.FILLING_BIT_IOC,
        ),
        Spec(
            name="BTCUSD",
            digits=2,
            tick_size=Decimal("0.01"),
            contract_size=Decimal(1),
            volume_min=Decimal("0.01"),
            volume_max=Decimal(10),
            volume_step=Decimal("0.01"),
            base_price=Decimal("65000.00"),
            spread=1500,
            volatility=1.1e-4,
            currency_base="BTC",
            currency_profit="USD",
            currency_margin="BTC",
            description="Bitcoin vs US Dollar",
            path="Crypto\\BTCUSD",
            session="crypto",
            calc_mode=c.SYMBOL_CALC_MODE_CFD,
            stops_level=0,
            freeze_level=0,
        ),
    )
}

# Symbols a fresh account has in Market Watch (others need symbol_select first).
DEFAULT_SELECTED = ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD")


def market_open(session: str, at: datetime) -> bool:
    """Whether a symbol with this session kind trades at ``at`` (aware datetime)."""
    if session == "crypto":
        return True
    local = at.astimezone(NEW_YORK)
    weekday, hour = local.weekday(), local.hour  # Monday = 0
    if weekday == 5 or (weekday == 4 and hour >= 17) or (weekday == 6 and hour < 17):
        return False
    return not (session == "index" and hour == 17 and weekday != 6)


def utc_from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
