"""The command layer's plain data: what status, positions, pause/resume and close-all answer.

Frozen dataclasses of Decimals, ints, strings and aware datetimes, never text for a person:
the Telegram admin commands, the CLI and the admin REST API each render them (``as_json``
gives the REST API's shape).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any


class ScopeKind(StrEnum):
    EVERYTHING = "everything"
    ACCOUNT = "account"
    SUBSCRIBER = "subscriber"  # by Telegram user id: every active account of theirs


@dataclass(frozen=True, slots=True)
class Scope:
    kind: ScopeKind = ScopeKind.EVERYTHING
    id: int | None = None  # account id, or the subscriber's Telegram id

    @classmethod
    def everything(cls) -> Scope:
        return cls()

    @classmethod
    def account(cls, account_id: int) -> Scope:
        return cls(ScopeKind.ACCOUNT, account_id)

    @classmethod
    def subscriber(cls, telegram_id: int) -> Scope:
        return cls(ScopeKind.SUBSCRIBER, telegram_id)

    @classmethod
    def of(cls, account: int | None = None, subscriber: int | None = None) -> Scope:
        """From the front ends' options: at most one of the two."""
        if account is not None and subscriber is not None:
            raise OpsError("bad_scope", "give an account or a subscriber, not both")
        if account is not None:
            return cls.account(account)
        if subscriber is not None:
            return cls.subscriber(subscriber)
        return cls.everything()

    def describe(self) -> str:
        """``everything``, ``account:12`` or ``subscriber:7000001`` (the audit line's target)."""
        return self.kind.value if self.id is None else f"{self.kind.value}:{self.id}"


class OpsError(Exception):
    """A command that cannot run as asked (unknown account or subscriber, bad scope): nothing changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Owner:
    telegram_id: int
    username: str | None
    first_name: str | None


@dataclass(frozen=True, slots=True)
class AccountStatus:
    id: int
    kind: str
    label: str | None
    owner: Owner | None  # None: the operator's own account
    trading_state: str  # active | reducing | halted
    state_reason: str | None
    drawdown_state: str  # ok | soft | hard
    currency: str
    equity: Decimal | None
    equity_at: datetime | None  # when it was read (now, or the last recorded point)
    equity_live: bool  # read from the broker now (False: the last recorded point, or none)
    open_positions: int
    pending_orders: int


@dataclass(frozen=True, slots=True)
class Leader:
    instance: str  # host:pid of the process running the trading loop
    loop_id: str | None
    alive: bool  # its last heartbeat is recent (within three heartbeat periods)


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    name: str  # as in MT5_GATEWAYS (``default``: MT5_GATEWAY_URL)
    up: bool  # answered, its answer verified, every terminal it holds connected
    detail: str | None  # why not (unreachable, refused, which logins are down)


@dataclass(frozen=True, slots=True)
class InstanceStatus:
    """One running instance (``tradebot run``) as it last reported itself."""

    id: str
    host: str
    pid: int
    started_at: datetime
    seen_at: datetime
    alive: bool  # seen within the account lease time
    leader: bool  # runs the trading loop
    accounts: int  # MT5 accounts it owns
    redis: str | None  # not configured | up | down
    telegram_budget: str | None  # shared through Redis, or the local share and why


@dataclass(frozen=True, slots=True)
class EngineStatus:
    paused: bool
    paused_by: str | None
    paused_at: datetime | None
    heartbeat_at: datetime | None
    leader: Leader | None
    open_positions: int
    pending_orders: int
    outbox_pending: int
    accounts_total: int
    accounts: tuple[AccountStatus, ...]  # at most the first ``limit``, by id
    simulated_market: bool = False  # paper accounts trade the random-walk market (no terminal prices)
    paused_by_name: str | None = None  # the pausing actor as people know it (``@alex``); None: the operator
    gateways: tuple[GatewayStatus, ...] = ()  # the MT5 gateways of the settings, probed now
    instances: tuple[InstanceStatus, ...] = ()  # every instance seen in the last hour, by id


@dataclass(frozen=True, slots=True)
class PositionView:
    id: int
    account_id: int
    owner: Owner | None
    ticket: str
    symbol: str
    side: str
    volume: Decimal
    open_price: Decimal
    sl: Decimal | None
    tp: Decimal | None
    status: str  # open | closing
    opened_at: datetime


@dataclass(frozen=True, slots=True)
class PendingOrderView:
    id: str
    account_id: int
    owner: Owner | None
    ticket: str | None  # the broker's, once placed
    symbol: str
    side: str
    order_type: str  # limit | stop (market when not sent yet)
    volume: Decimal | None
    price: Decimal | None
    sl: Decimal | None
    tp: Decimal | None
    status: str  # pending | retry_wait (not sent yet) | placed (resting at the broker)
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class PositionsReport:
    scope: Scope
    positions_total: int
    orders_total: int
    positions: tuple[PositionView, ...]  # at most ``limit`` each, oldest first
    orders: tuple[PendingOrderView, ...]


@dataclass(frozen=True, slots=True)
class AccountChange:
    account_id: int
    outcome: str  # changed | unchanged | still_in_drawdown
    trading_state: str  # after


@dataclass(frozen=True, slots=True)
class PauseResult:
    scope: Scope
    action: str  # pause | resume
    changed: bool  # anything changed at all
    accounts: tuple[AccountChange, ...] = ()  # account and subscriber scopes


@dataclass(frozen=True, slots=True)
class CloseAllResult:
    scope: Scope
    requested: int
    closed: int
    failed: int
    pnl: Decimal
    orders_requested: int
    orders_cancelled: int
    orders_failed: int
    errors: tuple[str, ...] = ()
    currency: str | None = None  # the currency every account in the scope keeps; None when they differ
    actor: str | None = None  # who asked (``tg:<id>``, ``cli``, ``token:<name>``)
    actor_name: str | None = None  # that actor as people know it (``@alex``); None for the operator


def as_json(value: Any) -> Any:
    """The REST API's JSON shape: Decimals as exact strings, datetimes ISO 8601, scopes as objects."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [as_json(v) for v in value]
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    return value
