"""Fixtures: an emulator on a free loopback port, the real aiogram Bot pointed at it, a control client.

Every answer the emulator gives (and every update it delivers by webhook) during a test is walked
against the Bot API spec file; a test fails if any object lacks a required field, carries an
unknown one, or has a wrongly typed value.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from emulator import BotAPIEmulator, EmulatorClient, EmulatorConfig
from emulator.core import Exchange
from emulator.spec import SpecChecker

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
OTHER_TOKEN = "987654321:BBHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw2"
BOT_ID = 123456789
# The Bot API as data lives in shared/ beside the checkout (as in CI: ../shared/spec/).
_DEFAULT_SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "telegram-bot-api.json"
SPEC_PATH = Path(os.environ.get("TELEGRAM_BOT_API_SPEC", str(_DEFAULT_SPEC)))

# Tests run with Telegram's limits loosened unless they are about limits (they build their own).
TEST_CONFIG = EmulatorConfig(
    per_chat_burst=1000,
    per_chat_per_second=1000.0,
    global_per_second=1000.0,
    group_per_minute=1000,
    set_webhook_min_interval=0.0,
    webhook_retry_initial=0.05,
    webhook_retry_max=0.2,
    webhook_timeout=5.0,
)


@pytest.fixture(scope="session")
def spec() -> SpecChecker:
    if not SPEC_PATH.is_file():
        pytest.fail(f"Bot API spec not found at {SPEC_PATH}; set TELEGRAM_BOT_API_SPEC", pytrace=False)
    return SpecChecker.load(SPEC_PATH)


def exchange_problems(spec: SpecChecker, exchange: Exchange) -> list[str]:
    body = exchange.body
    if exchange.kind == "webhook":
        return spec.check("Update", body, "webhook update")
    if body.get("ok") is True:
        if exchange.status != 200:
            return [f"{exchange.method}: ok answer with HTTP {exchange.status}"]
        return spec.check_result(exchange.method, body["result"])
    problems = []
    if body.get("error_code") != exchange.status:
        problems.append(f"{exchange.method}: error_code {body.get('error_code')} with HTTP {exchange.status}")
    if set(body) - {"ok", "error_code", "description", "parameters"} or not isinstance(
        body.get("description"), str
    ):
        problems.append(f"{exchange.method}: malformed error body {body}")
    return problems


EmulatorFactory = Callable[..., Awaitable[BotAPIEmulator]]


@pytest.fixture
async def make_emulator(spec: SpecChecker) -> AsyncIterator[EmulatorFactory]:
    """Start emulators (TEST_CONFIG with overrides); their answers are checked against the spec."""
    started: list[BotAPIEmulator] = []
    problems: list[str] = []

    async def make(**overrides: Any) -> BotAPIEmulator:
        emulator = BotAPIEmulator(replace(TEST_CONFIG, **overrides))
        emulator.add_listener(lambda exchange: problems.extend(exchange_problems(spec, exchange)))
        await emulator.start("127.0.0.1", 0)
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        await emulator.stop()
    assert problems == [], "answers that do not match the Bot API spec:\n" + "\n".join(problems)


@pytest.fixture
async def emulator(make_emulator: EmulatorFactory) -> BotAPIEmulator:
    return await make_emulator()


class LoopbackSession(AiohttpSession):
    """aiogram's session without the 250 ms pause it takes on close for TLS shutdown (none on loopback)."""

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


def make_bot(base_url: str, token: str = TOKEN, **defaults: Any) -> Bot:
    session = LoopbackSession(api=TelegramAPIServer.from_base(base_url))
    return Bot(token, session=session, default=DefaultBotProperties(**defaults))


@pytest.fixture
async def bot(emulator: BotAPIEmulator) -> AsyncIterator[Bot]:
    instance = make_bot(emulator.base_url, parse_mode="HTML")
    yield instance
    await instance.session.close()


class CheckedClient(EmulatorClient):
    """The control client, with every Message it returns checked against the spec."""

    def __init__(self, base_url: str, spec: SpecChecker) -> None:
        super().__init__(base_url)
        self.spec = spec

    async def messages(self, chat_id: int, **kwargs: Any) -> list[dict[str, Any]]:
        found = await super().messages(chat_id, **kwargs)
        problems = self.spec.check("Array of Message", found, "control messages")
        assert problems == [], problems
        return found


@pytest.fixture
async def ctl(emulator: BotAPIEmulator, spec: SpecChecker) -> AsyncIterator[CheckedClient]:
    client = CheckedClient(emulator.base_url, spec)
    yield client
    await client.close()


@pytest.fixture
async def alice(ctl: CheckedClient, bot: Bot) -> int:
    """User 1001 with a private chat the bot may write to (the bot is known after getMe)."""
    await bot.get_me()
    await ctl.add_user(1001, "Alice", "alice", "en")
    return 1001


async def eventually(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    """Wait until ``condition()`` holds (for server-side state a test cannot await directly)."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def png(width: int, height: int) -> bytes:
    """A tiny PNG header with the given size (enough for Telegram-style size detection)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + b"\x00" * 32
    )
