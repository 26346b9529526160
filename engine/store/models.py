"""The store's tables. Money columns are ``Money`` (exact Decimal), times ``UTCDateTime``.

Status columns hold the values of the enums in ``engine.states`` and change only through
those state machines. New columns and tables arrive through new Alembic migrations.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from engine.store.db import Money, UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_uuid() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), Decimal: Money(), dict[str, Any]: JSON()}


class Producer(Base):
    __tablename__ = "producers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    secret_enc: Mapped[str] = mapped_column(Text)  # HMAC secret, encrypted with SECRET_KEY
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the URL token
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | disabled
    rate_per_second: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    burst: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    telegram_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    username: Mapped[str | None] = mapped_column(String(64), nullable=True)
    first_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    language: Mapped[str] = mapped_column(String(8), default="en")
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | blocked | left
    role: Mapped[str] = mapped_column(String(16), default="subscriber")  # subscriber | admin
    consent_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    consented_at: Mapped[datetime | None] = mapped_column(nullable=True)
    referral_code: Mapped[str] = mapped_column(String(16), unique=True)
    referred_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    start_payload: Mapped[str | None] = mapped_column(String(64), nullable=True)
    notifications: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExecutionAccount(Base):
    __tablename__ = "execution_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(8))  # paper | mt5
    label: Mapped[str | None] = mapped_column(String(64), nullable=True)
    login: Mapped[str | None] = mapped_column(String(32), nullable=True)
    server: Mapped[str | None] = mapped_column(String(128), nullable=True)
    credentials_enc: Mapped[str | None] = mapped_column(Text, nullable=True)  # encrypted password
    # mt5 accounts: the MT5 gateway (MT5_GATEWAYS name) its terminal is on; None = MT5_MODULE as set
    gateway: Mapped[str | None] = mapped_column(String(32), nullable=True)
    symbol_suffix: Mapped[str] = mapped_column(String(16), default="")
    symbol_map: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # instrument -> broker symbol
    currency: Mapped[str] = mapped_column(String(8), default="USD")
    balance: Mapped[Decimal | None] = mapped_column(nullable=True)  # paper accounts: the ledger balance
    reference_equity: Mapped[Decimal | None] = mapped_column(nullable=True)
    high_water_equity: Mapped[Decimal | None] = mapped_column(nullable=True)
    equity_floor: Mapped[Decimal | None] = mapped_column(nullable=True)
    max_volume: Mapped[Decimal | None] = mapped_column(nullable=True)
    # active | reducing | halted (engine.states.TradingState, changed through TRADING.move)
    trading_state: Mapped[str] = mapped_column(String(12), default="active", server_default="active")
    paused_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)  # why not active
    drawdown_state: Mapped[str] = mapped_column(String(8), default="ok")  # ok | soft | hard
    # The owner's daily loss limit (engine.risk.daily_loss): when the current trading day started
    # and the account's equity then.
    day_start_at: Mapped[datetime | None] = mapped_column(nullable=True)
    day_start_equity: Mapped[Decimal | None] = mapped_column(nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def paused(self) -> bool:
        """True when the account may not open positions (its trading state is not ``active``)."""
        return self.trading_state != "active"


class Signal(Base):
    __tablename__ = "signals"
    __table_args__ = (
        UniqueConstraint("producer_id", "idempotency_key", name="uq_signals_producer_key"),
        UniqueConstraint("producer_id", "signature", name="uq_signals_producer_signature"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    producer_id: Mapped[str] = mapped_column(ForeignKey("producers.id"), index=True)
    external_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    idempotency_key: Mapped[str] = mapped_column(String(128))
    body_hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str | None] = mapped_column(String(64), nullable=True)
    instrument: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(4))
    order_type: Mapped[str] = mapped_column(String(8), default="market")
    entry: Mapped[Decimal | None] = mapped_column(nullable=True)
    sl: Mapped[Decimal] = mapped_column()
    tp: Mapped[Decimal] = mapped_column()  # the furthest target
    # [{"price": "<decimal string>", "close_percent": int}, ...] nearest first; None: ``tp`` alone.
    targets: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    breakeven_after: Mapped[int] = mapped_column(Integer, default=0)
    trail_points: Mapped[int | None] = mapped_column(Integer, nullable=True)
    risk_percent: Mapped[Decimal] = mapped_column()
    ttl_seconds: Mapped[int] = mapped_column(Integer)
    strategy: Mapped[str | None] = mapped_column(String(32), nullable=True)
    confidence: Mapped[Decimal | None] = mapped_column(nullable=True)
    note: Mapped[str | None] = mapped_column(String(500), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="accepted", index=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    expires_at: Mapped[datetime] = mapped_column()
    channel_message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Decision(Base):
    __tablename__ = "decisions"
    __table_args__ = (UniqueConstraint("signal_id", "user_id", name="uq_decisions_signal_user"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    signal_id: Mapped[str] = mapped_column(ForeignKey("signals.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("execution_accounts.id"), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    via: Mapped[str] = mapped_column(String(8), default="dm")  # dm | channel | auto
    chat_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    consent_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("decision_id", "leg", name="uq_orders_decision_leg"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    client_order_id: Mapped[str] = mapped_column(String(31), unique=True)
    decision_id: Mapped[str | None] = mapped_column(ForeignKey("decisions.id"), nullable=True, index=True)
    # One order per target on hedging accounts: leg 1, 2, ... of the decision (1 otherwise).
    leg: Mapped[int] = mapped_column(Integer, default=1)
    # The target plan this order carries (``engine.execution.targets.plan_to_json``), None for one TP.
    targets: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    signal_id: Mapped[str | None] = mapped_column(ForeignKey("signals.id"), nullable=True, index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("execution_accounts.id"), index=True)
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(4))
    order_type: Mapped[str] = mapped_column(String(8))
    volume: Mapped[Decimal | None] = mapped_column(nullable=True)
    price: Mapped[Decimal | None] = mapped_column(nullable=True)
    sl: Mapped[Decimal | None] = mapped_column(nullable=True)
    tp: Mapped[Decimal | None] = mapped_column(nullable=True)
    filling: Mapped[str | None] = mapped_column(String(8), nullable=True)
    deviation_points: Mapped[int | None] = mapped_column(Integer, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    risk_amount: Mapped[Decimal | None] = mapped_column(nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    broker_ticket: Mapped[str | None] = mapped_column(String(32), nullable=True)
    position_ticket: Mapped[str | None] = mapped_column(String(32), nullable=True)
    filled_volume: Mapped[Decimal | None] = mapped_column(nullable=True)
    fill_price: Mapped[Decimal | None] = mapped_column(nullable=True)
    retcode: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # the instance that claimed it for sending: a SUBMITTING order of one that died is looked up
    submitted_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Position(Base):
    __tablename__ = "positions"
    __table_args__ = (UniqueConstraint("account_id", "ticket", name="uq_positions_account_ticket"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("execution_accounts.id"), index=True)
    order_id: Mapped[str | None] = mapped_column(ForeignKey("orders.id"), nullable=True)
    ticket: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(4))
    volume: Mapped[Decimal] = mapped_column()
    open_price: Mapped[Decimal] = mapped_column()
    close_price: Mapped[Decimal | None] = mapped_column(nullable=True)
    sl: Mapped[Decimal | None] = mapped_column(nullable=True)
    tp: Mapped[Decimal | None] = mapped_column(nullable=True)
    profit: Mapped[Decimal] = mapped_column(default=Decimal(0))
    commission: Mapped[Decimal] = mapped_column(default=Decimal(0))
    swap: Mapped[Decimal] = mapped_column(default=Decimal(0))
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    close_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    external: Mapped[bool] = mapped_column(Boolean, default=False)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # Trade management (engine.loop.management): the stop the engine last set (None: the order's),
    # False once someone moved the stop by hand (the engine then leaves it alone), and the best
    # closing price seen since the first target (for trailing).
    engine_sl: Mapped[Decimal | None] = mapped_column(nullable=True)
    stop_managed: Mapped[bool] = mapped_column(Boolean, default=True)
    best_price: Mapped[Decimal | None] = mapped_column(nullable=True)


class PositionFill(Base):
    """One closing deal of a position as the engine recorded it (exactly once per broker deal)."""

    __tablename__ = "position_fills"
    __table_args__ = (UniqueConstraint("account_id", "deal_ticket", name="uq_position_fills_account_deal"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("execution_accounts.id"))
    position_id: Mapped[int] = mapped_column(ForeignKey("positions.id"), index=True)
    deal_ticket: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(12))  # target | stop | manual | engine
    targets: Mapped[list[Any]] = mapped_column(JSON, default=list)  # target numbers this deal closed
    volume: Mapped[Decimal] = mapped_column()
    price: Mapped[Decimal] = mapped_column()
    profit: Mapped[Decimal] = mapped_column()
    reason: Mapped[str] = mapped_column(String(12))  # the broker's deal reason
    at: Mapped[datetime] = mapped_column()


class EquityPoint(Base):
    __tablename__ = "equity_points"
    __table_args__ = (Index("ix_equity_points_account_at", "account_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("execution_accounts.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    balance: Mapped[Decimal] = mapped_column()
    equity: Mapped[Decimal] = mapped_column()
    margin: Mapped[Decimal] = mapped_column(default=Decimal(0))


class AuditLog(Base):
    """Append-only: rows are inserted, never updated or deleted (enforced below)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(128), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    correlation_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class DomainEvent(Base):
    """Domain events, written in the same transaction as the change they describe.

    The event relay hands each one to every subscriber (Telegram notifier, outbound
    dispatcher) and marks it processed; subscribers are idempotent by event id, so a crash
    between the two repeats nothing that was already done.
    """

    __tablename__ = "domain_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)  # delivery order
    event_id: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    type: Mapped[str] = mapped_column(String(48), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)


class OutboxMessage(Base):
    """A Telegram call waiting to be made; a 429 or an outage delays it, never drops it."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(128), unique=True)
    chat_id: Mapped[int] = mapped_column(BigInteger, index=True)
    method: Mapped[str] = mapped_column(String(32))  # sendMessage | editMessageText | ...
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # Set while a sender holds the row; still set when the row is due again means the sender died
    # mid-call: Telegram may or may not have the message (the Bot API cannot say), so it is resent.
    claimed_at: Mapped[datetime | None] = mapped_column(nullable=True)


class InboxUpdate(Base):
    """A Telegram update, stored before it is confirmed to Telegram and handled from here.

    Written in one transaction per delivery (a polling batch, or one webhook POST) before the
    next ``getUpdates`` offset or the webhook's 200; unique per bot and update id, so a
    redelivery inserts nothing. One chat's updates are handled in ``id`` order, one at a time;
    ``lease_until`` marks a claimed row (a handler that died leaves it to be taken again).
    """

    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint("bot_id", "update_id", name="uq_inbox_bot_update"),
        Index("ix_inbox_status_chat", "status", "chat_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bot_id: Mapped[int] = mapped_column(BigInteger)
    update_id: Mapped[int] = mapped_column(BigInteger)
    chat_key: Mapped[int] = mapped_column(BigInteger)  # the chat (or the sender) it belongs to
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | done | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    handled_at: Mapped[datetime | None] = mapped_column(nullable=True)


class OutboundDelivery(Base):
    """An event to POST to the operator's ``OUTBOUND_URL``; retried until delivered."""

    __tablename__ = "outbound_deliveries"
    __table_args__ = (Index("ix_outbound_status_next", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the event id (Idempotency-Key)
    type: Mapped[str] = mapped_column(String(48))
    body: Mapped[str] = mapped_column(Text)  # the exact JSON bytes that are signed and sent
    url: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True)


class EngineState(Base):
    """Small facts the whole process shares (global pause, last heartbeat, leader lease)."""

    __tablename__ = "engine_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Instance(Base):
    """A running ``tradebot run`` among several (engine.loop.cluster): seen every lease renewal."""

    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # INSTANCE_ID, else host:pid
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    leader: Mapped[bool] = mapped_column(Boolean, default=False)  # holds the trading-loop lease
    accounts: Mapped[int] = mapped_column(Integer, default=0)  # MT5 accounts it owns
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # e.g. the Telegram budget's state


class AccountLease(Base):
    """Which instance runs an MT5 account's terminal session, until when (engine.loop.cluster)."""

    __tablename__ = "account_leases"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("execution_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    owner: Mapped[str] = mapped_column(String(64), index=True)  # an instance id
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column()
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)


class AdminToken(Base):
    """A bearer token for the admin REST API; only the SHA-256 of the secret is stored."""

    __tablename__ = "admin_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(8))  # read | trade
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class AppendOnlyViolation(Exception):
    pass


@event.listens_for(AuditLog, "before_update")
def _audit_no_update(*_: Any) -> None:
    raise AppendOnlyViolation("audit_log is append-only: rows cannot be updated")


@event.listens_for(AuditLog, "before_delete")
def _audit_no_delete(*_: Any) -> None:
    raise AppendOnlyViolation("audit_log is append-only: rows cannot be deleted")


class PaperOrder(Base):
    """The paper broker's own book: a pending limit/stop order, or the record of a market order."""

    __tablename__ = "paper_orders"

    ticket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("execution_accounts.id"), index=True)
    client_order_id: Mapped[str] = mapped_column(String(31), unique=True)
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(4))
    order_type: Mapped[str] = mapped_column(String(8))
    volume: Mapped[Decimal] = mapped_column()
    price: Mapped[Decimal] = mapped_column()
    sl: Mapped[Decimal | None] = mapped_column(nullable=True)
    tp: Mapped[Decimal | None] = mapped_column(nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    state: Mapped[str] = mapped_column(String(12))  # pending | filled | cancelled | expired
    position_ticket: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(nullable=True)


class PaperPosition(Base):
    __tablename__ = "paper_positions"

    ticket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("execution_accounts.id"), index=True)
    order_ticket: Mapped[int] = mapped_column(ForeignKey("paper_orders.ticket"))
    client_order_id: Mapped[str] = mapped_column(String(31))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(4))
    volume: Mapped[Decimal] = mapped_column()
    open_price: Mapped[Decimal] = mapped_column()
    sl: Mapped[Decimal | None] = mapped_column(nullable=True)
    tp: Mapped[Decimal | None] = mapped_column(nullable=True)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


class PaperDeal(Base):
    __tablename__ = "paper_deals"

    ticket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("execution_accounts.id"), index=True)
    order_ticket: Mapped[int | None] = mapped_column(Integer, nullable=True)
    position_ticket: Mapped[int] = mapped_column(Integer, index=True)
    client_order_id: Mapped[str | None] = mapped_column(String(31), nullable=True, unique=True)
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(4))
    entry: Mapped[str] = mapped_column(String(4))  # in | out
    volume: Mapped[Decimal] = mapped_column()
    price: Mapped[Decimal] = mapped_column()
    profit: Mapped[Decimal] = mapped_column(default=Decimal(0))
    reason: Mapped[str] = mapped_column(String(12), default="client")  # client | sl | tp | expert
    time: Mapped[datetime] = mapped_column(default=utcnow, index=True)


# ---------------------------------------------------------------------- billing and referrals


class Subscription(Base):
    """A subscriber's paid plan now: one row per user, extended by payments, swept on expiry.

    ``status`` is ``active`` | ``expired`` | ``revoked`` (refunded). The entitlements of a user
    without an active row are the default (free) plan's.
    """

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    plan: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    recurring: Mapped[bool] = mapped_column(Boolean, default=False)
    renewal_state: Mapped[str | None] = mapped_column(String(16), nullable=True)  # active|canceled|failed
    last_charge_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reminded_at: Mapped[datetime | None] = mapped_column(nullable=True)  # for the current expires_at
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class StarPayment(Base):
    """One Telegram Stars charge; ``telegram_payment_charge_id`` is unique, so a payment update
    delivered twice is recorded (and credited) once."""

    __tablename__ = "star_payments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    plan: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(8), default="XTR")
    amount: Mapped[Decimal] = mapped_column()
    invoice_payload: Mapped[str] = mapped_column(String(128))
    telegram_payment_charge_id: Mapped[str] = mapped_column(String(128), unique=True)
    provider_payment_charge_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    is_recurring: Mapped[bool] = mapped_column(Boolean, default=False)
    is_first_recurring: Mapped[bool] = mapped_column(Boolean, default=False)
    subscription_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    period_start: Mapped[datetime] = mapped_column()
    period_end: Mapped[datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(12), default="paid")  # paid | refunded
    refunded_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ReferralEntry(Base):
    """The referral ledger (append-only, Decimal Stars): credits for referred users' payments,
    reversals of refunded ones, and payouts (negative). A referrer's balance is the sum."""

    __tablename__ = "referral_ledger"
    __table_args__ = (UniqueConstraint("payment_id", "kind", name="uq_referral_ledger_payment_kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    referrer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    referred_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("star_payments.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(12))  # credit | reversal | payout
    amount: Mapped[Decimal] = mapped_column()
    actor: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AutoTradeSettings(Base):
    """A subscriber's opt-in to auto-execution (sized by their risk limits, ``RiskLimits``)."""

    __tablename__ = "auto_trade_settings"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


@event.listens_for(ReferralEntry, "before_update")
def _ledger_no_update(*_: Any) -> None:
    raise AppendOnlyViolation("referral_ledger is append-only: rows cannot be updated")


@event.listens_for(ReferralEntry, "before_delete")
def _ledger_no_delete(*_: Any) -> None:
    raise AppendOnlyViolation("referral_ledger is append-only: rows cannot be deleted")


# ---------------------------------------------------------------------- trade management


class SignalUpdate(Base):
    """A change to a signal after it was sent: a producer's update (CONTRACTS 1a) or a
    subscriber's own Close / Stop → entry. Idempotent like signals: unique per producer and key
    (a subscriber's control uses ``producer_id`` NULL and a key made from the tap)."""

    __tablename__ = "signal_updates"
    __table_args__ = (
        UniqueConstraint("producer_id", "idempotency_key", name="uq_signal_updates_producer_key"),
        UniqueConstraint("producer_id", "signature", name="uq_signal_updates_producer_signature"),
        UniqueConstraint("user_id", "idempotency_key", name="uq_signal_updates_user_key"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    signal_id: Mapped[str] = mapped_column(ForeignKey("signals.id"), index=True)
    producer_id: Mapped[str | None] = mapped_column(ForeignKey("producers.id"), nullable=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)  # a subscriber's
    position_id: Mapped[int | None] = mapped_column(ForeignKey("positions.id"), nullable=True)  # their one
    idempotency_key: Mapped[str] = mapped_column(String(128))
    body_hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(16))  # move_sl | move_tp | close | cancel | note
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # decimals as strings
    status: Mapped[str] = mapped_column(String(12), default="accepted")  # accepted | planned
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    planned_at: Mapped[datetime | None] = mapped_column(nullable=True)


class PositionChange(Base):
    """One update applied to one position or order: the exactly-once claim row.

    Inserted once per (update, target) (unique), claimed by a conditional UPDATE committed
    before the broker call, settled with the broker's answer; a claim whose answer was lost is
    resolved by looking at the terminal (``engine.management.changes``)."""

    __tablename__ = "position_changes"
    __table_args__ = (
        UniqueConstraint("update_id", "target", name="uq_position_changes_update_target"),
        Index("ix_position_changes_status_next", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    update_id: Mapped[str] = mapped_column(ForeignKey("signal_updates.id"), index=True)
    target: Mapped[str] = mapped_column(String(48))  # position:<id> | order:<id>
    account_id: Mapped[int] = mapped_column(ForeignKey("execution_accounts.id"), index=True)
    order_id: Mapped[str | None] = mapped_column(ForeignKey("orders.id"), nullable=True)
    position_id: Mapped[int | None] = mapped_column(ForeignKey("positions.id"), nullable=True)
    client_id: Mapped[str] = mapped_column(String(31), unique=True)  # the close deal's comment
    status: Mapped[str] = mapped_column(String(12), default="pending")
    reason_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(300), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    done_at: Mapped[datetime | None] = mapped_column(nullable=True)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RiskLimits(Base):
    """A subscriber's own limits (/settings → Risk, ``engine.risk.limits``); a column left NULL
    takes the admin's default."""

    __tablename__ = "risk_limits"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    sizing: Mapped[str | None] = mapped_column(String(12), nullable=True)  # risk_percent | fixed | signal
    risk_percent: Mapped[Decimal | None] = mapped_column(nullable=True)
    fixed_lots: Mapped[Decimal | None] = mapped_column(nullable=True)
    max_lots: Mapped[Decimal | None] = mapped_column(nullable=True)
    max_positions: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_open_risk_percent: Mapped[Decimal | None] = mapped_column(nullable=True)
    daily_loss_percent: Mapped[Decimal | None] = mapped_column(nullable=True)
    min_rr: Mapped[Decimal | None] = mapped_column(nullable=True)
    instruments_off: Mapped[list[str]] = mapped_column(JSON, default=list)
    paused_until: Mapped[datetime | None] = mapped_column(nullable=True)  # daily loss limit reached
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
