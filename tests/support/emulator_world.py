"""The Bot API emulator under test: its answers checked against the Bot API spec, the real aiogram
Bot pointed at it, a spec-checking control client."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from emulator import BotAPIEmulator, EmulatorClient
from emulator.core import Exchange
from emulator.spec import SpecChecker
from tests.support.telegram import TOKEN

# The Bot API as data lives in shared/ beside the checkout (as in CI: ../shared/spec/); a git worktree
# sits one level deeper, so the nearest such directory above the checkout is the one.
_SPEC_RELATIVE = Path("shared") / "spec" / "telegram-bot-api.json"
_ROOT = Path(__file__).resolve().parents[2]
_DEFAULT_SPEC = next(
    (p / _SPEC_RELATIVE for p in _ROOT.parents if (p / _SPEC_RELATIVE).is_file()),
    _ROOT.parent / _SPEC_RELATIVE,
)
SPEC_PATH = Path(os.environ.get("TELEGRAM_BOT_API_SPEC", str(_DEFAULT_SPEC)))


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


class LoopbackSession(AiohttpSession):
    """aiogram's session without the 250 ms pause it takes on close for TLS shutdown (none on loopback)."""

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


def make_bot(base_url: str, token: str = TOKEN, **defaults: Any) -> Bot:
    session = LoopbackSession(api=TelegramAPIServer.from_base(base_url))
    return Bot(token, session=session, default=DefaultBotProperties(**defaults))


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
