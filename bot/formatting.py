"""Numbers, money, dates and durations for people, in their locale (Babel): the one place the bot
formats them, so a message never mixes "0.16" with "-18,43".

Every function takes the locale explicitly; ``bot.render`` wraps them with the current update's
locale. Prices keep every significant digit (no grouping, trailing zeros dropped); money has two
decimals, grouping and always its currency; times are UTC and say so.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from babel.dates import format_datetime
from babel.numbers import format_decimal
from babel.units import format_unit

DASH = "—"
CENTS = Decimal("0.01")
_PRICE = "0.############"  # up to 12 places, as stored; no grouping, so a price reads as it is typed
_MONEY = "#,##0.00"
_WHEN = "d MMM y, HH:mm"


def _decimal(value: Decimal | str | int) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def number(value: Decimal | str | int | None, locale: str, places: int = 2) -> str:
    """A plain quantity (a ratio, a percentage's number, a count of points) to ``places`` decimals."""
    if value is None:
        return DASH
    d = _decimal(value)
    if d.is_infinite():
        return "∞"
    pattern = "#,##0" + ("." + "#" * places if places else "")
    return format_decimal(d, format=pattern, locale=locale)


def price(value: Decimal | str | None, locale: str) -> str:
    if value is None:
        return DASH
    return format_decimal(_decimal(value), format=_PRICE, locale=locale, decimal_quantization=False)


def money(value: Decimal | str | None, currency: str, locale: str, *, signed: bool = False) -> str:
    """``1,234.50 USD`` / ``1.234,50 USD``; ``signed`` puts a ``+`` before gains."""
    if value is None:
        return DASH
    amount = _decimal(value).quantize(CENTS, rounding=ROUND_HALF_UP)
    pattern = "+" + _MONEY + ";-" + _MONEY if signed and amount != 0 else _MONEY
    text = format_decimal(amount, format=pattern, locale=locale)
    return f"{text} {currency}".strip()


def when(moment: datetime, locale: str) -> str:
    """A UTC date and time: ``2 Dec 2026, 03:46 UTC`` / ``2 dic 2026, 03:46 UTC``."""
    return format_datetime(moment.astimezone(UTC), _WHEN, tzinfo=UTC, locale=locale) + " UTC"


_UNITS = ((86400, "duration-day"), (3600, "duration-hour"), (60, "duration-minute"))


def duration(value: timedelta | int, locale: str) -> str:
    """Exactly, in the largest unit that divides it: ``15 minutes``, ``100 horas``, ``90 seconds``."""
    seconds = int(value.total_seconds()) if isinstance(value, timedelta) else int(value)
    for size, unit in _UNITS:
        if seconds >= size and seconds % size == 0:
            return format_unit(seconds // size, unit, length="long", locale=locale)
    return format_unit(seconds, "duration-second", length="long", locale=locale)
