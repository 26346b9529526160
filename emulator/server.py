"""The HTTP face: ``/bot<token>/<method>`` as Telegram's Bot API, ``/file/bot<token>/<path>`` downloads,
and the ``/_emulator`` control API. Run it in-process (``BotAPIEmulator.start``) or embed ``make_app``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from typing import Any

from aiohttp import web

from emulator.config import EmulatorConfig
from emulator.control_api import ControlApi
from emulator.core import EmulatorCore, Exchange, Listener
from emulator.errors import ApiError, not_found
from emulator.methods import HANDLERS, Call, Result
from emulator.params import Params
from emulator.spec import CANONICAL, check_required
from emulator.state import BotState
from emulator.webhook import WebhookManager


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@web.middleware
async def _cors(request: web.Request, handler: Any) -> web.StreamResponse:
    """The sandbox page (another loopback port) reads the control API and files from the browser."""
    open_path = request.path.startswith(("/_emulator", "/file/"))
    if open_path and request.method == "OPTIONS":
        response: web.StreamResponse = web.Response(status=204)
    else:
        response = await handler(request)
    if open_path and not response.prepared:
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
    return response


class BotAPIEmulator:
    """A Telegram Bot API emulator. ``await start()`` on a free loopback port, ``await stop()`` after."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.core = EmulatorCore(self.config)
        self.webhooks = WebhookManager(self.core, self.execute)
        self.core.webhooks = self.webhooks
        self._runner: web.AppRunner | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return self.core.base_url

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with every answer given and every update delivered by webhook."""
        self.core.listeners.append(listener)

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_request_bytes, middlewares=[_cors])
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        app.router.add_routes(ControlApi(self.core).routes())
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_startup(self, app: web.Application) -> None:
        await self.webhooks.start()

    async def _on_shutdown(self, app: web.Application) -> None:
        for bot in self.core.world.bots.values():
            bot.updates.close()
        self.core.events.close()
        await self.webhooks.close()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound = runner.addresses[0]
        self.core.base_url = f"http://{host}:{bound[1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> BotAPIEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the Bot API -----------------------------------------------------------------------------
    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        if not self.core.base_url:
            self.core.base_url = str(request.url.origin())
        raw_method = request.match_info["method"]
        name = CANONICAL.get(raw_method.lower())
        bot: BotState | None = None
        headers: dict[str, str] = {}
        try:
            bot = self.core.world.bot_for_token(request.match_info["token"])
            if name is None:
                raise not_found("method not found")
            outcome = await self._dispatch(bot, name, request)
            body: dict[str, Any] = {"ok": True}
            if isinstance(outcome, Result):
                body["result"] = outcome.value
                if outcome.description:
                    body["description"] = outcome.description
            else:
                body["result"] = outcome
            status = 200
        except ApiError as exc:
            if bot is not None:
                self.core.stats.error(bot.id, exc)
            body, status, headers = exc.body(), exc.code, exc.headers()
        self.core.notify(Exchange("api", name or raw_method, status, body))
        return web.json_response(body, status=status, headers=headers, dumps=_dumps)

    async def _dispatch(self, bot: BotState, name: str, request: web.Request) -> Any:
        self.core.stats.call(bot.id, name)
        fault = self.core.faults.take(name, bot.id)
        if fault is not None:
            if fault.delay_ms:
                await asyncio.sleep(fault.delay_ms / 1000)
            error = fault.error()
            if error is not None:
                raise error
        params = await Params.from_request(request)
        check_required(name, params.has)
        return await HANDLERS[name](Call(self.core, bot, params, name))

    async def execute(self, bot: BotState, name: str, params: Params) -> Any:
        """Run a method for ``bot`` without HTTP (a method named in a webhook reply)."""
        self.core.stats.call(bot.id, name)
        try:
            check_required(name, params.has)
            return await HANDLERS[name](Call(self.core, bot, params, name))
        except ApiError as exc:
            self.core.stats.error(bot.id, exc)
            raise

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        try:
            bot = self.core.world.bot_for_token(request.match_info["token"])
        except ApiError:
            bot = None
        stored = bot.files.by_path(request.match_info["path"]) if bot is not None else None
        if stored is None:
            return web.json_response(not_found().body(), status=404, dumps=_dumps)
        return web.Response(body=stored.data, content_type=stored.mime_type)

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(not_found().body(), status=404, dumps=_dumps)


def run(host: str = "127.0.0.1", port: int = 8081, config: EmulatorConfig | None = None) -> None:
    """Serve the emulator until Ctrl-C or SIGTERM (what ``tradebot emulator`` calls)."""

    async def main() -> None:
        emulator = BotAPIEmulator(config)
        await emulator.start(host, port)
        print(f"Telegram Bot API emulator listening on {emulator.base_url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # Windows event loops have no add_signal_handler (NotImplementedError): there Ctrl-C
            # arrives as KeyboardInterrupt, which the caller below turns into a clean stop.
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await emulator.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
