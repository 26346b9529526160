"""Each subscriber's own risk limits (/settings → Risk): what they are, their defaults, changing them.

A subscriber's limits live in one ``risk_limits`` row; a column left NULL takes the admin's
default from settings (``LimitDefaults``), so changing a default changes it for everyone who has
not chosen otherwise. The limits:

| field | meaning | range | default |
|---|---|---|---|
| ``sizing`` | ``signal`` (the signal's risk %), ``risk_percent`` (their own), ``fixed`` (lots) | | ``RISK_SIZING`` |
| ``risk_percent`` | % of equity risked per trade when sizing is ``risk_percent`` | 0 < x ≤ 10 | ``DEFAULT_RISK_PERCENT`` |
| ``fixed_lots`` | lots per trade when sizing is ``fixed`` | 0.01..100 | ``RISK_FIXED_LOTS`` |
| ``max_lots`` | cap on one trade's volume (the order is made smaller) | 0.01..100 | ``MAX_VOLUME`` |
| ``max_positions`` | open trades at once (one signal's target legs are one trade) | 1..100 | ``RISK_MAX_POSITIONS`` |
| ``max_open_risk_percent`` | total risk of open trades, % of equity | 0 < x ≤ 100 | ``RISK_MAX_OPEN_RISK_PERCENT`` |
| ``daily_loss_percent`` | loss today, % of the day's starting equity, that pauses execution | 0 < x ≤ 100 | ``RISK_DAILY_LOSS_PERCENT`` |
| ``min_rr`` | signals with a lower reward:risk are not offered (nor executed) | 0 < x ≤ 20 | ``RISK_MIN_RR`` |
| ``instruments_off`` | instruments whose signals are not offered (nor executed) | ``INSTRUMENTS`` | none |

Values are Decimals with at most two decimals (whole numbers for ``max_positions``); a bad value
is refused with a ``LimitError`` naming the field and the rule, and nothing is saved. Sizing and
``max_lots`` apply when the order is built (``engine.execution``); every other limit is a gate of
the pre-trade risk chain (``engine.risk.limit_gates``); ``min_rr``, ``instruments_off`` and a
daily-loss pause also keep a signal from being offered (``offered``); the daily loss itself is
watched by the trading loop (``engine.risk.daily_loss``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.accounts.subscribers import Recipient
from engine.risk.trading_day import DEFAULT_TRADING_DAY_START, TradingDay
from engine.settings import RiskSizing
from engine.store.audit import audit
from engine.store.db import Database, utcnow
from engine.store.models import RiskLimits, Signal, User

if TYPE_CHECKING:
    from engine.settings import Settings

Sizing = RiskSizing
TWO_PLACES = Decimal("0.01")


class LimitError(Exception):
    """A limit value refused: ``code`` (not_a_number | out_of_range | too_precise | unknown_field |
    unknown_instrument | unknown_user), the field, and the facts for the message."""

    def __init__(self, code: str, message: str, field: str = "", **params: str) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.params = params


@dataclass(frozen=True, slots=True)
class Bounds:
    low: Decimal
    high: Decimal
    low_inclusive: bool
    whole: bool = False  # an integer (max_positions)

    def describe(self) -> str:
        return f"{'' if self.low_inclusive else 'above '}{self.low} to {self.high}"


# The fields a subscriber types a number for, and their ranges.
NUMBER_FIELDS: dict[str, Bounds] = {
    "risk_percent": Bounds(Decimal(0), Decimal(10), low_inclusive=False),
    "fixed_lots": Bounds(Decimal("0.01"), Decimal(100), low_inclusive=True),
    "max_lots": Bounds(Decimal("0.01"), Decimal(100), low_inclusive=True),
    "max_positions": Bounds(Decimal(1), Decimal(100), low_inclusive=True, whole=True),
    "max_open_risk_percent": Bounds(Decimal(0), Decimal(100), low_inclusive=False),
    "daily_loss_percent": Bounds(Decimal(0), Decimal(100), low_inclusive=False),
    "min_rr": Bounds(Decimal(0), Decimal(20), low_inclusive=False),
}
DEFAULT_WORDS = frozenset({"default", "reset", "predeterminado", "-"})


def parse_number(field: str, text: str) -> Decimal | int | None:
    """A typed value for ``field``: the number, or None for "default" (back to the admin's default)."""
    if field not in NUMBER_FIELDS:
        raise LimitError("unknown_field", f"{field!r} is not a limit one types a number for", field)
    cleaned = text.strip().rstrip("%").strip().replace(",", ".")
    if cleaned.lower() in DEFAULT_WORDS:
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise LimitError("not_a_number", f"{text!r} is not a number", field) from None
    return check_number(field, value)


def check_number(field: str, value: Decimal) -> Decimal | int:
    """``value`` if it is in ``field``'s range (two decimals at most; whole where it must be)."""
    bounds = NUMBER_FIELDS.get(field)
    if bounds is None:
        raise LimitError("unknown_field", f"{field!r} is not a limit one types a number for", field)
    if not value.is_finite():
        raise LimitError("not_a_number", f"{value} is not a number", field)
    above = value >= bounds.low if bounds.low_inclusive else value > bounds.low
    if not (above and value <= bounds.high):
        raise LimitError(
            "out_of_range",
            f"{field} must be {bounds.describe()}, got {value}",
            field,
            low=str(bounds.low),
            high=str(bounds.high),
        )
    if bounds.whole:
        if value != value.to_integral_value():
            raise LimitError(
                "out_of_range",
                f"{field} must be a whole number, got {value}",
                field,
                low=str(bounds.low),
                high=str(bounds.high),
            )
        return int(value)
    if value != value.quantize(TWO_PLACES):
        raise LimitError("too_precise", f"{field} takes at most two decimals, got {value}", field)
    return value


@dataclass(frozen=True, slots=True)
class LimitDefaults:
    """The admin's defaults (settings); the values a subscriber's NULL columns take."""

    sizing: RiskSizing = RiskSizing.SIGNAL
    risk_percent: Decimal = Decimal(1)
    fixed_lots: Decimal = Decimal("0.01")
    max_lots: Decimal | None = None
    max_positions: int | None = None
    max_open_risk_percent: Decimal | None = None
    daily_loss_percent: Decimal | None = None
    min_rr: Decimal | None = None
    trading_day: TradingDay = field(default_factory=lambda: TradingDay.parse(DEFAULT_TRADING_DAY_START))

    @classmethod
    def from_settings(cls, settings: Settings) -> LimitDefaults:
        return cls(
            sizing=settings.risk_sizing,
            risk_percent=settings.default_risk_percent,
            fixed_lots=settings.risk_fixed_lots,
            max_lots=settings.max_volume,
            max_positions=settings.risk_max_positions,
            max_open_risk_percent=settings.risk_max_open_risk_percent,
            daily_loss_percent=settings.risk_daily_loss_percent,
            min_rr=settings.risk_min_rr,
            trading_day=TradingDay.parse(settings.trading_day_start),
        )


LIMIT_FIELDS = (
    "sizing",
    "risk_percent",
    "fixed_lots",
    "max_lots",
    "max_positions",
    "max_open_risk_percent",
    "daily_loss_percent",
    "min_rr",
)


@dataclass(frozen=True, slots=True)
class EffectiveLimits:
    """One subscriber's limits with the defaults filled in."""

    sizing: RiskSizing
    risk_percent: Decimal
    fixed_lots: Decimal
    max_lots: Decimal | None
    max_positions: int | None
    max_open_risk_percent: Decimal | None
    daily_loss_percent: Decimal | None
    min_rr: Decimal | None
    instruments_off: frozenset[str]
    paused_until: datetime | None  # the daily loss limit was reached; execution waits until then
    own: frozenset[str]  # the fields the subscriber chose (the rest are the admin's defaults)

    def paused(self, now: datetime) -> bool:
        return self.paused_until is not None and self.paused_until > now

    def offers(self, signal: Signal, now: datetime) -> bool:
        """Whether ``signal`` is offered to this subscriber at all."""
        if signal.instrument.upper() in self.instruments_off or self.paused(now):
            return False
        rr = signal_reward_risk(signal)
        return self.min_rr is None or rr is None or rr >= self.min_rr


@dataclass(frozen=True, slots=True)
class OfferRule:
    """Who one signal is offered to, as two sets a set-based planner can use: everyone without a
    row of their own gets ``default``; the users in ``flipped`` (whose own limits decide otherwise)
    get the opposite."""

    default: bool
    flipped: frozenset[int]


def offer_rule(signal: Any, rows: Sequence[Any], defaults: LimitDefaults, now: datetime) -> OfferRule:
    """``offers`` for every subscriber at once: ``rows`` are the ``risk_limits`` rows (ORM objects or
    rows with the same columns), ``signal`` anything with ``instrument``, ``entry``, ``sl``, ``tp``."""
    default = resolve(None, defaults).offers(signal, now)
    flipped = frozenset(row.user_id for row in rows if resolve(row, defaults).offers(signal, now) != default)
    return OfferRule(default, flipped)


def resolve(row: RiskLimits | None, defaults: LimitDefaults) -> EffectiveLimits:
    """The limits of the subscriber whose row this is (None: no row, every default)."""
    own = {name: getattr(row, name) for name in LIMIT_FIELDS} if row is not None else {}
    chosen = {name: value for name, value in own.items() if value is not None}

    def pick(name: str) -> Any:
        return chosen[name] if name in chosen else getattr(defaults, name)

    return EffectiveLimits(
        sizing=RiskSizing(pick("sizing")),
        risk_percent=pick("risk_percent"),
        fixed_lots=pick("fixed_lots"),
        max_lots=pick("max_lots"),
        max_positions=pick("max_positions"),
        max_open_risk_percent=pick("max_open_risk_percent"),
        daily_loss_percent=pick("daily_loss_percent"),
        min_rr=pick("min_rr"),
        instruments_off=frozenset(str(i).upper() for i in (row.instruments_off if row else None) or []),
        paused_until=row.paused_until if row is not None else None,
        own=frozenset(chosen),
    )


def signal_reward_risk(signal: Signal) -> Decimal | None:
    """The reward:risk a signal declares, from its entry to the furthest target (None without an
    entry: a market signal's real R:R is known only at the order price)."""
    if signal.entry is None:
        return None
    risk = abs(signal.entry - signal.sl)
    if risk == 0:
        return None
    return abs(signal.tp - signal.entry) / risk


def rounded_rr(value: Decimal) -> Decimal:
    return value.quantize(TWO_PLACES, rounding=ROUND_HALF_UP)


async def limits_of(session: AsyncSession, user_id: int, defaults: LimitDefaults) -> EffectiveLimits:
    return resolve(await session.get(RiskLimits, user_id), defaults)


@dataclass(frozen=True, slots=True)
class RiskView:
    """What /settings → Risk shows: the limits, and the instruments one can turn on or off."""

    limits: EffectiveLimits
    defaults: LimitDefaults
    instruments: tuple[str, ...]


class RiskLimitsService:
    """Reading and changing subscribers' limits, and filtering who a signal is offered to."""

    def __init__(self, db: Database, defaults: LimitDefaults, instruments: Sequence[str]) -> None:
        self._db = db
        self.defaults = defaults
        self.instruments = tuple(i.upper() for i in instruments)

    @classmethod
    def from_settings(cls, db: Database, settings: Settings) -> RiskLimitsService:
        return cls(db, LimitDefaults.from_settings(settings), settings.instruments)

    async def view(self, telegram_id: int) -> RiskView | None:
        async with self._db.session() as session:
            user = await self._user(session, telegram_id)
            if user is None:
                return None
            return self._view(await limits_of(session, user.id, self.defaults))

    def _view(self, limits: EffectiveLimits) -> RiskView:
        return RiskView(limits, self.defaults, self.instruments)

    async def set_number(self, telegram_id: int, field: str, text: str, actor: str) -> RiskView:
        """Set a numeric limit from what the subscriber typed ("default": back to the default)."""
        value = parse_number(field, text)
        return await self.change(telegram_id, actor, **{field: value})

    async def set_sizing(self, telegram_id: int, sizing: str, actor: str) -> RiskView:
        try:
            mode = RiskSizing(sizing)
        except ValueError:
            modes = [s.value for s in RiskSizing]
            raise LimitError("out_of_range", f"sizing must be one of {modes}", "sizing") from None
        return await self.change(telegram_id, actor, sizing=mode.value)

    async def toggle_instrument(self, telegram_id: int, instrument: str, actor: str) -> RiskView:
        name = instrument.upper()
        if name not in self.instruments:
            raise LimitError(
                "unknown_instrument", f"{instrument!r} is not a configured instrument", "instruments"
            )
        async with self._db.session() as session:
            user = await self._user(session, telegram_id)
            if user is None:
                raise LimitError("unknown_user", "send /start first")
            row = await self._row(session, user.id)
            off = set(row.instruments_off or [])
            off.symmetric_difference_update({name})
            row.instruments_off = sorted(off)
            audit(session, actor, "risk.instrument", f"user:{user.id}", instrument=name, on=name not in off)
            await session.flush()
            return self._view(resolve(row, self.defaults))

    async def change(self, telegram_id: int, actor: str, **values: Any) -> RiskView:
        """Write limits (None: back to the default), audited; validated by the callers' parsers."""
        async with self._db.session() as session:
            user = await self._user(session, telegram_id)
            if user is None:
                raise LimitError("unknown_user", "send /start first")
            row = await self.write(session, user.id, actor, **values)
            return self._view(resolve(row, self.defaults))

    async def write(self, session: AsyncSession, user_id: int, actor: str, **values: Any) -> RiskLimits:
        """The same inside the caller's transaction (auto-execution's /auto risk and maxvol)."""
        unknown = set(values) - set(LIMIT_FIELDS)
        if unknown:
            raise LimitError("unknown_field", f"not limits: {sorted(unknown)}", ",".join(sorted(unknown)))
        row = await self._row(session, user_id)
        for name, value in values.items():
            setattr(row, name, value)
        changes = {name: None if value is None else str(value) for name, value in values.items()}
        audit(session, actor, "risk.limits", f"user:{user_id}", **changes)
        await session.flush()
        return row

    async def _user(self, session: AsyncSession, telegram_id: int) -> User | None:
        return await session.scalar(select(User).where(User.telegram_id == telegram_id))

    async def _row(self, session: AsyncSession, user_id: int) -> RiskLimits:
        row = await session.get(RiskLimits, user_id, with_for_update=True)
        if row is None:
            row = RiskLimits(user_id=user_id, instruments_off=[])
            session.add(row)
        return row

    # ------------------------------------------------------------------ who a signal is offered to

    async def offered(
        self, session: AsyncSession, signal: Signal, recipients: Sequence[Recipient]
    ) -> list[Recipient]:
        """The recipients whose own limits let ``signal`` be offered to them: not below their
        minimum R:R, not an instrument they turned off, not paused by their daily loss limit."""
        if not recipients:
            return []
        now = utcnow()
        # Every row (only subscribers who changed a limit have one), not an IN list of thousands.
        rows = {row.user_id: row for row in (await session.scalars(select(RiskLimits))).all()}
        everyone = resolve(None, self.defaults)
        return [
            r
            for r in recipients
            if (resolve(rows[r.user_id], self.defaults) if r.user_id in rows else everyone).offers(
                signal, now
            )
        ]
