"""When a symbol's market is open: the gate ``engine.execution.orders`` asks before it builds an order.

A *schedule* is either ``24/7`` (always open, e.g. crypto CFDs) or a set of weekly open windows on
the wall clock of one IANA time zone. Windows are evaluated in local time via ``zoneinfo``, so a
schedule written as "Friday 17:00 America/New_York" follows US daylight-saving time by itself
(17:00 EDT = 21:00 UTC in summer, 17:00 EST = 22:00 UTC in winter). Each window is half-open:
it is open *at* its start and closed *at* its end.

The default for every symbol without an override is the FX/metals week: open from Sunday 17:00 to
Friday 17:00 America/New_York (closed Friday 17:00 -> Sunday 17:00).

Settings string (``MARKET_HOURS``)
----------------------------------
``entry (";" entry)*`` where ``entry`` is ``PATTERN=SCHEDULE``. Blank entries are ignored::

    MARKET_HOURS="BTC*=24/7;US500=Mon-Fri 09:30-16:00 America/New_York"

* ``PATTERN`` is a symbol name, case-insensitive. It may contain ``*`` wildcards (``BTC*`` matches
  ``BTCUSD`` and ``BTCEUR``). ``*`` on its own replaces the default schedule for all other symbols.
  An exact name wins over a wildcard; among wildcards the first one written wins.
* ``SCHEDULE`` is ``24/7`` or ``WINDOW ("," WINDOW)* [ZONE]``:

  - ``Mon-Fri 09:30-16:00``: one daily session on each day of the range (ranges may wrap, e.g.
    ``Sun-Thu``). If the end is earlier than the start the session ends the next day, so
    ``Sun-Thu 18:00-17:00`` is the CME-style Sunday-evening-to-Friday week. ``24:00`` is accepted
    as an end time. A single day (``Wed 10:00-12:00``) works too.
  - ``Sun 17:00-Fri 17:00``: one span from a day and time to a day and time; it may wrap over the
    end of the week.
  - ``ZONE`` is an IANA zone name (``America/New_York``, ``Europe/London``, ``UTC``); it applies to
    every window of the schedule and defaults to ``UTC``.

  Days are ``Mon Tue Wed Thu Fri Sat Sun`` (any case). A window with no length is an error (write
  ``24/7`` for always open). Windows may overlap; the schedule is open if any window is.

Bad strings raise ``MarketHoursError`` naming the entry at fault.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from fnmatch import fnmatchcase
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()
_DAY = 86_400
_WEEK = 7 * _DAY

DEFAULT_SCHEDULE_TEXT = "Sun 17:00-Fri 17:00 America/New_York"
ALWAYS_OPEN_TEXT = "24/7"


class MarketHoursError(ValueError):
    """A market-hours setting that cannot be understood."""


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("market hours need a timezone-aware datetime")


@dataclass(frozen=True, slots=True)
class Window:
    """One weekly open window: ``start`` seconds after Monday 00:00 local, lasting ``length`` s."""

    start: int
    length: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < _WEEK:
            raise MarketHoursError(f"window start {self.start} is outside the week")
        if not 0 < self.length <= _WEEK:
            raise MarketHoursError(f"window length {self.length} must be within 1 s .. 7 days")

    def contains(self, second_of_week: int) -> bool:
        return (second_of_week - self.start) % _WEEK < self.length


@dataclass(frozen=True, slots=True)
class AlwaysOpen:
    """A market that never closes (crypto CFDs and the like)."""

    def is_open(self, now: datetime) -> bool:
        _require_aware(now)
        return True

    def next_open(self, now: datetime) -> datetime:
        _require_aware(now)
        return now

    def describe(self) -> str:
        return ALWAYS_OPEN_TEXT


@dataclass(frozen=True, slots=True)
class WeeklySchedule:
    """Weekly open windows on the wall clock of ``zone``."""

    zone: ZoneInfo
    windows: tuple[Window, ...]
    text: str = ""  # how it was written, for messages

    def __post_init__(self) -> None:
        if not self.windows:
            raise MarketHoursError("a weekly schedule needs at least one open window")

    def is_open(self, now: datetime) -> bool:
        _require_aware(now)
        local = now.astimezone(self.zone)
        second = local.weekday() * _DAY + local.hour * 3600 + local.minute * 60 + local.second
        return any(w.contains(second) for w in self.windows)

    def next_open(self, now: datetime) -> datetime:
        """``now`` if open, else the first instant (UTC) at which the schedule is open.

        The schedule can only open where the local clock reaches a window's start, or where the
        clock jumps (a DST change can jump into a window, or replay an hour that holds one), so
        those instants over the next eight days are the candidates.
        """
        _require_aware(now)
        if self.is_open(now):
            return now
        candidates = _clock_jumps(self.zone, now, now + timedelta(days=8))
        today = now.astimezone(self.zone).date()
        for w in self.windows:
            weekday, second_of_day = divmod(w.start, _DAY)
            for offset in range(-1, 9):
                day = today + timedelta(days=offset)
                if day.weekday() == weekday:
                    candidates.extend(_wall_instants(day, second_of_day, self.zone))
        return min(c for c in candidates if c > now and self.is_open(c))

    def describe(self) -> str:
        return self.text or f"{len(self.windows)} weekly window(s) in {self.zone.key}"


def _wall_instants(day: date, second_of_day: int, zone: ZoneInfo) -> list[datetime]:
    """Every UTC instant at which the local clock reads ``day`` + ``second_of_day``: none in a
    spring-forward gap, two in a fall-back repeat, else one."""
    hours, rest = divmod(second_of_day, 3600)
    wall = datetime.combine(day, time(hours, rest // 60, rest % 60))
    found = []
    for fold in (0, 1):
        instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == wall and instant not in found:
            found.append(instant)
    return found


def _clock_jumps(zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """The instants (UTC, to the second) in ``start..end`` at which ``zone``'s UTC offset changes."""
    jumps = []
    hour = 3600
    low = int(start.timestamp())
    while low < end.timestamp():
        high = low + hour
        before = datetime.fromtimestamp(low, zone).utcoffset()
        if datetime.fromtimestamp(high, zone).utcoffset() != before:
            a, b = low, high
            while b - a > 1:
                middle = (a + b) // 2
                if datetime.fromtimestamp(middle, zone).utcoffset() == before:
                    a = middle
                else:
                    b = middle
            jumps.append(datetime.fromtimestamp(b, UTC))
        low = high
    return jumps


Schedule = AlwaysOpen | WeeklySchedule


@dataclass(frozen=True, slots=True)
class MarketHours:
    """The schedule for every symbol: a default plus per-symbol overrides."""

    default: Schedule = field(default_factory=lambda: parse_schedule(DEFAULT_SCHEDULE_TEXT))
    overrides: Mapping[str, Schedule] = field(default_factory=dict)

    def schedule_for(self, symbol: str) -> Schedule:
        wanted = symbol.upper()
        for pattern, schedule in self.overrides.items():
            if "*" not in pattern and pattern.upper() == wanted:
                return schedule
        for pattern, schedule in self.overrides.items():
            if "*" in pattern and fnmatchcase(wanted, pattern.upper()):
                return schedule
        return self.default

    def is_open(self, symbol: str, now: datetime) -> bool:
        return self.schedule_for(symbol).is_open(now)

    def next_open(self, symbol: str, now: datetime) -> datetime:
        return self.schedule_for(symbol).next_open(now)


_TIME = r"(\d{1,2}):(\d{2})"
_DAILY = re.compile(rf"([a-z]{{3}})(?:\s*-\s*([a-z]{{3}}))?\s+{_TIME}\s*-\s*{_TIME}")
_SPAN = re.compile(rf"([a-z]{{3}})\s+{_TIME}\s*-\s*([a-z]{{3}})\s+{_TIME}")


def _day(name: str, where: str) -> int:
    try:
        return DAY_NAMES.index(name.lower())
    except ValueError:
        raise MarketHoursError(f"{where}: unknown day {name!r} (use Mon..Sun)") from None


def _seconds(hours: str, minutes: str, where: str, *, end: bool) -> int:
    h, m = int(hours), int(minutes)
    if (h, m) == (24, 0) and end:
        return _DAY
    if not (0 <= h <= 23 and 0 <= m <= 59):
        raise MarketHoursError(f"{where}: bad time {hours}:{minutes}")
    return h * 3600 + m * 60


def _parse_window(text: str) -> list[Window]:
    where = f"window {text!r}"
    lowered = text.lower()
    span = _SPAN.fullmatch(lowered)
    if span:
        d1, h1, m1, d2, h2, m2 = span.groups()
        start = _day(d1, where) * _DAY + _seconds(h1, m1, where, end=False)
        stop = _day(d2, where) * _DAY + _seconds(h2, m2, where, end=True)
        length = (stop - start) % _WEEK
        if length == 0:
            raise MarketHoursError(f"{where}: the window has no length (write 24/7 for always open)")
        return [Window(start, length)]
    daily = _DAILY.fullmatch(lowered)
    if not daily:
        raise MarketHoursError(f"{where}: expected e.g. 'Mon-Fri 09:30-16:00' or 'Sun 17:00-Fri 17:00'")
    d1, d2, h1, m1, h2, m2 = daily.groups()
    first = _day(d1, where)
    last = _day(d2, where) if d2 else first
    begin = _seconds(h1, m1, where, end=False)
    finish = _seconds(h2, m2, where, end=True)
    length = finish - begin if finish > begin else finish + _DAY - begin
    if finish == begin:
        raise MarketHoursError(f"{where}: the session has no length (write 24/7 for always open)")
    days = [(first + i) % 7 for i in range((last - first) % 7 + 1)]
    return [Window(day * _DAY + begin, length) for day in days]


def parse_schedule(text: str) -> Schedule:
    """One schedule: ``24/7`` or ``WINDOW ("," WINDOW)* [ZONE]`` (see the module docstring)."""
    body = " ".join(text.split())
    if not body:
        raise MarketHoursError("empty schedule")
    if body == ALWAYS_OPEN_TEXT:
        return AlwaysOpen()
    zone_name = "UTC"
    head, _, last = body.rpartition(" ")
    if head and ":" not in last:
        zone_name, body = last, head
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise MarketHoursError(f"schedule {text!r}: unknown time zone {zone_name!r}") from None
    windows: list[Window] = []
    for part in body.split(","):
        if not part.strip():
            raise MarketHoursError(f"schedule {text!r}: empty window")
        windows.extend(_parse_window(part.strip()))
    return WeeklySchedule(zone=zone, windows=tuple(windows), text=" ".join(text.split()))


def parse_market_hours(text: str, *, default: Schedule | None = None) -> MarketHours:
    """Parse the ``MARKET_HOURS`` setting; an empty string gives the default FX/metals week."""
    base = default if default is not None else parse_schedule(DEFAULT_SCHEDULE_TEXT)
    overrides: dict[str, Schedule] = {}
    for raw in text.split(";"):
        entry = raw.strip()
        if not entry:
            continue
        pattern, sep, schedule_text = entry.partition("=")
        pattern = pattern.strip().upper()
        if not sep or not pattern:
            raise MarketHoursError(f"entry {entry!r}: expected SYMBOL=SCHEDULE")
        if not re.fullmatch(r"[A-Z0-9._#*+-]+", pattern):
            raise MarketHoursError(f"entry {entry!r}: bad symbol pattern {pattern!r}")
        if pattern in overrides:
            raise MarketHoursError(f"entry {entry!r}: {pattern} is given twice")
        try:
            schedule = parse_schedule(schedule_text)
        except MarketHoursError as exc:
            raise MarketHoursError(f"entry {entry!r}: {exc}") from None
        if pattern == "*":
            base = schedule
        overrides[pattern] = schedule
    overrides.pop("*", None)
    return MarketHours(default=base, overrides=overrides)
