"""The control API (docs/emulator.md): ``/_emulator/...`` routes that act as users and inspect chats."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from emulator.core import EmulatorCore
from emulator.errors import ControlError
from emulator.events import is_close, sse_frame
from emulator.faults import Fault
from emulator.payments import payments_of, renew
from emulator.simulate import chat_of, open_web_app, pay, set_blocked, tap, user_of, user_send
from emulator.spec import CANONICAL
from emulator.state import BotState, Chat, User

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CHAT_TYPES = ("channel", "supergroup", "group")


def ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda v: json.dumps(v, ensure_ascii=False))


async def body_of(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise ControlError(400, "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ControlError(400, "the body must be a JSON object")
    return body


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ControlError(400, f"{name} must be an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ControlError(400, f"{name} must be an integer") from None


def _wait_seconds(request: web.Request) -> float:
    try:
        return min(max(float(request.query.get("wait", "0")), 0.0), 60.0)
    except ValueError:
        raise ControlError(400, "wait must be a number of seconds") from None


class ControlApi:
    def __init__(self, core: EmulatorCore) -> None:
        self.core = core
        self.world = core.world

    def routes(self) -> list[web.RouteDef]:
        prefix = "/_emulator"
        table = [
            ("POST", "/users", self.add_user),
            ("GET", "/users", self.list_users),
            ("POST", "/chats", self.add_chat),
            ("GET", "/chats", self.list_chats),
            ("GET", "/chats/{chat_id}/messages", self.messages),
            ("POST", "/send", self.send),
            ("POST", "/tap", self.tap),
            ("GET", "/callback_answers/{query_id}", self.callback_answer),
            ("POST", "/block", self.block),
            ("POST", "/unblock", self.unblock),
            ("POST", "/pay", self.pay),
            ("POST", "/web_app", self.web_app),
            ("GET", "/menu_button/{chat_id}", self.menu_button),
            ("POST", "/renew", self.renew),
            ("GET", "/invoice/{slug}", self.invoice),
            ("GET", "/files/{file_id}", self.file),
            ("POST", "/faults", self.add_fault),
            ("GET", "/faults", self.list_faults),
            ("DELETE", "/faults", self.clear_faults),
            ("GET", "/stats", self.stats),
            ("DELETE", "/stats", self.reset_stats),
            ("GET", "/events", self.events),
        ]
        return [web.route(verb, prefix + path, self._guard(handler)) for verb, path, handler in table]

    @staticmethod
    def _guard(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except ControlError as exc:
                return ok({"error": exc.message}, status=exc.status)

        return guarded

    async def _bot(self, request: web.Request, body: dict[str, Any] | None = None) -> BotState:
        wanted = (body or {}).get("bot_id", request.query.get("bot_id"))
        return self.world.resolve_bot(wanted)

    # -- users and chats -------------------------------------------------------------------------
    async def add_user(self, request: web.Request) -> web.StreamResponse:
        body = await body_of(request)
        user_id = _int(body.get("id"), "id")
        if user_id <= 0:
            raise ControlError(400, "a user id is a positive integer")
        first_name = body.get("first_name")
        if not isinstance(first_name, str) or not first_name:
            raise ControlError(400, "first_name is required")
        user = User(
            id=user_id,
            first_name=first_name,
            last_name=body.get("last_name") or None,
            username=(body.get("username") or "").lstrip("@") or None,
            language_code=body.get("language_code") or None,
            is_premium=bool(body.get("is_premium", False)),
            started_default=bool(body.get("started", True)),
        )
        chat = self.world.add_user(user)
        self.core.events.publish("chat_added", chat_entry(chat))
        return ok({"user": user.json(), "chat": chat.json()}, status=201)

    async def list_users(self, request: web.Request) -> web.StreamResponse:
        return ok([user.json() for user in self.world.users.values()])

    async def add_chat(self, request: web.Request) -> web.StreamResponse:
        body = await body_of(request)
        chat_id = _int(body.get("id"), "id")
        kind = body.get("type")
        if kind not in CHAT_TYPES:
            raise ControlError(400, f"type must be one of {', '.join(CHAT_TYPES)}")
        if chat_id >= 0:
            raise ControlError(400, "group, supergroup and channel ids are negative (e.g. -1001234567890)")
        title = body.get("title")
        if not isinstance(title, str) or not title:
            raise ControlError(400, "title is required")
        chat = self.world.add_chat(Chat(chat_id, kind, title=title, username=body.get("username") or None))
        self.core.events.publish("chat_added", chat_entry(chat))
        return ok({"chat": chat.json()}, status=201)

    async def list_chats(self, request: web.Request) -> web.StreamResponse:
        return ok([chat_entry(chat) for chat in self.world.chats.values()])

    async def messages(self, request: web.Request) -> web.StreamResponse:
        bot = await self._bot(request)
        chat = chat_of(self.core, request.match_info["chat_id"])
        include_users = request.query.get("all", "").lower() in ("1", "true", "yes")
        after = _int(request.query.get("after", "0"), "after")
        wait = _wait_seconds(request)

        def current() -> list[dict[str, Any]]:
            log = bot.chats.get(chat.id)
            if log is None:
                return []
            return [
                m.view()
                for m in log.messages.values()
                if not m.deleted and (m.by_bot or include_users) and m.message_id > after
            ]

        found = current()
        if not found and wait > 0:
            found = await self._wait_until(current, wait)
        return ok(found)

    async def _wait_until(self, probe: Callable[[], Any], wait: float) -> Any:
        queue = self.core.events.subscribe()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        try:
            while True:
                found = probe()
                remaining = deadline - loop.time()
                if found or remaining <= 0:
                    return found
                try:
                    item = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    return probe()
                if is_close(item):
                    return probe()
        finally:
            self.core.events.unsubscribe(queue)

    # -- acting as users -------------------------------------------------------------------------
    async def send(self, request: web.Request) -> web.StreamResponse:
        body = await body_of(request)
        bot = await self._bot(request, body)
        user = user_of(self.core, body.get("user_id"))
        chat = chat_of(self.core, body.get("chat_id", user.id))
        text = body.get("text")
        if not isinstance(text, str):
            raise ControlError(400, "text is required")
        return ok(user_send(self.core, bot, user, chat, text))

    async def tap(self, request: web.Request) -> web.StreamResponse:
        body = await body_of(request)
        bot = await self._bot(request, body)
        user = user_of(self.core, body.get("user_id"))
        chat = chat_of(self.core, body.get("chat_id", user.id))
        return ok(tap(self.core, bot, user, chat, body.get("message_id"), body.get("data")))

    async def callback_answer(self, request: web.Request) -> web.StreamResponse:
        query_id = request.match_info["query_id"]
        wait = _wait_seconds(request)

        def current() -> dict[str, Any] | None:
            for bot in self.world.bots.values():
                query = bot.callback_queries.get(query_id)
                if query is not None and query.answer is not None:
                    return {"callback_query_id": query_id, **query.answer}
            return None

        answer = current()
        if answer is None and wait > 0:
            answer = await self._wait_until(current, wait)
        if answer is None:
            known = any(query_id in bot.callback_queries for bot in self.world.bots.values())
            raise ControlError(404, "not answered yet" if known else "unknown callback_query_id")
        return ok(answer)

    async def block(self, request: web.Request) -> web.StreamResponse:
        return await self._set_blocked(request, True)

    async def unblock(self, request: web.Request) -> web.StreamResponse:
        return await self._set_blocked(request, False)

    async def _set_blocked(self, request: web.Request, blocked: bool) -> web.StreamResponse:
        body = await body_of(request)
        bot = await self._bot(request, body)
        user = user_of(self.core, body.get("user_id"))
        set_blocked(self.core, bot, user, blocked)
        return ok({"user_id": user.id, "blocked": blocked})

    async def pay(self, request: web.Request) -> web.StreamResponse:
        body = await body_of(request)
        bot = await self._bot(request, body)
        user = user_of(self.core, body.get("user_id"))
        return ok(await pay(self.core, bot, user, body))

    async def web_app(self, request: web.Request) -> web.StreamResponse:
        body = await body_of(request)
        bot = await self._bot(request, body)
        user = user_of(self.core, body.get("user_id"))
        return ok(open_web_app(self.core, bot, user, body))

    async def menu_button(self, request: web.Request) -> web.StreamResponse:
        bot = await self._bot(request)
        chat = chat_of(self.core, request.match_info["chat_id"])
        return ok(bot.menu_button(chat.id))

    async def renew(self, request: web.Request) -> web.StreamResponse:
        body = await body_of(request)
        bot = await self._bot(request, body)
        user = user_of(self.core, body.get("user_id"))
        charge = renew(self.core, bot, user.id, str(body.get("telegram_payment_charge_id", "")))
        return ok({"telegram_payment_charge_id": charge.id, "subscription_expiration_date": charge.expires})

    async def invoice(self, request: web.Request) -> web.StreamResponse:
        slug = request.match_info["slug"].lstrip("$")
        for bot in self.world.bots.values():
            invoice = payments_of(bot).links.get(slug)
            if invoice is not None:
                return ok(
                    {
                        "bot_id": bot.id,
                        "title": invoice.title,
                        "description": invoice.description,
                        "currency": invoice.currency,
                        "total_amount": invoice.amount,
                        "subscription_period": invoice.subscription_period,
                    }
                )
        raise ControlError(404, "unknown invoice link")

    async def file(self, request: web.Request) -> web.StreamResponse:
        """A file's bytes by file_id, without the bot token (for the sandbox page's <img> tags)."""
        for bot in self.world.bots.values():
            stored = bot.files.get(request.match_info["file_id"])
            if stored is not None:
                return web.Response(body=stored.data, content_type=stored.mime_type)
        raise ControlError(404, "unknown file_id")

    # -- faults and stats ------------------------------------------------------------------------
    async def add_fault(self, request: web.Request) -> web.StreamResponse:
        body = await body_of(request)
        raw_method = str(body.get("method", ""))
        name = "*" if raw_method == "*" else CANONICAL.get(raw_method.lower())
        if name is None:
            raise ControlError(400, f"unknown method {raw_method!r}")
        status = body.get("status")
        delay_ms = _int(body.get("delay_ms", 0), "delay_ms")
        if status is None and not delay_ms:
            raise ControlError(400, "give a status, a delay_ms, or both")
        fault = Fault(
            method=name,
            status=None if status is None else _int(status, "status"),
            count=_int(body.get("count", 1), "count"),
            retry_after=None if body.get("retry_after") is None else _int(body["retry_after"], "retry_after"),
            delay_ms=delay_ms,
            description=body.get("description"),
            bot_id=None if body.get("bot_id") is None else _int(body["bot_id"], "bot_id"),
        )
        if fault.count < 1:
            raise ControlError(400, "count must be at least 1")
        self.core.faults.add(fault)
        return ok({"fault": fault.json()}, status=201)

    async def list_faults(self, request: web.Request) -> web.StreamResponse:
        return ok([fault.json() for fault in self.core.faults.active])

    async def clear_faults(self, request: web.Request) -> web.StreamResponse:
        self.core.faults.clear()
        return ok({"cleared": True})

    async def stats(self, request: web.Request) -> web.StreamResponse:
        out = self.core.stats.json()
        out["pending_updates"] = {str(bot.id): len(bot.updates) for bot in self.world.bots.values()}
        return ok(out)

    async def reset_stats(self, request: web.Request) -> web.StreamResponse:
        self.core.stats.reset()
        return ok({"reset": True})

    async def events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        queue = self.core.events.subscribe()
        counter = 0
        try:
            await response.write(b": connected\n\n")
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), self.core.config.sse_heartbeat)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if is_close(item):
                    break
                counter += 1
                await response.write(sse_frame(item, counter))
        except (ConnectionResetError, RuntimeError):
            pass  # the page went away
        finally:
            self.core.events.unsubscribe(queue)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await response.write_eof()
        return response


def chat_entry(chat: Chat) -> dict[str, Any]:
    entry = chat.json()
    if chat.type == "private":
        entry["title"] = " ".join(part for part in (chat.first_name, chat.last_name) if part)
    return entry
