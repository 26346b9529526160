"""The one async interface every broker implements, and the value types it speaks.

Prices, volumes and money are ``Decimal``; times are timezone-aware UTC. Brokers translate
their own representation (MT5 named tuples, paper rows) into these types at the edge.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"


class FillingMode(StrEnum):
    FOK = "fok"
    IOC = "ioc"
    RETURN = "return"


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """What the broker says about one tradable symbol (MT5 ``symbol_info``)."""

    name: str
    digits: int
    point: Decimal
    tick_size: Decimal
    tick_value: Decimal  # account-currency value of one tick for 1.0 lot
    contract_size: Decimal
    volume_min: Decimal
    volume_max: Decimal
    volume_step: Decimal
    stops_level: int = 0  # points
    freeze_level: int = 0  # points
    filling_modes: frozenset[FillingMode] = frozenset({FillingMode.FOK, FillingMode.IOC})
    trade_allowed: bool = True
    currency_profit: str = "USD"


@dataclass(frozen=True, slots=True)
class Tick:
    symbol: str
    bid: Decimal
    ask: Decimal
    time: datetime


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    login: str
    balance: Decimal
    equity: Decimal
    margin: Decimal
    free_margin: Decimal
    currency: str = "USD"
    # MT5 ``account_info().margin_mode`` 2 (hedging: several positions per symbol, each with its
    # own TP) versus 0/1 (netting/exchange: one position per symbol). The paper broker hedges.
    hedging: bool = True


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A fully constructed order, ready for the broker. Built by ``engine.execution.orders``."""

    client_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    volume: Decimal
    price: Decimal
    sl: Decimal
    tp: Decimal
    filling: FillingMode
    expires_at: datetime | None = None
    deviation_points: int = 10


class SubmitStatus(StrEnum):
    ACCEPTED = "accepted"  # filled (fully or partly) or a pending order placed
    REFUSED = "refused"  # the broker said no; retrying the same request will not help
    UNKNOWN = "unknown"  # no reliable answer: look the order up before anything else
    RETRY = "retry"  # transient (requote, price moved): safe to re-price and resend


@dataclass(frozen=True, slots=True)
class SubmitResult:
    status: SubmitStatus
    retcode: int | None = None
    reason: str = ""
    ticket: str | None = None  # broker order ticket
    position_ticket: str | None = None
    filled_volume: Decimal | None = None
    price: Decimal | None = None
    # A named reason when the engine refused before sending (``engine.brokers.stops.ChangeRefusal``:
    # stops_level, freeze_level, wrong_side, invalid_volume, position_gone), else "".
    code: str = ""


@dataclass(frozen=True, slots=True)
class BrokerPosition:
    ticket: str
    symbol: str
    side: Side
    volume: Decimal
    open_price: Decimal
    sl: Decimal | None
    tp: Decimal | None
    profit: Decimal
    opened_at: datetime
    client_order_id: str | None = None  # None: not opened by this bot (manual / external)
    current_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    """A pending (limit/stop) order resting at the broker."""

    ticket: str
    symbol: str
    side: Side
    order_type: OrderType
    volume: Decimal
    price: Decimal
    sl: Decimal | None
    tp: Decimal | None
    expires_at: datetime | None
    client_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class Deal:
    ticket: str
    order_ticket: str
    position_ticket: str
    symbol: str
    side: Side
    volume: Decimal
    price: Decimal
    profit: Decimal
    time: datetime
    entry: str  # "in" | "out"
    commission: Decimal = Decimal(0)
    swap: Decimal = Decimal(0)
    client_order_id: str | None = None
    reason: str = ""  # "sl" | "tp" | "client" | "expert" | ...


@dataclass(frozen=True, slots=True)
class FoundOrder:
    """What the broker knows about a client order id (used to resolve unknown outcomes)."""

    client_order_id: str
    ticket: str
    state: str  # "filled" | "pending" | "cancelled" | "rejected"
    position_ticket: str | None = None
    filled_volume: Decimal | None = None
    price: Decimal | None = None


@dataclass(slots=True)
class BrokerHealth:
    connected: bool
    detail: str = ""
    extra: dict[str, str] = field(default_factory=dict)


class BrokerError(Exception):
    """The broker could not be reached or answered nonsense (not a refusal of an order)."""


class Broker(abc.ABC):
    """One execution account at one broker."""

    @abc.abstractmethod
    async def connect(self) -> None: ...

    @abc.abstractmethod
    async def health(self) -> BrokerHealth: ...

    @abc.abstractmethod
    async def account(self) -> AccountSnapshot: ...

    @abc.abstractmethod
    async def symbol_spec(self, symbol: str) -> SymbolSpec | None:
        """The spec, or None when the broker does not know the symbol."""

    @abc.abstractmethod
    async def tick(self, symbol: str) -> Tick: ...

    @abc.abstractmethod
    async def submit(self, request: OrderRequest) -> SubmitResult: ...

    @abc.abstractmethod
    async def find_by_client_id(self, client_order_id: str) -> FoundOrder | None: ...

    @abc.abstractmethod
    async def positions(self) -> list[BrokerPosition]: ...

    @abc.abstractmethod
    async def pending_orders(self) -> list[BrokerOrder]: ...

    @abc.abstractmethod
    async def cancel_order(self, ticket: str) -> SubmitResult: ...

    @abc.abstractmethod
    async def close_position(self, ticket: str, client_order_id: str) -> SubmitResult: ...

    @abc.abstractmethod
    async def modify_position(self, ticket: str, sl: Decimal | None, tp: Decimal | None) -> SubmitResult:
        """Set a position's stop loss and take profit (None removes one; both are always sent).

        Refused with a ``code`` before anything is sent when the stops or freeze level forbids it.
        Idempotent: the levels are absolute, and setting the levels a position already has is
        ACCEPTED (MT5 NO_CHANGES), so after a lost answer the caller simply asks again.
        """

    @abc.abstractmethod
    async def close_partial(self, ticket: str, volume: Decimal, client_order_id: str) -> SubmitResult:
        """Close ``volume`` lots of a position (an opposite deal on that position); the rest stays open
        under the same ticket. The deal carries ``client_order_id``: after a lost answer, look it up
        with ``find_by_client_id`` before asking again."""

    @abc.abstractmethod
    async def position_deals(self, ticket: str) -> list[Deal]:
        """Every deal of one position, oldest first, with its ``reason`` (tp, sl, client, expert...)."""

    async def close_all(self, client_order_id_prefix: str) -> list[SubmitResult]:
        """Close every open position; each close carries ``<prefix>:<ticket>`` as its id."""
        results = []
        for pos in await self.positions():
            results.append(await self.close_position(pos.ticket, f"{client_order_id_prefix}:{pos.ticket}"))
        return results

    @abc.abstractmethod
    async def deals(self, since: datetime, until: datetime) -> list[Deal]: ...

    @abc.abstractmethod
    async def close(self) -> None: ...
