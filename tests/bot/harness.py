"""The bot's test world: the Bot API emulator on loopback, the engine (SQLite, paper or simulated
MT5 accounts), the producer HTTP API with the Telegram webhook mounted, and the real aiogram bot."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import ClientSession
from sqlalchemy import select

from bot.app import BotRuntime, bot_context, build_bot, build_storage
from bot.callbacks import ConsentCb, version_digest
from bot.context import BotConfig
from bot.ratelimit import RateLimits
from bot.sender import OutboxConfig
from emulator import BotAPIEmulator, EmulatorClient, EmulatorConfig
from engine.api import ApiContext, build_http_app, start_http_server
from engine.brokers.base import FillingMode, SymbolSpec, Tick
from engine.brokers.pricefeed import PaperMarket
from engine.execution.service import ExecutionConfig
from engine.ingest.producers import NewProducer
from engine.ingest.signing import signature_header
from engine.services import EngineServices
from engine.settings import Settings
from engine.store.events import SIGNAL_ACCEPTED, emit
from engine.store.models import ExecutionAccount, Producer, Signal
from tradebot.app import build_api_context, build_services

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
BOT_USERNAME = "bot123456789_bot"
ADMIN = 900
OPS_CHAT = -1001000000500
CHANNEL = -1001000000600
SECRET_KEY = "s" * 40
CONSENT = "2026-11"

EURUSD = SymbolSpec(
    name="EURUSD",
    digits=5,
    point=Decimal("0.00001"),
    tick_size=Decimal("0.00001"),
    tick_value=Decimal("1"),
    contract_size=Decimal("100000"),
    volume_min=Decimal("0.01"),
    volume_max=Decimal("100"),
    volume_step=Decimal("0.01"),
    stops_level=10,
    filling_modes=frozenset({FillingMode.FOK, FillingMode.IOC}),
)

LOOSE_EMULATOR = EmulatorConfig(
    per_chat_burst=1000,
    per_chat_per_second=1000.0,
    global_per_second=1000.0,
    group_per_minute=1000,
    set_webhook_min_interval=0.0,
    webhook_retry_initial=0.05,
    webhook_retry_max=0.2,
    webhook_timeout=5.0,
)

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
    expiry_sweep_seconds=0.1,
    polling_timeout=1,
    stop_timeout_seconds=5.0,
    drain_seconds=0.5,
)
FAST_EXECUTION = ExecutionConfig(max_attempts=3, retry_initial_seconds=0.01, retry_max_seconds=0.05)


@dataclass
class FixedPrices:
    """A market that moves only when a test says so."""

    quotes: dict[str, tuple[Decimal, Decimal]] = field(
        default_factory=lambda: {"EURUSD": (Decimal("1.10000"), Decimal("1.10010"))}
    )

    def spec(self, symbol: str) -> SymbolSpec | None:
        return EURUSD if symbol.upper() == "EURUSD" else None

    def tick(self, symbol: str) -> Tick | None:
        q = self.quotes.get(symbol.upper())
        return None if q is None else Tick(symbol.upper(), q[0], q[1], datetime.now(UTC))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def eventually(
    probe: Callable[[], Awaitable[Any]], timeout: float = 5.0, interval: float = 0.02
) -> Any:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value {value!r})")
        await asyncio.sleep(interval)


def buttons(message: dict[str, Any]) -> list[str]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
    return [b["callback_data"] for row in rows for b in row if "callback_data" in b]


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
    ) -> str:
        """Store an accepted signal and announce it, as the ingest service does."""
        producer_id = await self.producer_row()
        now = datetime.now(UTC)
        async with self.db.session() as session:
            signal = Signal(
                producer_id=producer_id,
                idempotency_key=f"k-{now.timestamp()}-{id(now)}",
                body_hash="h",
                instrument=instrument,
                side=side,
                order_type="market",
                entry=Decimal(entry) if entry else None,
                sl=Decimal(sl),
                tp=Decimal(tp),
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

    async def account_of(self, uid: int) -> ExecutionAccount | None:
        return await self.services.accounts.account_of(uid)


async def make_world(
    sqlite_url: str,
    *,
    emulator_config: EmulatorConfig = LOOSE_EMULATOR,
    config: BotConfig = FAST,
    start: bool = True,
    **overrides: Any,
) -> World:
    emulator = BotAPIEmulator(emulator_config)
    await emulator.start()
    port = free_port()
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
    runner = await start_http_server(app, "127.0.0.1", port)
    services.relay.start()
    if start:
        await world.start_bot(first)

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
