"""``tradebot sandbox``: start everything, print where to look, run until Ctrl-C, stop cleanly.

The sandbox's parts live in ``sandbox/`` (the cast, the page, the demo producer, its settings); this
module composes them with the product, so ``sandbox/`` never imports ``tradebot/``.

Start order, each step needing the one before:
1. the data directory (locked; a fresh store; the kept ``SECRET_KEY``);
2. the Bot API emulator on loopback, with the people and the ops channel in it;
3. the simulated terminal: the operator's data login and the accelerated bar clock, and with
   ``--broker mt5`` the people's accounts;
4. the product itself (``tradebot.runtime.Runtime``: migrations, engine, HTTP server with the page
   mounted, the aiogram bot against the emulator, the trading loop, paper prices from the
   terminal, and ``STRATEGIES=fib-rsi:XAUUSD,EURUSD`` posting as ``strategy-fib-rsi``), with a
   generated bot token;
5. the demo producer (created through ``ProducerService``, as ``tradebot producer add`` does);
6. the people join through the emulator (``/start``, the disclaimer's button; with mt5 their
   simulated accounts are linked first, the operator's way);
7. the demo producer starts posting for the instruments Fib-RSI does not trade, the first signal
   within a few seconds; Fib-RSI posts when its setups become final (``sandbox/strategy.py``).
Stopping runs it backwards; the product stops as ``tradebot run`` does on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from loguru import logger

from emulator import BotAPIEmulator, EmulatorClient, EmulatorConfig
from engine.ingest.producers import ProducerService
from engine.observability.logs import register_secret, setup_logging
from engine.services import EngineServices
from engine.settings import Settings, SettingsError
from sandbox import cast
from sandbox.config import DataDir, SandboxError, SandboxOptions, new_bot_token, sandbox_settings
from sandbox.mt5 import SimulatedTerminal
from sandbox.page import PageInfo, SandboxPage
from sandbox.producer import DemoProducer
from sandbox.signals import tradable
from sandbox.strategy import DEMO_PRODUCER, PRODUCER, demo_instruments, strategy_symbols
from tradebot.runtime import Runtime, RuntimeOptions

__all__ = ["DEMO_PRODUCER", "Sandbox", "main", "run"]


class Sandbox:
    def __init__(self, options: SandboxOptions, *, configure_logging: bool = True) -> None:
        self.options = options
        self.configure_logging = configure_logging
        self.data = DataDir(options)
        self.emulator: BotAPIEmulator | None = None
        self.client: EmulatorClient | None = None
        self.settings: Settings | None = None
        self.terminal: SimulatedTerminal | None = None
        self.runtime: Runtime | None = None
        self.page: SandboxPage | None = None
        self.producer: DemoProducer | None = None
        self._locked = False

    def _services(self) -> EngineServices:
        assert self.runtime is not None
        return self.runtime.engine

    async def start(self) -> None:
        opts = self.options
        secret_key = self.data.prepare()
        self._locked = True

        self.emulator = BotAPIEmulator(EmulatorConfig())
        await self.emulator.start(opts.host, opts.emulator_port)
        base_url = self.emulator.base_url
        async with EmulatorClient(base_url) as world:
            await cast.add_to_emulator(world)

        token = new_bot_token()
        bot_id = int(token.split(":", 1)[0])
        self.terminal = terminal = SimulatedTerminal(opts.mt5sim_path.resolve())
        self.settings = settings = sandbox_settings(
            opts,
            secret_key=secret_key,
            bot_token=token,
            telegram_api_url=base_url,
            admin_id=cast.ADMIN.user_id,
            ops_chat_id=cast.OPS_CHANNEL.chat_id,
            data_login=terminal.data_login,
            plans_file=self.data.write_plans() if opts.broker == "mt5" else None,
        )
        if self.configure_logging:
            setup_logging(settings.log_level, settings.log_json)
            # a log line per update would bury the banner; warnings and errors still show
            logging.getLogger("aiogram.event").setLevel(logging.WARNING)
        for secret in (token, secret_key, terminal.data_password):
            register_secret(secret)
        terminal.prepare(opts.bar_seconds, settings.paper_balance)  # a few local SQLite writes
        if opts.broker == "mt5":
            terminal.create_accounts(settings.paper_balance)

        engine_url = f"http://{opts.host}:{opts.port}"
        self.page = SandboxPage(
            PageInfo(
                broker=opts.broker,
                engine_url=engine_url,
                signal_every=opts.signal_every,
                strategy_symbols=list(strategy_symbols(settings.instruments)),
                demo_instruments=self.demo_instruments,
                bar_seconds=opts.bar_seconds,
            ),
            self._services,
        )
        self.page.connect(base_url, bot_id)
        self.runtime = Runtime(settings, RuntimeOptions(on_http_app=self.page.mount))
        await self.runtime.start()
        services = self.runtime.engine
        self.page.info.bot_username = getattr(self.runtime.bot.ctx, "bot_username", "") or ""

        made = await ProducerService(services.db, services.secrets).add(DEMO_PRODUCER)
        register_secret(made.secret)
        self.client = EmulatorClient(base_url, bot_id=bot_id)
        await asyncio.gather(*(cast.onboard(self.client, p, self._before_consent()) for p in cast.PEOPLE))

        if self.demo_instruments:
            self.producer = DemoProducer(
                url=engine_url,
                producer_id=made.id,
                secret=made.secret,
                instruments=self.demo_instruments,
                min_rr=settings.min_rr,
                min_stop_points=settings.min_stop_points,
                interval=opts.signal_every,
                first_after=opts.first_signal_after,
            )
            self.page.info.next_signal_at = lambda: self.producer.next_at if self.producer else None
            self.producer.start()
        login, password, server = terminal.data_login
        self.data.write_env(
            {
                "DATABASE_URL": settings.database_url,
                "SECRET_KEY": secret_key,
                "HTTP_HOST": opts.host,
                "HTTP_PORT": str(opts.port),
                "BROKER": opts.broker,
                "MT5_MODULE": settings.mt5_module,
                "MT5_PATH": settings.mt5_path or "",
                "MT5_LOGIN": str(login),
                "MT5_PASSWORD": password,
                "MT5_SERVER": server,
                "MARKET_HOURS": settings.market_hours,
                "PLANS_FILE": getattr(settings, "plans_file", None) or "",
                "TELEGRAM_API_URL": base_url,
                "TRADEBOT_PRODUCER_ID": made.id,
                "TRADEBOT_PRODUCER_SECRET": made.secret,
            }
        )

    @property
    def demo_instruments(self) -> list[str]:
        """The demo producer's instruments: those the feed prices and Fib-RSI does not trade."""
        assert self.settings is not None
        return tradable(demo_instruments(self.settings.instruments))

    def _before_consent(self) -> Callable[[cast.Person], Awaitable[None]] | None:
        terminal = self.terminal
        if terminal is None or self.options.broker != "mt5":
            return None

        async def link(person: cast.Person) -> None:
            accounts = self._services().accounts
            assert accounts is not None
            await terminal.link(accounts, person)

        return link

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
        if self.runtime is not None:
            await self.runtime.stop()
        if self.page is not None:
            await self.page.close()
        if self.client is not None:
            await self.client.close()
        if self.emulator is not None:
            await self.emulator.stop()
        if self.terminal is not None:
            self.terminal.close()
        if self._locked:
            self.data.release()

    def banner(self) -> str:
        opts = self.options
        assert self.emulator is not None and self.settings is not None and self.page is not None
        low, high = opts.signal_every
        every = f"{low:g}" if low == high else f"{low:g}-{high:g}"
        subscribers = ", ".join(
            p.name + (f" ({p.language})" if p.language != "en" else "") for p in cast.SUBSCRIBERS
        )
        broker = "paper accounts" if opts.broker == "paper" else "simulated MT5 terminal (MT5_MODULE=mt5sim)"
        lines = [
            "",
            f"tradebot sandbox is running: {broker}, market open 24/7, no internet needed.",
            "",
            f"  Open the page:  {opts.page_url}",
            f"  Mini App:       http://{opts.host}:{opts.port}/app/ (open it as a person: 📱 App on the page)",
            f"  Webhook:        http://{opts.host}:{opts.port}/api/v1/signals",
            *self._signal_lines(every),
            f"  Bot API:        {self.emulator.base_url} (Telegram emulator; bot @{self.page.info.bot_username})",
            f"  Subscribers:    {subscribers}",
            f"  Admin:          {cast.ADMIN.name} (/status, /positions, /pause, /resume, /closeall)",
            f"  Ops channel:    {cast.OPS_CHANNEL.title}",
            f"  Data:           {opts.data_dir}/ (sandbox.db; sandbox.env has the settings for the CLI)",
            "",
            "Press Ctrl-C to stop.",
            "",
        ]
        return "\n".join(lines)

    def _signal_lines(self, every: str) -> list[str]:
        """Who posts signals: Fib-RSI on the terminal's bars, the demo producer on the rest."""
        assert self.settings is not None
        lines = []
        symbols = strategy_symbols(self.settings.instruments)
        if symbols:
            lines.append(
                f"  Fib-RSI:        {', '.join(symbols)}, on the simulated terminal's H1 bars, one every"
                f" {self.options.bar_seconds:g} s (producer {PRODUCER})"
            )
        if self.demo_instruments:
            lines.append(
                f"  Demo signals:   {', '.join(self.demo_instruments)}, random, every {every} s"
                f" (producer {DEMO_PRODUCER})"
            )
        return lines


async def run(options: SandboxOptions) -> None:
    """Start the sandbox, print the banner, run until SIGINT or SIGTERM, then stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sandbox = Sandbox(options)
    try:
        await sandbox.start()
        print(sandbox.banner(), flush=True)
        await stop.wait()
        print("Stopping the sandbox…", flush=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await sandbox.stop()


def main(options: SandboxOptions) -> int:
    """What ``tradebot sandbox`` runs; returns the exit status."""
    try:
        asyncio.run(run(options))
    except (SandboxError, SettingsError) as exc:
        print(f"tradebot: sandbox: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        hint = " (choose free ports with --port / --emulator-port)" if exc.errno == errno.EADDRINUSE else ""
        print(f"tradebot: sandbox: {exc}{hint}", file=sys.stderr)
        return 1
    with contextlib.suppress(Exception):
        logger.complete()
    print("Sandbox stopped.", flush=True)
    return 0
