"""The people in the sandbox, and how they join: as real users would, through the emulator.

Each person is an emulator user with a private chat. Joining is what a user does in Telegram:
send ``/start``, read the disclaimer, tap its button. Between the two, ``before_consent`` may act
for the operator (with ``--broker mt5`` it links the person's simulated MT5 account, so consent
finds it). The admin (``ADMIN_IDS``) joins too, and the ops channel (``OPS_CHAT_ID``) is an
emulator channel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from emulator.control import EmulatorClient

ONBOARD_TIMEOUT = 20.0


@dataclass(frozen=True)
class Person:
    user_id: int
    first_name: str
    last_name: str
    username: str
    language: str
    role: str = "subscriber"  # subscriber | admin

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"


@dataclass(frozen=True)
class Channel:
    chat_id: int
    title: str


ADMIN = Person(7000001, "Alex", "Morgan", "alex_ops", "en", role="admin")
SUBSCRIBERS = (
    Person(7000101, "Ben", "Carter", "ben_carter", "en"),
    Person(7000102, "Lucía", "Fernández", "lucia_fx", "es"),
    Person(7000103, "Priya", "Shah", "priya_trades", "en"),
)
PEOPLE = (*SUBSCRIBERS, ADMIN)
OPS_CHANNEL = Channel(-1001000000077, "Tradebot Ops")


def by_id(user_id: int) -> Person | None:
    return next((p for p in PEOPLE if p.user_id == user_id), None)


async def add_to_emulator(client: EmulatorClient) -> None:
    """The users and the ops channel (before the bot starts, so its first ops alert has a home)."""
    for person in PEOPLE:
        await client.add_user(
            person.user_id,
            person.first_name,
            username=person.username,
            language_code=person.language,
            last_name=person.last_name,
            started=False,
        )
    await client.add_chat(OPS_CHANNEL.chat_id, "channel", OPS_CHANNEL.title)


def callback_buttons(message: dict[str, Any]) -> list[str]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
    return [b["callback_data"] for row in rows for b in row if "callback_data" in b]


async def _next_bot_message(
    client: EmulatorClient, chat_id: int, after: int, want: Callable[[dict[str, Any]], bool], deadline: float
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(f"the bot did not answer in chat {chat_id} in time")
        found = await client.messages(chat_id, after=after, wait=min(remaining, 5.0))
        for message in found:
            after = max(after, int(message["message_id"]))
            if want(message):
                return message


async def onboard(
    client: EmulatorClient,
    person: Person,
    before_consent: Callable[[Person], Awaitable[None]] | None = None,
    within: float = ONBOARD_TIMEOUT,
) -> dict[str, Any]:
    """``/start``, then the disclaimer's button; returns the bot's welcome message."""
    deadline = asyncio.get_running_loop().time() + within
    sent = await client.send(person.user_id, "/start")
    after = int(sent["message"]["message_id"])
    disclaimer = await _next_bot_message(
        client, person.user_id, after, lambda m: len(callback_buttons(m)) == 1, deadline
    )
    if before_consent is not None:
        await before_consent(person)
    query_id = await client.tap(
        person.user_id, person.user_id, disclaimer["message_id"], callback_buttons(disclaimer)[0]
    )
    answer = await client.callback_answer(
        query_id, wait=max(deadline - asyncio.get_running_loop().time(), 0.1)
    )
    if answer is None:
        raise TimeoutError(f"the bot did not answer {person.name}'s consent in time")
    return await _next_bot_message(
        client, person.user_id, int(disclaimer["message_id"]), lambda m: "reply_markup" not in m, deadline
    )
