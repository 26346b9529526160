"""Configuration: every setting in docs/configuration.md, typed, ranged and defaulted.

Values come from the environment or a ``.env`` file. ``load_settings`` turns a validation
failure into ``SettingsError`` whose message is one line naming the setting and the rule; the
CLI prints that line and exits with status 2.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/tradebot.db"
DEFAULT_TELEGRAM_API_URL = "https://api.telegram.org"
DEFAULT_INSTRUMENTS = ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "US500", "BTCUSD")


class TelegramMode(StrEnum):
    POLLING = "polling"
    WEBHOOK = "webhook"


class BrokerKind(StrEnum):
    PAPER = "paper"
    MT5 = "mt5"


class DrawdownReference(StrEnum):
    START = "start"  # equity when the account started trading under the bot
    HIGH_WATER = "high_water"  # highest equity seen since


class SettingsError(Exception):
    """A bad or missing setting; ``str()`` is one line naming the setting and the rule."""


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
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

    # Storage
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None

    # HTTP server
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)

    # Brokers
    broker: BrokerKind = BrokerKind.PAPER
    paper_balance: Decimal = Field(default=Decimal("10000"), gt=0)
    mt5_module: str = "MetaTrader5"
    mt5_path: str | None = None
    mt5_login: int | None = None
    mt5_password: SecretStr | None = None
    mt5_server: str | None = None
    mt5_magic: int = Field(default=20260501, ge=1, le=2**31 - 1)
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

    # Producers
    producer_rate_per_second: Decimal = Field(default=Decimal("10"), gt=0)
    producer_burst: int = Field(default=20, ge=1)

    # Loop and ops
    heartbeat_seconds: Decimal = Field(default=Decimal("10"), gt=0, le=3600)
    ops_heartbeat_seconds: int = Field(default=3600, ge=60)
    order_batch_size: int = Field(default=10, ge=1, le=1000)
    consent_version: str = "2026-11"

    # Billing: the plans file (TOML); empty = the defaults shipped in engine/billing/plans.toml
    plans_file: str | None = None

    # Outbound events
    outbound_url: str | None = None
    outbound_secret: SecretStr | None = None

    # Security and logs
    secret_key: SecretStr | None = None
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

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: SecretStr | None) -> SecretStr | None:
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

    @property
    def soft_drawdown_percent(self) -> Decimal:
        if self.drawdown_soft_percent is not None:
            return self.drawdown_soft_percent
        return self.drawdown_cap_percent / 2

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
