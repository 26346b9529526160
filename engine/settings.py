"""Configuration: every setting in docs/configuration.md, typed, ranged and defaulted.

Values come from the environment or a ``.env`` file. ``load_settings`` turns a validation
failure into ``SettingsError`` whose message is one line naming the setting and the rule; the
CLI prints that line and exits with status 2.
"""

from __future__ import annotations

import os
import re
import socket
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from engine.risk.trading_day import DEFAULT_TRADING_DAY_START, TradingDay

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/tradebot.db"
DEFAULT_TELEGRAM_API_URL = "https://api.telegram.org"
DEFAULT_INSTRUMENTS = ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "US500", "BTCUSD")


class TelegramMode(StrEnum):
    POLLING = "polling"
    WEBHOOK = "webhook"


class BrokerKind(StrEnum):
    PAPER = "paper"
    MT5 = "mt5"


class BillingMode(StrEnum):
    OFF = "off"  # every user has every entitlement; no plans, no /subscribe
    ON = "on"  # plans (PLANS_FILE or the shipped defaults), Stars payments, entitlement gating


class RiskSizing(StrEnum):
    """How a subscriber's order is sized (``RISK_SIZING``, the default of /settings → Risk)."""

    SIGNAL = "signal"  # the signal's own risk_percent of equity
    RISK_PERCENT = "risk_percent"  # the subscriber's risk % of equity
    FIXED = "fixed"  # a fixed number of lots


class DrawdownReference(StrEnum):
    START = "start"  # equity when the account started trading under the bot
    HIGH_WATER = "high_water"  # highest equity seen since


class MiniAppScript(StrEnum):
    TELEGRAM = "telegram"  # Telegram's telegram-web-app.js, loaded as Telegram documents
    LOCAL = "local"  # the bundled stand-in (offline: the sandbox and the tests)


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _check_miniapp_url(url: str) -> str:
    """An HTTPS URL (Telegram opens only those), or plain HTTP on a loopback host (the emulator)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    secure = parts.scheme == "https" and bool(host)
    loopback = parts.scheme == "http" and host in LOOPBACK_HOSTS
    if not (secure or loopback):
        raise ValueError("must be an https:// URL (http:// only on a loopback host, for the emulator)")
    if parts.query or parts.fragment:
        raise ValueError("must not carry a query or a fragment")
    return url if url.endswith("/") else url + "/"


class SettingsError(Exception):
    """A bad or missing setting; ``str()`` is one line naming the setting and the rule."""


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


_GATEWAY_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")


def _split_map(value: Any) -> Any:
    """``name=value,name=value`` as a dict (a value may itself contain ``=``)."""
    if not isinstance(value, str):
        return value
    out: dict[str, str] = {}
    for part in _split_csv(value):
        name, sep, item = part.partition("=")
        if not sep or not name.strip() or not item.strip():
            raise ValueError(f"{part!r} is not name=value")
        out[name.strip()] = item.strip()
    return out


def _check_gateway(name: str, url: str) -> None:
    if not _GATEWAY_NAME.fullmatch(name):
        raise ValueError(f"gateway name {name!r} must be 1..32 characters of [A-Za-z0-9_-]")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"gateway {name}: {url!r} is not an http:// or https:// URL")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,  # `NAME=` (as .env.example writes optional settings) means unset
    )

    # Telegram
    bot_token: SecretStr | None = None
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    ops_chat_id: int | None = None
    signal_channel_id: int | None = None
    telegram_api_url: str = DEFAULT_TELEGRAM_API_URL
    telegram_mode: TelegramMode = TelegramMode.POLLING
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    # The Mini App (docs/miniapp.md): its public URL (HTTPS; default: WEBHOOK_URL's origin + /app/),
    # how old Telegram's initData may be, how long a Mini App session lasts, and which
    # telegram-web-app.js the page loads.
    miniapp_url: str | None = None
    miniapp_max_age_seconds: int = Field(default=86400, ge=60, le=7 * 86400)
    miniapp_session_seconds: int = Field(default=3600, ge=60, le=86400)
    miniapp_script: MiniAppScript = MiniAppScript.TELEGRAM
    # Diagnostics and crash tests only: stored updates wait this long before they are handled.
    telegram_inbox_hold_seconds: Decimal = Field(default=Decimal("0"), ge=0, le=60)
    # An update or outgoing message claimed by an instance that then died is taken by another after
    # this long; keep it above the slowest handler and the time a batch of sends takes.
    telegram_lease_seconds: Decimal = Field(default=Decimal("60"), ge=10, le=600)

    # Storage
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None

    # Several instances (docs/deploy.md): this one's name (default host:pid), and how long an MT5
    # account's lease lasts without renewal before another instance may take the account over.
    instance_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:@-]{1,64}$")
    account_lease_seconds: Decimal = Field(default=Decimal("30"), ge=3, le=600)

    # HTTP server
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    # Slow and idle clients (engine.api.server): a request's headers must arrive within the first,
    # an idle keep-alive connection is closed after the second; connections per client address.
    http_header_timeout_seconds: Decimal = Field(default=Decimal("10"), ge=1, le=300)
    http_idle_timeout_seconds: Decimal = Field(default=Decimal("75"), ge=1, le=3600)
    http_max_connections_per_client: int = Field(default=50, ge=1, le=100000)

    # Brokers
    broker: BrokerKind = BrokerKind.PAPER
    paper_balance: Decimal = Field(default=Decimal("10000"), gt=0)
    mt5_module: str = "MetaTrader5"
    mt5_path: str | None = None
    mt5_login: int | None = None
    mt5_password: SecretStr | None = None
    mt5_server: str | None = None
    mt5_magic: int = Field(default=20260501, ge=1, le=2**31 - 1)
    # MT5 gateway, engine side (MT5_MODULE=engine.brokers.remote; see docs/mt5.md)
    mt5_gateway_url: str | None = None
    mt5_gateway_token: SecretStr | None = None
    mt5_gateway_ca: str | None = None
    mt5_gateways: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    mt5_gateway_tokens: Annotated[dict[str, SecretStr], NoDecode] = Field(default_factory=dict)
    # MT5 gateway, terminal-host side (`tradebot gateway serve`)
    gateway_token: SecretStr | None = None
    gateway_tls_cert: str | None = None
    gateway_tls_key: str | None = None
    gateway_terminals: Annotated[dict[int, str], NoDecode] = Field(default_factory=dict)
    gateway_rate_per_second: Decimal = Field(default=Decimal("1000"), gt=0)
    gateway_burst: int = Field(default=2000, ge=1)
    gateway_max_skew_seconds: int = Field(default=30, ge=5, le=600)
    instruments: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_INSTRUMENTS))
    market_hours: str = ""  # per-symbol overrides, see engine.market_hours

    # Risk
    drawdown_cap_percent: Decimal = Field(default=Decimal("20"), ge=1, le=99)
    drawdown_soft_percent: Decimal | None = Field(default=None, gt=0, le=99)
    drawdown_reference: DrawdownReference = DrawdownReference.START
    equity_floor: Decimal | None = Field(default=None, gt=0)
    min_rr: Decimal = Field(default=Decimal("1.5"), gt=0, le=100)
    min_stop_points: int = Field(default=5, ge=0, le=100000)
    order_expiry_hours: int = Field(default=100, ge=1, le=24 * 365)
    default_risk_percent: Decimal = Field(default=Decimal("1"), gt=0, le=10)
    max_volume: Decimal | None = Field(default=None, gt=0)
    approval_ttl_seconds: int = Field(default=900, ge=60, le=86400)
    # A signal whose entry is further than this from the known market price is refused (422).
    max_entry_deviation_percent: Decimal = Field(default=Decimal("20"), gt=0, le=1000)
    # Defaults of each subscriber's own limits (/settings → Risk; docs/trade-management.md). The
    # subscriber's risk % defaults to DEFAULT_RISK_PERCENT and their max lots to MAX_VOLUME (which
    # also caps every order); empty = no such limit until the subscriber sets one.
    risk_sizing: RiskSizing = RiskSizing.SIGNAL
    risk_fixed_lots: Decimal = Field(default=Decimal("0.01"), gt=0, le=100)
    risk_max_positions: int | None = Field(default=None, ge=1, le=100)
    risk_max_open_risk_percent: Decimal | None = Field(default=None, gt=0, le=100)
    risk_daily_loss_percent: Decimal | None = Field(default=None, gt=0, le=100)
    risk_min_rr: Decimal | None = Field(default=None, gt=0, le=20)
    trading_day_start: str = DEFAULT_TRADING_DAY_START  # "HH:MM Zone": when a daily loss resets

    # Producers
    producer_rate_per_second: Decimal = Field(default=Decimal("10"), gt=0)
    producer_burst: int = Field(default=20, ge=1)

    # Built-in strategies run as producers inside `tradebot run` (docs/strategies.md):
    # "fib-rsi:XAUUSD,EURUSD" (several: separated by ";"); bars come from MT5_MODULE on the
    # data login MT5_LOGIN / MT5_PASSWORD / MT5_SERVER (MT5_PATH).
    strategies: str = ""
    strategy_risk_percent: Decimal = Field(default=Decimal("2"), gt=0, le=10)
    strategy_history_bars: int = Field(default=1000, ge=200, le=100000)
    strategy_poll_seconds: Decimal = Field(default=Decimal("60"), ge=Decimal("0.1"), le=3600)

    # Loop and ops
    heartbeat_seconds: Decimal = Field(default=Decimal("10"), gt=0, le=3600)
    ops_heartbeat_seconds: int = Field(default=3600, ge=60)
    order_batch_size: int = Field(default=10, ge=1, le=1000)
    consent_version: str = "2026-11"

    # Billing is opt-in: BILLING=on, or a PLANS_FILE, turns plans and gating on (docs/billing.md).
    billing: BillingMode = BillingMode.OFF
    # The plans file (TOML); empty = the defaults shipped in engine/billing/plans.toml
    plans_file: str | None = None

    # Outbound events
    outbound_url: str | None = None
    outbound_secret: SecretStr | None = None

    # Security and logs
    secret_key: SecretStr | None = None
    secret_key_old: SecretStr | None = None  # during a rotation: the key being retired (docs/security.md)
    # Retention (`tradebot prune`): audit lines (never below 30 days) and processed domain events
    audit_retention_days: int = Field(default=365, ge=30, le=36500)
    events_retention_days: int = Field(default=30, ge=1, le=36500)
    log_level: str = "INFO"
    log_json: bool = False

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _admin_ids(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("instruments", mode="before")
    @classmethod
    def _instruments(cls, value: Any) -> Any:
        value = _split_csv(value)
        if isinstance(value, list):
            return [str(v).upper() for v in value]
        return value

    @field_validator("strategies")
    @classmethod
    def _strategies(cls, value: str) -> str:
        from engine.strategies import UnknownStrategy, parse_strategies

        try:
            parse_strategies(value)
        except UnknownStrategy as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("trading_day_start")
    @classmethod
    def _trading_day_start(cls, value: str) -> str:
        TradingDay.parse(value)
        return value.strip()

    @field_validator("mt5_gateways", "mt5_gateway_tokens", "gateway_terminals", mode="before")
    @classmethod
    def _name_map(cls, value: Any) -> Any:
        return _split_map(value)

    @field_validator("mt5_gateways")
    @classmethod
    def _gateway_urls(cls, value: dict[str, str]) -> dict[str, str]:
        for name, url in value.items():
            _check_gateway(name, url)
        return value

    @field_validator("mt5_gateway_url")
    @classmethod
    def _gateway_url(cls, value: str | None) -> str | None:
        if value:
            _check_gateway("default", value)
        return value or None

    @field_validator("gateway_token", "mt5_gateway_token")
    @classmethod
    def _gateway_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            return None
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value

    @field_validator("miniapp_url")
    @classmethod
    def _miniapp_url(cls, value: str | None) -> str | None:
        return _check_miniapp_url(value) if value else None

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of TRACE, DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value.startswith(("postgres://", "postgresql://")):
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if value.startswith("sqlite://") and not value.startswith("sqlite+aiosqlite://"):
            return "sqlite+aiosqlite://" + value.split("://", 1)[1]
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        return value

    @field_validator("secret_key", "secret_key_old")
    @classmethod
    def _secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            return None
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        if self.drawdown_soft_percent is not None and self.drawdown_soft_percent >= self.drawdown_cap_percent:
            raise ValueError("DRAWDOWN_SOFT_PERCENT must be below DRAWDOWN_CAP_PERCENT")
        if self.telegram_mode is TelegramMode.WEBHOOK and not self.webhook_url:
            raise ValueError("WEBHOOK_URL is required when TELEGRAM_MODE=webhook")
        if not self.instruments:
            raise ValueError("INSTRUMENTS must name at least one instrument")
        return self

    def gateway_names(self) -> list[str]:
        """The MT5 gateways an account may name: ``default`` (MT5_GATEWAY_URL) and MT5_GATEWAYS."""
        return (["default"] if self.mt5_gateway_url else []) + sorted(self.mt5_gateways)

    def miniapp_public_url(self) -> str | None:
        """Where Telegram opens the Mini App: ``MINIAPP_URL``, else ``/app/`` on the origin of an
        HTTPS ``WEBHOOK_URL``; None when neither says (the bot then offers no Mini App button)."""
        if self.miniapp_url:
            return self.miniapp_url
        if self.webhook_url:
            parts = urlsplit(self.webhook_url)
            if parts.scheme == "https" and parts.netloc:
                return f"https://{parts.netloc}/app/"
        return None

    @property
    def soft_drawdown_percent(self) -> Decimal:
        if self.drawdown_soft_percent is not None:
            return self.drawdown_soft_percent
        return self.drawdown_cap_percent / 2

    @property
    def billing_enabled(self) -> bool:
        """Plans and gating apply: ``BILLING=on``, or a ``PLANS_FILE`` given."""
        return self.billing is BillingMode.ON or bool(self.plans_file)

    @property
    def instance_name(self) -> str:
        """This process among the instances: ``INSTANCE_ID``, else ``host:pid``."""
        return self.instance_id or f"{socket.gethostname()}:{os.getpid()}"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        path = self.database_url.split(":///", 1)[1]
        return None if path in ("", ":memory:") else Path(path)

    def require(self, *names: str) -> None:
        """Refuse to go on without these settings (e.g. ``BOT_TOKEN`` for ``tradebot run``)."""
        for name in names:
            if getattr(self, name.lower()) in (None, ""):
                raise SettingsError(f"{name.upper()}: required for this command but not set")


def _describe(error: dict[str, Any]) -> str:
    loc = [str(part) for part in error.get("loc", ()) if part != "__root__"]
    message = str(error.get("msg", "invalid value"))
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if not loc:
        return message
    return f"{loc[0].upper()}: {message}"


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment, raising ``SettingsError`` with one clear line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(dict(exc.errors()[0]))) from None
