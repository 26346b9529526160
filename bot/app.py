"""The bot's composition: Bot, Dispatcher, and the runtime that runs them beside the engine.

``start_bot(services)`` returns a started ``BotRuntime``: relay subscribers registered (fan-out
and notifier), the outbox sender and the expiry sweep running, the command menus set in both
languages, and updates arriving by long polling or, with ``TELEGRAM_MODE=webhook``, through
``runtime.webhook_routes(app)`` on the engine's aiohttp app (mount it before the app starts).
``await runtime.stop()`` stops taking updates, lets handlers and sends in flight finish, and
closes the bot's HTTP session; pending outbox rows wait in the database for the next start.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import weakref
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError, TelegramConflictError, TelegramRetryAfter
from aiogram.filters import ExceptionTypeFilter
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.methods import GetUpdates
from aiogram.types import ErrorEvent
from aiogram.utils.i18n import gettext as _
from aiohttp import web
from loguru import logger
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.admin_gate import AdminGate
from bot.billing_notifier import attach_billing
from bot.commands import set_commands, set_menu_button
from bot.context import BotConfig, BotContext
from bot.daily_summary import run_daily
from bot.fanout import Fanout
from bot.i18n import CatalogI18n, build_i18n
from bot.inbox import InboxStore, InboxWorker, raw_update
from bot.middlewares import LocaleMiddleware, UpdateMiddleware
from bot.notifier import Notifier
from bot.ratelimit import RateLimits, SendBudget, SendLimiter
from bot.retry import BudgetMiddleware
from bot.routers import all_routers
from bot.sender import OutboxSender
from bot.shared_budget import RedisBudget, SharedBudgetConfig, redis_client
from bot.throttle import Throttle
from engine.approvals.fanout import FanoutPlanner
from engine.services import EngineServices
from engine.settings import DEFAULT_TELEGRAM_API_URL, Settings, SettingsError, TelegramMode
from engine.store.events import Event, EventRelay
from engine.store.models import Signal

DEFAULT_WEBHOOK_PATH = "/telegram/webhook"
DEFAULT_LEASE_SECONDS = 60.0  # TELEGRAM_LEASE_SECONDS's default
_SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def build_bot(settings: Settings) -> Bot:
    settings.require("BOT_TOKEN")
    assert settings.bot_token is not None
    if settings.telegram_api_url.rstrip("/") == DEFAULT_TELEGRAM_API_URL:
        session = AiohttpSession()
    else:
        session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url.rstrip("/")))
    return Bot(
        settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )


def build_storage(settings: Settings) -> BaseStorage:
    """FSM storage: Redis when ``REDIS_URL`` is set (shared by instances), else in memory."""
    if settings.redis_url:
        from aiogram.fsm.storage.redis import RedisStorage

        return RedisStorage.from_url(
            settings.redis_url,
            key_builder=DefaultKeyBuilder(with_bot_id=True, with_destiny=True),
            state_ttl=3600,
            data_ttl=3600,
        )
    return MemoryStorage()


def build_budget(services: EngineServices, limits: RateLimits, bot_id: int) -> SendBudget:
    """The send budget: shared by every instance through Redis when ``REDIS_URL`` is set, else this
    process's own. The shared one reports its state with the instance (``/status``, ``/readyz``)."""
    settings = services.settings
    if not settings.redis_url:
        return SendLimiter(limits)
    config = SharedBudgetConfig()
    cluster = services.cluster
    return RedisBudget(
        redis_client(settings.redis_url, config.timeout_seconds),
        limits,
        bot_id=bot_id,
        instance=cluster.instance_id,
        config=config,
        instances_hint=cluster.live_instances,
        report=cluster.details.update,
    )


def bot_context(
    services: EngineServices, i18n: CatalogI18n | None = None, config: BotConfig | None = None
) -> BotContext:
    """The bot's view of the engine: the services the composition root built, as they are."""
    return BotContext(
        engine=services,
        subscribers=services.subscribers,
        accounts=services.accounts,
        approvals=services.approvals,
        i18n=i18n or build_i18n(),
        config=config or BotConfig(),
    )


async def _on_error(event: ErrorEvent) -> bool:
    logger.opt(exception=event.exception).error("update {} failed", event.update.update_id)
    text = _("Something went wrong on our side. Please try again.")
    with suppress(TelegramAPIError):
        if event.update.callback_query is not None:
            await event.update.callback_query.answer(text, show_alert=True)
        elif event.update.message is not None:
            await event.update.message.answer(text)
    return True


def build_dispatcher(
    ctx: BotContext, storage: BaseStorage | None = None
) -> tuple[Dispatcher, UpdateMiddleware]:
    dispatcher = Dispatcher(storage=storage or MemoryStorage(), engine=ctx.engine, ctx=ctx)
    Throttle(ctx, ctx.config.throttle).setup(dispatcher)  # a flooder is answered once, then dropped
    updates = UpdateMiddleware(ctx)
    dispatcher.update.outer_middleware(updates)
    LocaleMiddleware(ctx.i18n).setup(dispatcher)
    AdminGate(ctx).setup(dispatcher)  # every admin command and button, refused and audited alike
    dispatcher.include_routers(*all_routers())
    # A 429 Telegram asked to wait out longer than a handler waits is not an error: the inbox hands
    # the update back and it is handled again after retry_after (nothing else is sent meanwhile).
    dispatcher.errors.register(_on_error, ~ExceptionTypeFilter(TelegramRetryAfter))
    return dispatcher, updates


class _RelayHook:
    """One relay subscription per relay, pointing at the engine's fan-out planner and the newest
    runtime's fan-out and notifier (they only write outbox rows, so events keep flowing while the
    bot is stopped). Signals are planned only once a bot can deliver them."""

    def __init__(self) -> None:
        self.planner: FanoutPlanner | None = None
        self.fanout: Fanout | None = None
        self.notifier: Notifier | None = None

    async def on_plan(self, events: Sequence[Event]) -> None:
        if self.planner is not None:
            await self.planner.handle_batch(events)

    async def on_fanout(self, events: Sequence[Event]) -> None:
        if self.fanout is not None:
            await self.fanout.handle_batch(events)

    async def on_notify(self, event: Event) -> None:
        if self.notifier is not None:
            await self.notifier.handle(event)


_hooks: weakref.WeakKeyDictionary[EventRelay, _RelayHook] = weakref.WeakKeyDictionary()


def _hook_for(relay: EventRelay) -> _RelayHook:
    hook = _hooks.get(relay)
    if hook is None:
        hook = _hooks[relay] = _RelayHook()
        relay.subscribe_batch("engine.fanout", hook.on_plan)
        relay.subscribe_batch("bot.fanout", hook.on_fanout)
        relay.subscribe("bot.notifier", hook.on_notify)
    return hook


def webhook_path(settings: Settings, config: BotConfig) -> str:
    if config.webhook_path:
        return config.webhook_path
    path = urlsplit(settings.webhook_url or "").path
    return path if path and path != "/" else DEFAULT_WEBHOOK_PATH


class BotRuntime:
    def __init__(self, ctx: BotContext, bot: Bot, storage: BaseStorage | None = None) -> None:
        self.ctx = ctx
        self.bot = bot
        self.dispatcher, self._updates = build_dispatcher(ctx, storage)
        self.limiter = build_budget(ctx.engine, ctx.config.limits, bot.id)
        # Handler replies share the outbox's budget.
        self.budget = BudgetMiddleware(self.limiter, max_wait_seconds=ctx.config.reply_wait_seconds)
        bot.session.middleware(self.budget)
        inbox_config, outbox_config = ctx.config.inbox, ctx.config.outbox
        hold = float(ctx.settings.telegram_inbox_hold_seconds)
        if hold > inbox_config.hold_seconds:
            inbox_config = replace(inbox_config, hold_seconds=hold)
        lease = float(ctx.settings.telegram_lease_seconds)
        if lease != DEFAULT_LEASE_SECONDS:  # the operator's choice over the built-in default
            inbox_config = replace(inbox_config, lease_seconds=lease)
            outbox_config = replace(outbox_config, lease_seconds=lease)
        self.sender = OutboxSender(
            ctx.engine.db,
            bot,
            self.limiter,
            outbox_config,
            on_sent=self._on_sent,
            on_blocked=self._on_blocked,
        )
        ctx.wake_outbox = self.sender.wake
        self.inbox = InboxStore(ctx.engine.db, bot.id)
        self.inbox_worker = InboxWorker(self.inbox, ctx.engine.db, self.dispatcher, bot, inbox_config)
        self._tasks: list[asyncio.Task[Any]] = []
        self._polling: asyncio.Task[None] | None = None
        self._offset: int | None = None  # polling: the next update id to ask for (all below are stored)
        self.running = False
        self.intake = False  # updates are taken (False while starting and once stopping)

    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    @property
    def mode(self) -> TelegramMode:
        return self.settings.telegram_mode

    def _webhook_secret(self) -> str | None:
        if self.settings.webhook_secret is None:
            return None
        return self.settings.webhook_secret.get_secret_value()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        secret = self._webhook_secret()
        if self.mode is TelegramMode.WEBHOOK and (not secret or not _SECRET_TOKEN.match(secret)):
            raise SettingsError(
                "WEBHOOK_SECRET: required in webhook mode, 1-256 characters of A-Z a-z 0-9 _ -"
            )
        me = await self.bot.me()  # the token works and Telegram answers, before anything starts
        self.ctx.bot_username = me.username
        hook = _hook_for(self.ctx.engine.relay)
        hook.planner = self.ctx.engine.fanout
        hook.fanout, hook.notifier = Fanout(self.ctx), Notifier(self.ctx)
        attach_billing(self.ctx, self._tasks)  # billing: notices, auto-execution, sweep
        if isinstance(self.limiter, RedisBudget):
            await self.limiter.start()
        self.sender.start()
        self.inbox_worker.start()  # updates stored before a restart are handled first
        self.intake = True
        self._tasks.append(asyncio.create_task(self._sweep(), name="bot-expiry-sweep"))
        self._tasks.append(asyncio.create_task(run_daily(self.ctx), name="bot-daily-summary"))
        self.running = True
        try:
            await set_commands(self.bot, self.ctx)
            await set_menu_button(self.bot, self.ctx)
            if self.mode is TelegramMode.WEBHOOK:
                await self._set_webhook(secret)
            else:
                await self.bot.delete_webhook(drop_pending_updates=False)
                self._polling = asyncio.create_task(self._poll(), name="bot-polling")
        except BaseException:
            await self.stop()  # nothing half-started stays behind
            raise
        logger.info("bot @{} started ({} mode)", me.username, self.mode.value)

    async def _set_webhook(self, secret: str | None) -> None:
        """Point Telegram at ``WEBHOOK_URL``. Several instances behind one load balancer all set the
        same webhook as they start; Telegram limits ``setWebhook`` (429), so each waits its turn."""
        for attempt in range(1, 6):
            try:
                await self.bot.set_webhook(
                    url=str(self.settings.webhook_url),
                    secret_token=secret,
                    allowed_updates=self.dispatcher.resolve_used_update_types(),
                )
                return
            except TelegramRetryAfter as exc:
                if attempt == 5:
                    raise
                logger.info(
                    "setWebhook: Telegram asked to wait {} s (another instance set it)", exc.retry_after
                )
                await asyncio.sleep(exc.retry_after)

    async def stop_intake(self, deadline_seconds: float | None = None) -> None:
        """Take no new updates (polling stops, the webhook answers 503) and let those being handled
        finish (within ``deadline_seconds``); the outbox keeps sending until ``stop``."""
        self.intake = False
        timeout = self.ctx.config.stop_timeout_seconds
        if deadline_seconds is not None:
            timeout = min(timeout, deadline_seconds)
        await self.stop_polling()
        await self.inbox_worker.stop(timeout)
        await self._confirm_updates()

    async def stop(self, deadline_seconds: float | None = None) -> None:
        """Stop everything; with ``deadline_seconds``, the last sends get at most that long (what
        is not sent stays in the outbox for the next start)."""
        if not self.running:
            return
        await self.stop_intake(deadline_seconds)
        self.running = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        drain = self.ctx.config.drain_seconds
        await self.sender.stop(
            drain_seconds=drain if deadline_seconds is None else min(drain, deadline_seconds)
        )
        if isinstance(self.limiter, RedisBudget):
            await self.limiter.close()
        await self.dispatcher.storage.close()  # FSM storage (a Redis connection pool)
        await self.bot.session.close()
        logger.info("bot stopped")

    async def stop_polling(self) -> None:
        """Stop asking Telegram for updates (a batch not yet stored is not confirmed: it comes again)."""
        if self._polling is not None:
            self._polling.cancel()
            with suppress(asyncio.CancelledError):
                await self._polling
            self._polling = None

    async def _confirm_updates(self) -> None:
        """Polling: confirm what the inbox holds, so the next start is not sent it again."""
        if self.mode is not TelegramMode.POLLING or self._offset is None:
            return
        with suppress(TelegramAPIError, TimeoutError):
            await self.bot(GetUpdates(offset=self._offset, limit=1, timeout=0))

    async def _poll(self) -> None:
        """Long polling into the inbox: a batch is stored (one transaction) before the next
        ``getUpdates`` confirms it with its offset."""
        allowed = self.dispatcher.resolve_used_update_types()
        timeout = self.ctx.config.polling_timeout
        backoff = 1.0
        while True:
            try:
                updates = await self.bot(
                    GetUpdates(offset=self._offset, timeout=timeout, allowed_updates=allowed),
                    request_timeout=int(self.bot.session.timeout + timeout),
                )
                if updates:
                    await self.inbox.store([raw_update(u) for u in updates])
                    self._offset = updates[-1].update_id + 1
                    self.inbox_worker.wake()
                backoff = 1.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                level = "WARNING" if isinstance(exc, TelegramAPIError | TimeoutError | OSError) else "ERROR"
                if isinstance(exc, TelegramConflictError):
                    level = "ERROR"  # a webhook is set, or another process polls with this token
                logger.log(level, "getUpdates failed ({}); retrying in {:.0f} s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(30.0, backoff * 2)

    async def _sweep(self) -> None:
        while True:
            try:
                await self.ctx.approvals.expire_due()
            except Exception as exc:
                logger.opt(exception=exc).error("expiry sweep failed")
            await asyncio.sleep(self.ctx.config.expiry_sweep_seconds)

    # ------------------------------------------------------------------ webhook

    def webhook_routes(self, app: web.Application) -> str:
        """Mount the Telegram webhook on the engine's aiohttp app; returns the path."""
        path = webhook_path(self.settings, self.ctx.config)
        app.router.add_post(path, self._handle_webhook)
        return path

    async def _handle_webhook(self, request: web.Request) -> web.StreamResponse:
        """Store the update in the inbox, then answer 200: a crash before the commit gets no
        answer, so Telegram delivers the update again."""
        if not (self.running and self.intake) or self.mode is not TelegramMode.WEBHOOK:
            return web.Response(status=503, text="bot not running")  # Telegram retries later
        secret = self._webhook_secret() or ""
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), secret.encode()):
            return web.Response(status=401, text="Unauthorized")
        try:
            raw = await request.json()
            update_id = raw.get("update_id") if isinstance(raw, dict) else None
        except ValueError:
            update_id = None
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            return web.Response(status=400, text="not a Telegram update")
        await self.inbox.store([raw])
        self.inbox_worker.wake()
        return web.json_response({})

    # ------------------------------------------------------------------ outbox hooks

    async def _on_sent(self, session: AsyncSession, meta: dict[str, Any], message_id: int | None) -> None:
        if message_id is None:
            return
        if meta.get("decision_id"):
            await self.ctx.approvals.record_message(session, str(meta["decision_id"]), message_id)
        if meta.get("channel_signal_id"):
            await session.execute(
                update(Signal)
                .where(Signal.id == str(meta["channel_signal_id"]))
                .values(channel_message_id=message_id)
            )

    async def _on_blocked(self, chat_id: int) -> None:
        if chat_id > 0:  # a private chat: the user blocked the bot
            await self.ctx.subscribers.mark_blocked(chat_id)


async def start_bot(
    services: EngineServices,
    *,
    config: BotConfig | None = None,
    i18n: CatalogI18n | None = None,
    bot: Bot | None = None,
    storage: BaseStorage | None = None,
) -> BotRuntime:
    """Build and start the bot beside the engine (the composition root's one call)."""
    ctx = bot_context(services, i18n, config)
    runtime = BotRuntime(
        ctx, bot or build_bot(services.settings), storage or build_storage(services.settings)
    )
    await runtime.start()
    return runtime
