"""Webhook delivery: JSON POSTs with the secret header, retries with backoff, replies with a method."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, Router
from aiogram.exceptions import TelegramBadRequest, TelegramConflictError, TelegramRetryAfter
from aiogram.filters import CommandStart
from aiogram.types import Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from tests.support.emulator_world import CheckedClient, EmulatorFactory, make_bot
from tests.support.telegram import TOKEN


class Receiver:
    """A webhook endpoint on loopback that fails the first ``failures`` deliveries."""

    def __init__(self, failures: int = 0, status: int = 500, headers: dict[str, str] | None = None) -> None:
        self.failures = failures
        self.status = status
        self.headers = headers or {}
        self.reply: dict[str, Any] | None = None
        self.seen: list[tuple[float, dict[str, str], dict[str, Any]]] = []
        self.arrived = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((time.monotonic(), dict(request.headers), await request.json()))
        if self.failures > 0:
            self.failures -= 1
            return web.Response(status=self.status, headers=self.headers)
        self.arrived.set()
        return web.json_response(self.reply or {})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/hook"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    instance = Receiver()
    await instance.start()
    yield instance
    await instance.stop()


async def test_updates_are_posted_with_the_secret_header(
    bot: Bot, ctl: CheckedClient, alice: int, receiver: Receiver
) -> None:
    assert await bot.set_webhook(receiver.url, secret_token="s3cret_token-1") is True
    await ctl.send(alice, "/start")
    await asyncio.wait_for(receiver.arrived.wait(), 3)
    [(_, headers, body)] = receiver.seen
    assert headers["X-Telegram-Bot-Api-Secret-Token"] == "s3cret_token-1"
    assert headers["Content-Type"].startswith("application/json")
    assert body["message"]["text"] == "/start" and isinstance(body["update_id"], int)
    info = await bot.get_webhook_info()
    assert info.url == receiver.url and info.pending_update_count == 0 and info.max_connections == 40
    with pytest.raises(TelegramConflictError, match="can't use getUpdates method while webhook is active"):
        await bot.get_updates()
    assert await bot.delete_webhook() is True
    assert (await bot.get_webhook_info()).url == ""
    assert await bot.get_updates() == []


async def test_set_and_delete_answer_with_telegrams_descriptions(bot: Bot, receiver: Receiver) -> None:
    base = bot.session.api.api_url(TOKEN, "")  # type: ignore[attr-defined]
    async with aiohttp.ClientSession() as http:

        async def call(method: str, **data: str) -> dict[str, Any]:
            async with http.post(base + method, data=data) as resp:
                return dict(await resp.json())

        assert (await call("setWebhook", url=receiver.url))["description"] == "Webhook was set"
        assert (await call("setWebhook", url=receiver.url))["description"] == "Webhook is already set"
        assert (await call("deleteWebhook"))["description"] == "Webhook was deleted"
        assert (await call("deleteWebhook"))["description"] == "Webhook is already deleted"


async def test_a_failing_endpoint_is_retried_with_backoff(
    bot: Bot, ctl: CheckedClient, alice: int, receiver: Receiver
) -> None:
    receiver.failures = 3
    await bot.set_webhook(receiver.url)
    await ctl.send(alice, "hello")
    await asyncio.wait_for(receiver.arrived.wait(), 5)
    times = [t for t, _, _ in receiver.seen]
    assert len(times) == 4
    assert len({body["update_id"] for _, _, body in receiver.seen}) == 1
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.04 and gaps[1] >= 0.09  # 0.05 s, then doubled (test configuration)
    info = await bot.get_webhook_info()
    assert info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
    assert info.last_error_date is not None and info.pending_update_count == 0


async def test_retry_after_from_the_endpoint_is_honoured(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    receiver = Receiver(failures=1, status=429, headers={"Retry-After": "1"})
    await receiver.start()
    try:
        await bot.set_webhook(receiver.url)
        await ctl.send(alice, "hello")
        await asyncio.wait_for(receiver.arrived.wait(), 5)
        (first, _, _), (second, _, _) = receiver.seen
        assert second - first >= 0.95
    finally:
        await receiver.stop()


async def test_a_method_in_the_webhook_reply_is_executed(
    bot: Bot, ctl: CheckedClient, alice: int, receiver: Receiver
) -> None:
    receiver.reply = {"method": "sendMessage", "chat_id": alice, "text": "<b>pong</b>", "parse_mode": "HTML"}
    await bot.set_webhook(receiver.url)
    await ctl.send(alice, "ping")
    [message] = await ctl.messages(alice, wait=3)
    assert message["text"] == "pong" and message["entities"][0]["type"] == "bold"


async def test_aiogram_dispatcher_behind_a_webhook(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        await message.answer(f"Welcome, <b>{message.from_user.first_name if message.from_user else '?'}</b>")

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    app = web.Application()
    SimpleRequestHandler(dispatcher=dispatcher, bot=bot, secret_token="hook-secret").register(app, path="/tg")
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/tg"
        await bot.set_webhook(url, secret_token="hook-secret")
        await ctl.send(alice, "/start")
        [reply] = await ctl.messages(alice, wait=3)
        assert reply["text"] == "Welcome, Alice"
        assert (await bot.get_webhook_info()).last_error_date is None
    finally:
        await runner.cleanup()


async def test_bad_webhook_settings_are_refused(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="secret token contains unallowed characters"):
        await bot.set_webhook("http://127.0.0.1:9/hook", secret_token="not allowed!")
    with pytest.raises(TelegramBadRequest, match="secret token is too long"):
        await bot.set_webhook("http://127.0.0.1:9/hook", secret_token="x" * 257)
    with pytest.raises(TelegramBadRequest, match="bad webhook"):
        await bot.set_webhook("ftp://127.0.0.1/hook")


async def test_set_webhook_more_than_once_a_second_is_throttled(make_emulator: EmulatorFactory) -> None:
    emulator = await make_emulator(set_webhook_min_interval=1.0)
    bot = make_bot(emulator.base_url)
    try:
        await bot.set_webhook("http://127.0.0.1:9/a")
        with pytest.raises(TelegramRetryAfter) as caught:
            await bot.set_webhook("http://127.0.0.1:9/b")
        assert caught.value.retry_after == 1
    finally:
        await bot.session.close()


async def test_drop_pending_updates_and_allowed_updates(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    await ctl.send(alice, "queued before the webhook")
    await bot.set_webhook(
        "http://127.0.0.1:9/unreachable", allowed_updates=["message"], drop_pending_updates=True
    )
    info = await bot.get_webhook_info()
    assert info.pending_update_count == 0 and info.allowed_updates == ["message"]
    await ctl.send(alice, "queued for the webhook")
    assert (await bot.get_webhook_info()).pending_update_count == 1
    await bot.delete_webhook(drop_pending_updates=True)
    assert await bot.get_updates() == []
