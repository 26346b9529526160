"""Webhook delivery: each update POSTed as JSON with the secret header, oldest first; a non-2xx answer
or a network error is retried with exponential backoff (honouring ``Retry-After``); a 2xx answer may
carry a method call, which is executed as Telegram does."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from emulator.core import EmulatorCore, Exchange
from emulator.params import Params, Upload
from emulator.spec import CANONICAL
from emulator.state import BotState, Webhook
from emulator.updates import TERMINATED_BY_WEBHOOK, Update

log = logging.getLogger(__name__)
NOT_FROM_WEBHOOK_REPLY = frozenset({"setwebhook", "deletewebhook", "close", "logout"})
Executor = Callable[[BotState, str, Params], Awaitable[Any]]


class WebhookManager:
    def __init__(self, core: EmulatorCore, execute: Executor) -> None:
        self.core = core
        self.execute = execute
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def set(self, bot: BotState, hook: Webhook) -> None:
        bot.updates.abort_poll(TERMINATED_BY_WEBHOOK)
        self._cancel(bot)
        bot.webhook = hook
        self._tasks[bot.id] = asyncio.create_task(self._run(bot, hook), name=f"webhook-{bot.id}")

    def delete(self, bot: BotState) -> None:
        bot.webhook = None
        self._cancel(bot)

    def _cancel(self, bot: BotState) -> None:
        task = self._tasks.pop(bot.id, None)
        if task is not None:
            task.cancel()

    async def _run(self, bot: BotState, hook: Webhook) -> None:
        cfg = self.core.config
        backoff = cfg.webhook_retry_initial
        while bot.webhook is hook:
            pending = bot.updates.pending(1)
            if not pending:
                await bot.updates.wait_changed()
                continue
            update = pending[0]
            delivered, retry_after = await self._deliver(bot, hook, update)
            if delivered:
                bot.updates.confirm(update.update_id + 1)
                backoff = cfg.webhook_retry_initial
                continue
            await asyncio.sleep(retry_after if retry_after is not None else backoff)
            backoff = min(backoff * 2, cfg.webhook_retry_max)

    async def _deliver(self, bot: BotState, hook: Webhook, update: Update) -> tuple[bool, float | None]:
        assert self._session is not None
        headers = {"Content-Type": "application/json"}
        if hook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
        body = update.json()
        timeout = aiohttp.ClientTimeout(total=self.core.config.webhook_timeout)
        try:
            async with self._session.post(hook.url, json=body, headers=headers, timeout=timeout) as resp:
                status = resp.status
                self.core.notify(Exchange("webhook", update.kind, status, body))
                if 200 <= status < 300:
                    reply = await _read_reply(resp)
                    if reply is not None:
                        await self._run_reply(bot, reply)
                    return True, None
                hook.last_error_date = self.core.now()
                hook.last_error_message = (
                    f"Wrong response from the webhook: {status} {resp.reason or ''}".strip()
                )
                retry_after = resp.headers.get("Retry-After", "")
                return False, float(retry_after) if retry_after.isdigit() else None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            hook.last_error_date = self.core.now()
            hook.last_error_message = (
                "Timeout expired" if isinstance(exc, TimeoutError) else "Connection refused"
            )
            self.core.notify(Exchange("webhook", update.kind, 0, body))
            return False, None

    async def _run_reply(self, bot: BotState, reply: Params) -> None:
        name = (reply.string("method") or "").lower()
        if not name or name.startswith("get") or name in NOT_FROM_WEBHOOK_REPLY or name not in CANONICAL:
            return
        try:
            await self.execute(bot, CANONICAL[name], reply)
        except Exception:  # the bot never sees the outcome of a webhook-reply call
            log.debug("webhook reply %s failed", name, exc_info=True)


async def _read_reply(resp: aiohttp.ClientResponse) -> Params | None:
    ctype = resp.content_type
    if ctype == "application/json":
        try:
            data = await resp.json()
        except (ValueError, aiohttp.ContentTypeError):
            return None
        return Params.of(data) if isinstance(data, dict) and data.get("method") else None
    if ctype == "multipart/form-data":
        values: dict[str, Any] = {}
        files: dict[str, Upload] = {}
        reader = aiohttp.MultipartReader(resp.headers, resp.content)
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, aiohttp.BodyPartReader) or not part.name:
                continue
            data = await part.read()
            if part.filename:
                files[part.name] = Upload(bytes(data), part.filename, part.headers.get("Content-Type"))
            else:
                values[part.name] = data.decode("utf-8")
        return Params(values, files) if values.get("method") else None
    return None
