"""The trading day: when a subscriber's daily loss limit starts counting afresh.

A trading day starts every day at one wall-clock time in one IANA zone (``TRADING_DAY_START``,
default ``17:00 America/New_York``: the FX and metals rollover, 21:00 UTC in summer and 22:00 UTC
in winter, following US daylight-saving time by itself). The day that starts on Friday at 17:00
New York time spans the weekend, when the market is closed anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TRADING_DAY_START = "17:00 America/New_York"
_PATTERN = re.compile(r"\s*(\d{1,2}):(\d{2})\s+(\S+)\s*")


@dataclass(frozen=True, slots=True)
class TradingDay:
    at: time  # the wall-clock time a trading day starts
    zone: ZoneInfo

    @classmethod
    def parse(cls, text: str) -> TradingDay:
        """``"HH:MM Zone"`` (e.g. ``17:00 America/New_York``, ``00:00 UTC``); ValueError otherwise."""
        match = _PATTERN.fullmatch(text)
        if match is None:
            raise ValueError(f"{text!r} is not 'HH:MM Zone' (for example '17:00 America/New_York')")
        hours, minutes, zone_name = int(match[1]), int(match[2]), match[3]
        if hours > 23 or minutes > 59:
            raise ValueError(f"{text!r}: the time must be 00:00..23:59")
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{text!r}: {zone_name!r} is not an IANA time zone") from None
        return cls(time(hours, minutes), zone)

    def _start_on(self, day: datetime) -> datetime:
        return datetime.combine(day.date(), self.at, tzinfo=self.zone).astimezone(UTC)

    def start(self, now: datetime) -> datetime:
        """When the trading day containing ``now`` started (UTC)."""
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("the trading day needs a timezone-aware datetime")
        local = now.astimezone(self.zone)
        start = self._start_on(local)
        if start > now:
            start = self._start_on(local - timedelta(days=1))
        return start

    def next_start(self, now: datetime) -> datetime:
        """When the next trading day starts (UTC): the end of the one containing ``now``."""
        local = self.start(now).astimezone(self.zone)
        return self._start_on(local + timedelta(days=1))

    def describe(self) -> str:
        return f"{self.at.strftime('%H:%M')} {self.zone.key}"
