"""The bot's test world: the Bot API emulator on loopback, the engine (SQLite, paper or simulated
MT5 accounts), the producer HTTP API with the Telegram webhook mounted, and the real aiogram bot."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import ClientSession, web
from sqlalchemy import select

from bot.app import BotRuntime, bot_context, build_bot, build_storage
from bot.callbacks import ConsentCb, version_digest
from bot.context import BotConfig
from bot.ratelimit import RateLimits
from bot.sender import OutboxConfig
from bot.throttle import ThrottleConfig
from bot.webapp import MiniApp
from emulator import BotAPIEmulator, EmulatorClient, EmulatorConfig
from emulator.state import CallbackQuery
from engine.api import ApiContext, build_http_app
from engine.api.server import AccessLogger
from engine.brokers.pricefeed import PaperMarket
from engine.execution.service import ExecutionConfig
from engine.ingest.producers import NewProducer
from engine.ingest.signing import signature_header
from engine.services import EngineServices
from engine.settings import Settings
from engine.store.events import SIGNAL_ACCEPTED, emit
from engine.store.models import DomainEvent, ExecutionAccount, Producer, Signal
from tests.support.factories import CONSENT
from tests.support.ports import bound_socket
from tests.support.prices import FixedPrices
from tests.support.telegram import LOOSE_EMULATOR, TOKEN, buttons
from tests.support.waiting import eventually
from tradebot.app import build_api_context, build_services

ADMIN = 900
OPS_CHAT = -1001000000500
CHANNEL = -1001000000600
SECRET_KEY = "s" * 40

FAST = BotConfig(
    limits=RateLimits(
        global_per_second=1000,
        headroom=1.0,
        per_chat_per_second=1000,
        per_chat_burst=1000,
        group_per_minute=100000,
    ),
    outbox=OutboxConfig(
        poll_seconds=0.05,
        retry_initial_seconds=0.05,
        retry_max_seconds=0.3,
        lease_seconds=5.0,
        stop_timeout_seconds=5.0,
    ),
    throttle=ThrottleConfig(burst=1000),  # tests that flood say so
    expiry_sweep_seconds=0.1,
    polling_timeout=1,
    stop_timeout_seconds=5.0,
    drain_seconds=0.5,
)
FAST_EXECUTION = ExecutionConfig(max_attempts=3, retry_initial_seconds=0.01, retry_max_seconds=0.05)


@dataclass
class World:
    emulator: BotAPIEmulator
    client: EmulatorClient
    services: EngineServices
    settings: Settings
    prices: FixedPrices
    config: BotConfig
    api_ctx: ApiContext
    http_port: int
    runtime: BotRuntime | None = None
    miniapp: MiniApp | None = None  # mounted when make_world(..., miniapp=True)
    producer: NewProducer | None = None
    submitted: list[str] = field(default_factory=list)
    _cleanup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def db(self) -> Any:
        return self.services.db

    def rt(self) -> BotRuntime:
        assert self.runtime is not None
        return self.runtime

    def new_runtime(self, config: BotConfig | None = None) -> BotRuntime:
        ctx = bot_context(self.services, config=config or self.config)
        return BotRuntime(ctx, build_bot(self.settings), build_storage(self.settings))

    async def start_bot(self, runtime: BotRuntime | None = None) -> BotRuntime:
        self.runtime = runtime or self.new_runtime()
        await self.runtime.start()
        return self.runtime

    async def close(self) -> None:
        for step in self._cleanup:
            await step()

    # ------------------------------------------------------------------ acting as users

    async def user(
        self, uid: int, name: str = "User", lang: str | None = "en", username: str | None = None
    ) -> None:
        await self.client.add_user(uid, name, username=username or f"user{uid}", language_code=lang)

    async def say(self, uid: int, text: str) -> None:
        await self.client.send(uid, text)

    async def messages(self, chat: int) -> list[dict[str, Any]]:
        return await self.client.messages(chat)

    async def wait_message(
        self, chat: int, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            return next((m for m in reversed(await self.client.messages(chat)) if predicate(m)), None)

        found: dict[str, Any] = await eventually(probe, timeout)
        return found

    async def wait_text(self, chat: int, fragment: str, timeout: float = 5.0) -> dict[str, Any]:
        return await self.wait_message(chat, lambda m: fragment in (m.get("text") or ""), timeout)

    async def tap(
        self, uid: int, chat: int, message_id: int, data: str, timeout: float = 5.0
    ) -> dict[str, Any]:
        query_id = await self.client.tap(uid, chat, message_id, data)
        answer = await self.client.callback_answer(query_id, wait=timeout)
        assert answer is not None, f"no answer to the tap {data}"
        return answer

    async def forged_tap(self, uid: int, chat: int, message_id: int, data: str) -> dict[str, Any]:
        """A tap the emulator's own ``tap`` refuses: a tampered or stale client sends ``data`` for a
        message in somebody else's private chat, or for a button the bot has removed since
        (Telegram delivers whatever callback data a client sends). The query is made here as the
        emulator makes it; returns the bot's answer."""
        core = self.emulator.core
        bot = core.world.resolve_bot(None)
        stored = core.find_message(bot, chat, message_id)
        user = core.world.users[uid]
        assert stored is not None and stored.by_bot, (chat, message_id)
        query = CallbackQuery(
            id=str(secrets.randbits(63)),
            user_id=uid,
            chat_id=chat,
            message_id=message_id,
            data=data,
            created=core.clock(),
        )
        bot.callback_queries[query.id] = query
        payload = {
            "id": query.id,
            "from": user.json(),
            "message": stored.view(),
            "chat_instance": bot.chat_instance(chat),
            "data": data,
        }
        core.push_update(bot, "callback_query", payload)
        answer = await self.client.callback_answer(query.id, wait=5.0)
        assert answer is not None, f"no answer to the forged tap {data}"
        return answer

    async def subscribe(self, uid: int, lang: str | None = "en", name: str = "User") -> dict[str, Any]:
        """A new user: /start, then the consent button. Returns the welcome message."""
        await self.user(uid, name, lang)
        await self.say(uid, "/start")
        consent = ConsentCb(digest=version_digest(self.settings.consent_version)).pack()
        disclaimer = await self.wait_message(uid, lambda m: consent in buttons(m))
        await self.tap(uid, uid, disclaimer["message_id"], consent)
        return await self.wait_message(uid, lambda m: m["message_id"] > disclaimer["message_id"])

    # ------------------------------------------------------------------ signals

    async def producer_row(self) -> str:
        async with self.db.session() as session:
            row = await session.scalar(select(Producer).where(Producer.name == "direct"))
            if row is None:
                row = Producer(name="direct", secret_enc="x", token_digest="d" * 64)
                session.add(row)
                await session.flush()
            return row.id

    async def accept_signal(
        self,
        *,
        side: str = "buy",
        sl: str = "1.09800",
        tp: str = "1.10400",
        entry: str | None = None,
        ttl: int = 900,
        note: str | None = None,
        instrument: str = "EURUSD",
        targets: list[tuple[str, int]] | None = None,
        breakeven_after: int = 0,
        order_type: str = "market",
    ) -> str:
        """Store an accepted signal and announce it, as the ingest service does (``targets``:
        (price, close percent) pairs, nearest first; ``tp`` is then the last one's price)."""
        producer_id = await self.producer_row()
        now = datetime.now(UTC)
        async with self.db.session() as session:
            signal = Signal(
                producer_id=producer_id,
                idempotency_key=f"k-{uuid.uuid4().hex}",
                body_hash="h",
                instrument=instrument,
                side=side,
                order_type=order_type,
                entry=Decimal(entry) if entry else None,
                sl=Decimal(sl),
                tp=Decimal(targets[-1][0] if targets else tp),
                targets=[{"price": p, "close_percent": c} for p, c in targets] if targets else None,
                breakeven_after=breakeven_after,
                risk_percent=Decimal("1"),
                ttl_seconds=ttl,
                note=note,
                received_at=now,
                expires_at=now + timedelta(seconds=ttl),
            )
            session.add(signal)
            await session.flush()
            emit(session, SIGNAL_ACCEPTED, signal_id=signal.id)
            signal_id = signal.id
        self.services.relay.notify()
        return signal_id

    async def post_signal(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST a signed signal to the producer webhook over HTTP."""
        if self.producer is None:
            assert self.api_ctx.producers is not None
            self.producer = await self.api_ctx.producers.add("alpha")
        raw = json.dumps(body).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Producer-Id": self.producer.id,
            "X-Signature": signature_header(self.producer.secret, raw),
        }
        async with (
            ClientSession() as http,
            http.post(f"http://127.0.0.1:{self.http_port}/api/v1/signals", data=raw, headers=headers) as resp,
        ):
            data = await resp.json(content_type=None)
            assert resp.status == 201, (resp.status, data)
            return dict(data)

    async def expire_now(self, signal_id: str) -> None:
        async with self.db.session() as session:
            signal = await session.get(Signal, signal_id)
            assert signal is not None
            signal.expires_at = datetime.now(UTC) - timedelta(seconds=1)

    async def events_processed(self) -> bool:
        """Whether the relay has handed every domain event to its subscribers."""
        async with self.db.session() as session:
            pending = select(DomainEvent.id).where(DomainEvent.processed_at.is_(None)).limit(1)
            return await session.scalar(pending) is None

    async def account_of(self, uid: int) -> ExecutionAccount | None:
        return await self.services.accounts.account_of(uid)


WorldFactory = Callable[..., Awaitable["World"]]
"""The ``world_factory`` fixture: builds a world with settings overridden (closed after the test)."""


async def make_world(
    sqlite_url: str,
    *,
    emulator_config: EmulatorConfig = LOOSE_EMULATOR,
    config: BotConfig = FAST,
    start: bool = True,
    miniapp: bool = False,
    **overrides: Any,
) -> World:
    emulator = BotAPIEmulator(emulator_config)
    await emulator.start()
    http_socket = bound_socket()  # held from now on: no other process can take the port
    port = int(http_socket.getsockname()[1])
    values: dict[str, Any] = {
        "bot_token": TOKEN,
        "telegram_api_url": emulator.base_url,
        "database_url": sqlite_url,
        "admin_ids": str(ADMIN),
        "ops_chat_id": OPS_CHAT,
        "secret_key": SECRET_KEY,
        "consent_version": CONSENT,
        "instruments": "EURUSD,XAUUSD",
        "webhook_url": f"http://127.0.0.1:{port}/telegram/webhook",
        "webhook_secret": "hook-secret_1",
        "mt5_module": "mt5sim",
        "market_hours": "*=24/7",  # the tests must pass on a weekend too
    }
    if miniapp:
        values["miniapp_url"] = f"http://127.0.0.1:{port}/app/"
        values["miniapp_script"] = "local"
    values.update(overrides)
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    prices = FixedPrices()
    market = PaperMarket(prices, simulated=False, description="fixed test prices")
    services = build_services(settings, paper_market=market, execution_config=FAST_EXECUTION)
    api_ctx = build_api_context(services)
    client = EmulatorClient(emulator.base_url)
    for chat_id, kind, title in ((OPS_CHAT, "supergroup", "Ops"), (CHANNEL, "channel", "Signals")):
        await client.add_chat(chat_id, kind, title)
    world = World(emulator, client, services, settings, prices, config, api_ctx, port)

    app = build_http_app(api_ctx)
    first = world.new_runtime()
    first.webhook_routes(app)  # mounted before the app starts, as the composition root does
    if miniapp:
        world.miniapp = MiniApp(first.ctx)
        world.miniapp.mount(app)
    runner = web.AppRunner(app, access_log_class=AccessLogger)
    await runner.setup()
    await web.SockSite(runner, http_socket).start()
    services.relay.start()
    if start:
        await world.start_bot(first)
    if world.miniapp is not None:
        world.miniapp.attach(services.relay)  # after the bot's fan-out, as tradebot.runtime does

    async def cleanup() -> None:
        if world.runtime is not None:
            await world.runtime.stop()
        await services.relay.stop()
        await services.execution.drain(5)
        await services.close()
        await runner.cleanup()
        await client.close()
        await emulator.stop()
        await services.db.dispose()

    world._cleanup.append(cleanup)
    return world
