"""Shared services of one emulator: the world, limits, faults, stats, events, and message plumbing."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emulator.config import EmulatorConfig
from emulator.errors import bad_request, forbidden
from emulator.events import EventBus
from emulator.faults import Faults, Stats
from emulator.ratelimit import RateLimiter
from emulator.state import BotState, Chat, StoredMessage, User, World


@dataclass
class Exchange:
    """One answer the emulator gave (or one update it delivered by webhook), for listeners."""

    kind: str  # "api" | "webhook"
    method: str
    status: int
    body: dict[str, Any]


Listener = Callable[[Exchange], None]


class EmulatorCore:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.world = World(config)
        self.limiter = RateLimiter(config)
        self.faults = Faults()
        self.stats = Stats()
        self.events = EventBus()
        self.listeners: list[Listener] = []
        self.base_url = ""
        self.webhooks: Any = None  # emulator.webhook.WebhookManager, set by the server

    # -- time ------------------------------------------------------------------------------------
    @staticmethod
    def now() -> int:
        return int(time.time())

    @staticmethod
    def clock() -> float:
        return time.monotonic()

    def notify(self, exchange: Exchange) -> None:
        for listener in list(self.listeners):
            listener(exchange)

    # -- chats -----------------------------------------------------------------------------------
    def resolve_chat(self, bot: BotState, raw: Any, *, for_send: bool) -> Chat:
        """The chat ``chat_id`` names (an id or ``@username``), checked as Telegram checks a target."""
        if raw in (None, ""):
            raise bad_request("chat_id is empty")
        text = str(raw).strip()
        chat: Chat | None
        if text.startswith("@"):
            chat = self.world.chat_by_username(text)
        else:
            try:
                chat = self.world.chats.get(int(text))
            except ValueError:
                chat = None
        if chat is None:
            raise bad_request("chat not found")
        if chat.type == "private" and for_send:
            relation = self.world.relation(bot, chat.id)
            if relation.blocked:
                raise forbidden("bot was blocked by the user")
            if not relation.started:
                raise forbidden("bot can't initiate conversation with a user")
        return chat

    def check_rate(self, bot: BotState, chat: Chat, *, paid_broadcast: bool = False) -> None:
        self.limiter.check_send(bot.id, chat.id, chat.type, paid_broadcast=paid_broadcast)

    # -- messages --------------------------------------------------------------------------------
    def store_bot_message(self, bot: BotState, chat: Chat, fields: dict[str, Any]) -> StoredMessage:
        """A message the bot sent: stored with the chat's next id, published, counted."""
        data: dict[str, Any] = {"message_id": 0}
        if chat.type == "channel":
            data["sender_chat"] = chat.json()
        else:
            data["from"] = bot.user_json()
        data["chat"] = chat.json()
        data["date"] = self.now()
        data.update(fields)
        stored = bot.log(chat.id).add(data, by_bot=True)
        self.stats.message(bot.id, chat.id)
        self.events.publish("message_sent", {"bot_id": bot.id, "chat_id": chat.id, "message": stored.view()})
        return stored

    def store_user_message(
        self, bot: BotState, user: User, chat: Chat, fields: dict[str, Any]
    ) -> StoredMessage:
        """A message a user sent (or a service message about them), stored and published."""
        data: dict[str, Any] = {"message_id": 0, "from": user.json(), "chat": chat.json(), "date": self.now()}
        data.update(fields)
        stored = bot.log(chat.id).add(data, by_bot=False)
        self.events.publish("user_message", {"bot_id": bot.id, "chat_id": chat.id, "message": stored.view()})
        return stored

    def push_update(self, bot: BotState, kind: str, payload: dict[str, Any]) -> int | None:
        update = bot.updates.push(kind, payload)
        return None if update is None else update.update_id

    def find_message(self, bot: BotState, chat_id: int, message_id: int | None) -> StoredMessage | None:
        if message_id is None:
            return None
        log = bot.chats.get(chat_id)
        return None if log is None else log.get(message_id)

    def publish_edit(self, bot: BotState, chat_id: int, stored: StoredMessage) -> None:
        self.events.publish(
            "message_edited", {"bot_id": bot.id, "chat_id": chat_id, "message": stored.view()}
        )
