"""The Mini App as a Telegram user's client opens it: the emulator signs the user's initData, the
page exchanges it for a session token and calls ``/app/api/*`` with it."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientSession

from tests.support.bot_world import World


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def problem(self) -> bool:
        return self.headers.get("Content-Type", "").startswith("application/problem+json")


@dataclass
class AppUser:
    """One user's open Mini App: ``get``/``post`` answer ``Reply`` (status, JSON body, headers)."""

    world: World
    user_id: int
    token: str | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.world.http_port}"

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        bearer = token if token is not None else self.token
        if bearer:
            sent.setdefault("Authorization", f"Bearer {bearer}")
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        async with (
            ClientSession() as http,
            http.request(method, self.base + path, data=data, headers=sent) as resp,
        ):
            text = await resp.text()
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = text
            return Reply(resp.status, parsed, dict(resp.headers))

    async def get(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("GET", "/app/api/" + path, **kwargs)

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        return await self.request("POST", "/app/api/" + path, body, **kwargs)

    async def act(self, position_id: int, action: str, key: str | None = None) -> Reply:
        return await self.post(
            f"positions/{position_id}/{action}", headers={"Idempotency-Key": key or uuid.uuid4().hex}
        )


async def open_app(world: World, user_id: int, **launch: Any) -> tuple[AppUser, dict[str, Any]]:
    """The user taps the menu button: the emulator's launch (``url``, ``init_data``, ...) and a
    signed-in ``AppUser``."""
    opened = await world.client.open_web_app(user_id, **launch)
    app = AppUser(world, user_id)
    reply = await app.post("session", {"init_data": opened["init_data"]})
    assert reply.status == 200, reply
    app.token = reply.body["token"]
    return app, opened
