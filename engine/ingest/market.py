"""The door's look at the market: a signal that can never execute is refused before it is stored.

When the engine knows a price for the instrument (a connected terminal or the paper price
source), ``market_errors`` names, with the market price in the message:

- a market signal whose stop or target is already on the wrong side of the market (a buy's
  ``sl`` at or above the bid, its ``tp`` at or below the ask; the mirror for a sell);
- an ``entry`` further than ``MAX_ENTRY_DEVIATION_PERCENT`` from the market's mid price.

When no price is known (no terminal connected yet, an instrument no source prices, a slow
terminal), the signal is accepted as before: order construction still checks every level
against the live quote when a subscriber approves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal

from loguru import logger

from engine.brokers.base import Broker, Tick
from engine.brokers.pricefeed import PriceSource
from engine.ingest.schema import FieldError, SignalIn

QuoteLookup = Callable[[str], Awaitable[Tick | None]]
QUOTE_TIMEOUT_SECONDS = 1.0


def _num(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def market_errors(body: SignalIn, tick: Tick, max_entry_percent: Decimal) -> list[FieldError]:
    """What is wrong with ``body`` at this market (empty when nothing is)."""
    errors: list[FieldError] = []
    buy = body.side == "buy"
    bid, ask = tick.bid, tick.ask
    if body.order_type == "market":
        targets = [(f"targets.{n}.price", t.price) for n, t in enumerate(body.targets or [])]
        if body.tp is not None:
            targets.append(("tp", body.tp))
        if buy and body.sl >= bid:
            errors.append(FieldError("sl", f"must be below the market price (bid {_num(bid)}) for a buy"))
        if not buy and body.sl <= ask:
            errors.append(FieldError("sl", f"must be above the market price (ask {_num(ask)}) for a sell"))
        for name, level in targets:
            if buy and level <= ask:
                errors.append(FieldError(name, f"must be above the market price (ask {_num(ask)}) for a buy"))
            if not buy and level >= bid:
                errors.append(
                    FieldError(name, f"must be below the market price (bid {_num(bid)}) for a sell")
                )
    if body.entry is not None:
        mid = (bid + ask) / 2
        deviation = abs(body.entry - mid) / mid * 100
        if deviation > max_entry_percent:
            errors.append(
                FieldError(
                    "entry",
                    f"is {_num(deviation.quantize(Decimal('0.1')))}% away from the market price "
                    f"{_num(mid)}; at most {_num(max_entry_percent)}% (MAX_ENTRY_DEVIATION_PERCENT)",
                )
            )
    return errors


class MarketQuotes:
    """A quote for an instrument from whatever knows it: a connected broker, else a price source."""

    def __init__(
        self,
        brokers: Callable[[], Mapping[int, Broker]],
        source: PriceSource | None = None,
        timeout: float = QUOTE_TIMEOUT_SECONDS,
    ) -> None:
        self._brokers = brokers
        self._source = source
        self._timeout = timeout

    async def __call__(self, instrument: str) -> Tick | None:
        for broker in list(self._brokers().values()):
            try:
                async with asyncio.timeout(self._timeout):
                    tick = await broker.tick(instrument)
            except Exception as exc:  # not this account's symbol, disconnected, slow: ask the next
                logger.debug("no {} quote from a broker for the door check: {!r}", instrument, exc)
                continue
            if 0 < tick.bid <= tick.ask:
                return tick
        quoted = self._source.tick(instrument) if self._source is not None else None
        if quoted is not None and 0 < quoted.bid <= quoted.ask:
            return quoted
        return None
