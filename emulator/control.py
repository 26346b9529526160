"""``EmulatorClient``: a small async client for the emulator's control API (tests, benchmarks, sandbox)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp


class EmulatorControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class EmulatorClient:
    """Acts as Telegram's users against a running emulator at ``base_url``."""

    def __init__(self, base_url: str, *, bot_id: int | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.bot_id = bot_id
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> EmulatorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
        return self._session

    def _with_bot(self, body: dict[str, Any], bot_id: int | None) -> dict[str, Any]:
        chosen = bot_id if bot_id is not None else self.bot_id
        if chosen is not None:
            body["bot_id"] = chosen
        return {k: v for k, v in body.items() if v is not None}

    async def _call(self, verb: str, path: str, body: dict[str, Any] | None = None, **query: Any) -> Any:
        params = {k: str(v) for k, v in query.items() if v is not None}
        async with self._client().request(verb, self.base_url + path, json=body, params=params) as resp:
            data = await resp.json(content_type=None)
            if resp.status >= 400:
                message = data.get("error", str(data)) if isinstance(data, dict) else str(data)
                raise EmulatorControlError(resp.status, message)
            return data

    # -- world -----------------------------------------------------------------------------------
    async def add_user(
        self,
        user_id: int,
        first_name: str,
        username: str | None = None,
        language_code: str | None = None,
        *,
        last_name: str | None = None,
        started: bool = True,
    ) -> dict[str, Any]:
        body = {
            "id": user_id,
            "first_name": first_name,
            "last_name": last_name,
            "username": username,
            "language_code": language_code,
            "started": started,
        }
        return dict(
            await self._call("POST", "/_emulator/users", {k: v for k, v in body.items() if v is not None})
        )

    async def add_chat(
        self, chat_id: int, type: str, title: str, username: str | None = None
    ) -> dict[str, Any]:
        body = {"id": chat_id, "type": type, "title": title, "username": username}
        return dict(
            await self._call("POST", "/_emulator/chats", {k: v for k, v in body.items() if v is not None})
        )

    async def chats(self) -> list[dict[str, Any]]:
        return list(await self._call("GET", "/_emulator/chats"))

    # -- acting as users -------------------------------------------------------------------------
    async def send(
        self, user_id: int, text: str, chat_id: int | None = None, *, bot_id: int | None = None
    ) -> dict[str, Any]:
        """The user writes ``text``; returns ``{"message": Message, "update_id": int | None}``."""
        body = self._with_bot({"user_id": user_id, "chat_id": chat_id, "text": text}, bot_id)
        return dict(await self._call("POST", "/_emulator/send", body))

    async def tap(
        self, user_id: int, chat_id: int, message_id: int, data: str, *, bot_id: int | None = None
    ) -> str:
        """The user taps the button with callback ``data``; returns the callback_query_id."""
        body = self._with_bot(
            {"user_id": user_id, "chat_id": chat_id, "message_id": message_id, "data": data}, bot_id
        )
        result = await self._call("POST", "/_emulator/tap", body)
        return str(result["callback_query_id"])

    async def block(self, user_id: int, *, bot_id: int | None = None) -> None:
        await self._call("POST", "/_emulator/block", self._with_bot({"user_id": user_id}, bot_id))

    async def unblock(self, user_id: int, *, bot_id: int | None = None) -> None:
        await self._call("POST", "/_emulator/unblock", self._with_bot({"user_id": user_id}, bot_id))

    async def pay(
        self,
        user_id: int,
        *,
        chat_id: int | None = None,
        message_id: int | None = None,
        link: str | None = None,
        wait: bool = True,
        bot_id: int | None = None,
    ) -> dict[str, Any]:
        """Pay an invoice message or link; returns the outcome (status paid | declined | expired | pending)."""
        body = self._with_bot(
            {"user_id": user_id, "chat_id": chat_id, "message_id": message_id, "link": link, "wait": wait},
            bot_id,
        )
        return dict(await self._call("POST", "/_emulator/pay", body))

    async def open_web_app(
        self,
        user_id: int,
        *,
        message_id: int | None = None,
        button: str | None = None,
        theme: str | None = None,
        auth_date: int | None = None,
        bot_id: int | None = None,
    ) -> dict[str, Any]:
        """The user opens the bot's Mini App (a ``web_app`` button under ``message_id``, else the
        menu button); returns the launch ``url`` (initData in its fragment), ``init_data`` and more."""
        body = self._with_bot(
            {
                "user_id": user_id,
                "message_id": message_id,
                "button": button,
                "theme": theme,
                "auth_date": auth_date,
            },
            bot_id,
        )
        return dict(await self._call("POST", "/_emulator/web_app", body))

    async def menu_button(self, chat_id: int, *, bot_id: int | None = None) -> dict[str, Any]:
        """The menu button the user sees in their private chat with the bot."""
        chosen = bot_id if bot_id is not None else self.bot_id
        return dict(await self._call("GET", f"/_emulator/menu_button/{chat_id}", bot_id=chosen))

    async def renew(
        self, user_id: int, telegram_payment_charge_id: str, *, bot_id: int | None = None
    ) -> dict[str, Any]:
        body = self._with_bot(
            {"user_id": user_id, "telegram_payment_charge_id": telegram_payment_charge_id}, bot_id
        )
        return dict(await self._call("POST", "/_emulator/renew", body))

    # -- inspecting ------------------------------------------------------------------------------
    async def messages(
        self,
        chat_id: int,
        *,
        include_users: bool = False,
        after: int | None = None,
        wait: float | None = None,
        bot_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """The bot's messages in a chat (edits applied); ``wait`` long-polls for one newer than ``after``."""
        chosen = bot_id if bot_id is not None else self.bot_id
        return list(
            await self._call(
                "GET",
                f"/_emulator/chats/{chat_id}/messages",
                bot_id=chosen,
                all="1" if include_users else None,
                after=after,
                wait=wait,
            )
        )

    async def callback_answer(
        self, callback_query_id: str, *, wait: float | None = None
    ) -> dict[str, Any] | None:
        """What the bot answered to a tap, or None if it has not (yet)."""
        try:
            return dict(
                await self._call("GET", f"/_emulator/callback_answers/{callback_query_id}", wait=wait)
            )
        except EmulatorControlError as exc:
            if exc.status == 404:
                return None
            raise

    async def faults(
        self,
        method: str,
        status: int | None = None,
        count: int = 1,
        *,
        retry_after: int | None = None,
        delay_ms: int | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        body = {
            "method": method,
            "status": status,
            "count": count,
            "retry_after": retry_after,
            "delay_ms": delay_ms,
            "description": description,
        }
        return dict(
            await self._call("POST", "/_emulator/faults", {k: v for k, v in body.items() if v is not None})
        )

    async def list_faults(self) -> list[dict[str, Any]]:
        return list(await self._call("GET", "/_emulator/faults"))

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/_emulator/faults")

    async def stats(self) -> dict[str, Any]:
        return dict(await self._call("GET", "/_emulator/stats"))

    async def reset_stats(self) -> None:
        await self._call("DELETE", "/_emulator/stats")

    async def events(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The live event stream: ``(event, data)`` pairs until the emulator stops."""
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self._client().get(self.base_url + "/_emulator/events", timeout=timeout) as resp:
            event, data = "message", ""
            async for raw in resp.content:
                line = raw.decode("utf-8").rstrip("\r\n")
                if line.startswith("event: "):
                    event = line[len("event: ") :]
                elif line.startswith("data: "):
                    data += line[len("data: ") :]
                elif not line and data:
                    yield event, json.loads(data)
                    event, data = "message", ""
