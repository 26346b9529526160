"""What the bot's handlers and tasks share: the engine's services and the bot's own settings.

Built once per runtime and handed to aiogram's Dispatcher as workflow data (``ctx``, beside
the engine's ``engine``), so handlers receive it as an argument.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bot.i18n import CatalogI18n
from bot.inbox import InboxConfig
from bot.ratelimit import RateLimits
from bot.sender import OutboxConfig
from bot.throttle import ThrottleConfig
from engine.accounts.service import AccountService
from engine.accounts.subscribers import SubscriberService
from engine.approvals.service import ApprovalService
from engine.services import EngineServices
from engine.settings import Settings


@dataclass(frozen=True)
class BotConfig:
    limits: RateLimits = field(default_factory=RateLimits)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    inbox: InboxConfig = field(default_factory=InboxConfig)
    throttle: ThrottleConfig = field(default_factory=ThrottleConfig)
    expiry_sweep_seconds: float = 5.0
    polling_timeout: int = 10
    webhook_path: str | None = None  # default: the path of WEBHOOK_URL
    closeall_confirm_seconds: int = 120
    close_confirm_seconds: int = 120  # a subscriber's "Close ...?" confirmation stays valid this long
    channel_language: str = "en"  # the channel post is one message, in one language
    ops_language: str = "en"
    stop_timeout_seconds: float = 10.0
    drain_seconds: float = 3.0  # on stop, keep sending what is due for up to this long
    # A handler's call waits out 429s for up to this long in all; past it the update goes back to
    # the inbox and is handled again once Telegram's retry_after has passed.
    reply_wait_seconds: float = 120.0


@dataclass
class BotContext:
    engine: EngineServices
    subscribers: SubscriberService
    accounts: AccountService
    approvals: ApprovalService
    i18n: CatalogI18n
    config: BotConfig
    wake_outbox: Callable[[], None] = lambda: None
    bot_username: str | None = None

    @property
    def settings(self) -> Settings:
        return self.engine.settings

    def is_admin(self, telegram_id: int | None) -> bool:
        return telegram_id is not None and telegram_id in self.engine.settings.admin_ids

    def start_link(self, payload: str) -> str | None:
        if not self.bot_username:
            return None
        return f"https://t.me/{self.bot_username}?start={payload}"
