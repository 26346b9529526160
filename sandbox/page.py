"""The sandbox page, served on the engine's HTTP server under ``/sandbox``.

The page (``static/``: plain HTML, CSS and JavaScript) talks only to these routes, which act
through the emulator's control API as the sandbox's users would:

| route | what |
|---|---|
| ``GET /`` | a redirect to ``/sandbox`` |
| ``GET /sandbox`` | the page |
| ``GET /sandbox/api/world`` | the bot, the people (roles, languages), the chats, the broker, where things run, who posts signals |
| ``GET /sandbox/api/chats/{id}/messages`` | a chat as the emulator holds it (users' messages too, edits applied) |
| ``POST /sandbox/api/send`` ``{"user_id", "text"}`` | the user writes in their chat with the bot |
| ``POST /sandbox/api/tap`` ``{"user_id", "chat_id", "message_id", "data"}`` | a real tap; answers with the bot's callback answer |
| ``GET /sandbox/api/events`` | the emulator's Server-Sent Events, passed through |
| ``GET /sandbox/api/files/{file_id}`` | a photo or document the bot sent |
| ``GET /sandbox/api/portfolio`` | accounts, positions, orders, equity, pause state, latest signals and their producers |
| ``POST /sandbox/api/webapp`` ``{"user_id", "message_id"?, "theme"?}`` | the user opens the bot's Mini App (a ``web_app`` button under that message, else the menu button): the launch URL with Telegram's signed initData |
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from emulator.control import EmulatorClient, EmulatorControlError
from engine.services import EngineServices
from sandbox.cast import OPS_CHANNEL, PEOPLE, by_id
from sandbox.portfolio import portfolio
from sandbox.strategy import DEMO_PRODUCER, PRODUCER

STATIC = Path(__file__).parent / "static"
MAX_TEXT = 4096
TAP_ANSWER_WAIT = 8.0


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object")
    return body


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@dataclass
class PageInfo:
    """What the page shows about the running sandbox (filled in as the sandbox starts)."""

    broker: str
    engine_url: str
    emulator_url: str = ""
    bot_id: int = 0
    bot_username: str = ""
    signal_every: tuple[float, float] = (20.0, 60.0)
    next_signal_at: Callable[[], float | None] = lambda: None
    strategy_symbols: list[str] = field(default_factory=list)  # Fib-RSI's, on the terminal's bars
    demo_instruments: list[str] = field(default_factory=list)  # the demo producer's
    bar_seconds: float = 0.0  # real seconds per simulated H1 bar


class SandboxPage:
    def __init__(self, info: PageInfo, services: Callable[[], EngineServices]) -> None:
        self.info = info
        self._services = services
        self._client: EmulatorClient | None = None
        self._http: aiohttp.ClientSession | None = None
        self._closing = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    def mount(self, app: web.Application) -> None:
        """Add the page's routes to the engine's app (before it starts)."""
        app.router.add_get("/", self.to_page)  # the address people type leads to the page
        app.router.add_get("/sandbox", self.index)
        app.router.add_get("/sandbox/", self.index)
        app.router.add_static("/sandbox/static", STATIC)
        app.router.add_get("/sandbox/api/world", self.world)
        app.router.add_get("/sandbox/api/chats/{chat_id}/messages", self.messages)
        app.router.add_post("/sandbox/api/send", self.send)
        app.router.add_post("/sandbox/api/tap", self.tap)
        app.router.add_get("/sandbox/api/events", self.events)
        app.router.add_get("/sandbox/api/files/{file_id}", self.file)
        app.router.add_get("/sandbox/api/portfolio", self.portfolio)
        app.router.add_post("/sandbox/api/webapp", self.webapp)
        app.on_shutdown.append(self._on_shutdown)

    def connect(self, emulator_url: str, bot_id: int) -> None:
        self.info.emulator_url = emulator_url
        self.info.bot_id = bot_id
        self._client = EmulatorClient(emulator_url, bot_id=bot_id)
        self._http = aiohttp.ClientSession()

    async def _on_shutdown(self, app: web.Application) -> None:
        self._closing.set()  # ends the event streams, so the server stops without waiting for them

    async def close(self) -> None:
        self._closing.set()
        if self._client is not None:
            await self._client.close()
        if self._http is not None:
            await self._http.close()

    @property
    def client(self) -> EmulatorClient:
        if self._client is None:
            raise web.HTTPServiceUnavailable(text="the sandbox is still starting")
        return self._client

    # ------------------------------------------------------------------ routes

    async def to_page(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/sandbox")

    async def index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def world(self, request: web.Request) -> web.Response:
        chats = await self.client.chats()
        people = [
            {
                "user_id": p.user_id,
                "name": p.name,
                "username": p.username,
                "language": p.language,
                "role": p.role,
            }
            for p in PEOPLE
        ]
        info = self.info
        return web.json_response(
            {
                "bot": {"id": info.bot_id, "username": info.bot_username},
                "people": people,
                "ops_chat_id": OPS_CHANNEL.chat_id,
                "chats": chats,
                "broker": info.broker,
                "market": "open 24/7 (sandbox: MARKET_HOURS=*=24/7, simulated terminal ignores hours)",
                "engine_url": info.engine_url,
                "emulator_url": info.emulator_url,
                "signal_every": list(info.signal_every),
                "next_signal_at": info.next_signal_at(),
                "producers": {
                    "fib_rsi": {
                        "producer": PRODUCER,
                        "symbols": info.strategy_symbols,
                        "bar_seconds": info.bar_seconds,
                    },
                    "demo": {"producer": DEMO_PRODUCER, "instruments": info.demo_instruments},
                },
                "now": time.time(),
            }
        )

    async def messages(self, request: web.Request) -> web.Response:
        chat_id = _int(request.match_info["chat_id"])
        if chat_id is None:
            return _error(400, "chat_id must be an integer")
        try:
            found = await self.client.messages(chat_id, include_users=True)
        except EmulatorControlError as exc:
            return _error(exc.status, exc.message)
        return web.json_response(found)

    async def send(self, request: web.Request) -> web.Response:
        body = await _body(request)
        person = by_id(_int(body.get("user_id")) or 0)
        text = body.get("text")
        if person is None:
            return _error(400, "user_id must be one of the sandbox's people")
        if not isinstance(text, str) or not text.strip():
            return _error(400, "text is required")
        if len(text) > MAX_TEXT:
            return _error(400, f"text is over {MAX_TEXT} characters")
        try:
            sent = await self.client.send(person.user_id, text)
        except EmulatorControlError as exc:
            return _error(exc.status, exc.message)
        return web.json_response(sent)

    async def tap(self, request: web.Request) -> web.Response:
        body = await _body(request)
        person = by_id(_int(body.get("user_id")) or 0)
        chat_id, message_id, data = _int(body.get("chat_id")), _int(body.get("message_id")), body.get("data")
        if person is None:
            return _error(400, "user_id must be one of the sandbox's people")
        if chat_id is None or message_id is None or not isinstance(data, str):
            return _error(400, "chat_id, message_id and data are required")
        try:
            query_id = await self.client.tap(person.user_id, chat_id, message_id, data)
            answer = await self.client.callback_answer(query_id, wait=TAP_ANSWER_WAIT)
        except EmulatorControlError as exc:
            return _error(exc.status, exc.message)
        return web.json_response({"callback_query_id": query_id, "answer": answer})

    async def webapp(self, request: web.Request) -> web.Response:
        body = await _body(request)
        person = by_id(_int(body.get("user_id")) or 0)
        if person is None:
            return _error(400, "user_id must be one of the sandbox's people")
        message_id = body.get("message_id")
        if message_id is not None and _int(message_id) is None:
            return _error(400, "message_id must be an integer")
        theme = body.get("theme", "light")
        if theme not in ("light", "dark"):
            return _error(400, "theme must be light or dark")
        try:
            opened = await self.client.open_web_app(
                person.user_id, message_id=_int(message_id) if message_id is not None else None, theme=theme
            )
        except EmulatorControlError as exc:
            return _error(exc.status, exc.message)
        return web.json_response({"url": opened["url"], "source": opened["source"], "theme": theme})

    async def file(self, request: web.Request) -> web.StreamResponse:
        assert self._http is not None
        url = f"{self.info.emulator_url}/_emulator/files/{request.match_info['file_id']}"
        async with self._http.get(url) as upstream:
            data = await upstream.read()
            content_type = upstream.content_type
            status = upstream.status
        return web.Response(body=data, status=status, content_type=content_type)

    async def portfolio(self, request: web.Request) -> web.Response:
        return web.json_response(await portfolio(self._services()))

    async def events(self, request: web.Request) -> web.StreamResponse:
        """The emulator's event stream, passed through until the page or the sandbox goes away."""
        assert self._http is not None
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            async with self._http.get(self.info.emulator_url + "/_emulator/events", timeout=timeout) as up:
                while True:
                    read = asyncio.ensure_future(up.content.readany())
                    done, _ = await asyncio.wait({read, closing}, return_when=asyncio.FIRST_COMPLETED)
                    if read not in done:
                        read.cancel()
                        with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                            await read
                        break
                    chunk = read.result()
                    if not chunk:
                        break
                    await response.write(chunk)
        except (aiohttp.ClientError, ConnectionResetError, RuntimeError):
            pass  # the emulator stopped or the page went away
        finally:
            closing.cancel()
        return response
