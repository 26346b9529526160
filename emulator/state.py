"""The emulated world: users, chats, and per bot its updates, messages, queries, files and payments."""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from emulator.config import EmulatorConfig
from emulator.errors import ControlError, unauthorized
from emulator.files import FileStore
from emulator.updates import UpdateQueue

TOKEN_RE = re.compile(r"^([0-9]{1,19}):([A-Za-z0-9_-]{35})$")


@dataclass
class User:
    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    is_premium: bool = False
    started_default: bool = True

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            out["last_name"] = self.last_name
        if self.username:
            out["username"] = self.username
        if self.language_code:
            out["language_code"] = self.language_code
        if self.is_premium:
            out["is_premium"] = True
        return out

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}" if self.last_name else self.first_name


@dataclass
class Chat:
    id: int
    type: str  # private | group | supergroup | channel
    title: str | None = None
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "type": self.type}
        for name in ("title", "username", "first_name", "last_name"):
            value = getattr(self, name)
            if value:
                out[name] = value
        return out


@dataclass
class StoredMessage:
    data: dict[str, Any]
    by_bot: bool
    deleted: bool = False

    @property
    def message_id(self) -> int:
        return int(self.data["message_id"])

    def view(self) -> dict[str, Any]:
        return copy.deepcopy(self.data)


@dataclass
class ChatLog:
    next_id: int = 1
    messages: dict[int, StoredMessage] = field(default_factory=dict)

    def add(self, data: dict[str, Any], *, by_bot: bool) -> StoredMessage:
        data["message_id"] = self.next_id
        self.next_id += 1
        stored = StoredMessage(data, by_bot)
        self.messages[stored.message_id] = stored
        return stored

    def get(self, message_id: int) -> StoredMessage | None:
        stored = self.messages.get(message_id)
        return None if stored is None or stored.deleted else stored


@dataclass
class Relation:
    """A user's private chat with one bot."""

    started: bool = True
    blocked: bool = False


@dataclass
class CallbackQuery:
    id: str
    user_id: int
    chat_id: int
    message_id: int
    data: str
    created: float
    answer: dict[str, Any] | None = None


@dataclass
class Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    ip_address: str | None
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass
class BotState:
    id: int
    config: EmulatorConfig
    secret: str | None = None
    first_name: str = ""
    username: str = ""
    updates: UpdateQueue = field(init=False)
    files: FileStore = field(init=False)
    chats: dict[int, ChatLog] = field(default_factory=dict)
    relations: dict[int, Relation] = field(default_factory=dict)
    callback_queries: dict[str, CallbackQuery] = field(default_factory=dict)
    commands: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    menu_buttons: dict[int | None, dict[str, Any]] = field(default_factory=dict)  # None: the default
    webhook: Webhook | None = None
    last_set_webhook: float = -1e9
    payments: Any = None  # emulator.payments.BotPayments, attached by the core

    def __post_init__(self) -> None:
        cfg = self.config
        self.first_name = self.first_name or f"Emulated Bot {self.id}"
        self.username = self.username or f"bot{self.id}_bot"
        self.updates = UpdateQueue(
            short_expiry=lambda: cfg.callback_query_expiry, long_expiry=lambda: cfg.message_update_expiry
        )
        self.files = FileStore(self.id)

    def user_json(self) -> dict[str, Any]:
        return {"id": self.id, "is_bot": True, "first_name": self.first_name, "username": self.username}

    def menu_button(self, chat_id: int | None) -> dict[str, Any]:
        """The menu button a private chat shows: its own, else the bot's default, else ``default``."""
        if chat_id is not None and chat_id in self.menu_buttons:
            return self.menu_buttons[chat_id]
        return self.menu_buttons.get(None, {"type": "default"})

    def log(self, chat_id: int) -> ChatLog:
        return self.chats.setdefault(chat_id, ChatLog())

    def chat_instance(self, chat_id: int) -> str:
        digest = hashlib.sha256(f"{self.id}:{chat_id}".encode()).digest()
        return str(int.from_bytes(digest[:8], "big") >> 1)


class World:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.users: dict[int, User] = {}
        self.chats: dict[int, Chat] = {}
        self.bots: dict[int, BotState] = {}

    # -- bots ------------------------------------------------------------------------------------
    def bot_for_token(self, token: str) -> BotState:
        """The bot a token names; 401 for a malformed token or a different secret for a known id."""
        match = TOKEN_RE.match(token)
        if match is None or int(match.group(1)) <= 0:
            raise unauthorized()
        bot_id, secret = int(match.group(1)), match.group(2)
        bot = self.bots.get(bot_id)
        if bot is None:
            bot = self.add_bot(bot_id)
        if bot.secret is None:
            bot.secret = secret
        elif bot.secret != secret:
            raise unauthorized()
        return bot

    def add_bot(self, bot_id: int) -> BotState:
        bot = BotState(bot_id, self.config)
        self.bots[bot_id] = bot
        return bot

    def resolve_bot(self, bot_id: Any) -> BotState:
        """The bot a control call means: ``bot_id`` if given, else the only bot known."""
        if bot_id not in (None, ""):
            try:
                wanted = int(bot_id)
            except (TypeError, ValueError):
                raise ControlError(400, "bot_id must be an integer") from None
            return self.bots.get(wanted) or self.add_bot(wanted)
        if len(self.bots) == 1:
            return next(iter(self.bots.values()))
        if not self.bots:
            raise ControlError(409, "no bot has called the API yet; make a Bot API call first or pass bot_id")
        raise ControlError(400, "several bots are known; pass bot_id")

    # -- users and chats -------------------------------------------------------------------------
    def add_user(self, user: User) -> Chat:
        self.users[user.id] = user
        chat = Chat(
            user.id, "private", username=user.username, first_name=user.first_name, last_name=user.last_name
        )
        self.chats[user.id] = chat
        return chat

    def add_chat(self, chat: Chat) -> Chat:
        self.chats[chat.id] = chat
        return chat

    def chat_by_username(self, username: str) -> Chat | None:
        wanted = username.lstrip("@").lower()
        for chat in self.chats.values():
            if chat.type != "private" and chat.username and chat.username.lower() == wanted:
                return chat
        return None

    def relation(self, bot: BotState, user_id: int) -> Relation:
        relation = bot.relations.get(user_id)
        if relation is None:
            user = self.users.get(user_id)
            relation = Relation(started=user.started_default if user else False)
            bot.relations[user_id] = relation
        return relation
