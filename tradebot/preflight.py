"""Checks ``tradebot run`` makes before anything starts (no migration, no loop, no socket kept).

Each failed check is one line naming what is wrong and how to fix it; the CLI prints it and exits
with status 2. In order: the bot token has Telegram's shape, ``HTTP_HOST:HTTP_PORT`` can be
bound, and Telegram (``TELEGRAM_API_URL``) answers ``getMe`` for the token.
"""

from __future__ import annotations

import asyncio
import errno
import re
import socket

from engine.settings import Settings

TOKEN_SHAPE = re.compile(r"^[0-9]{1,20}:[A-Za-z0-9_-]{20,}$")
TELEGRAM_TIMEOUT_SECONDS = 10.0


class PreflightError(Exception):
    """A reason not to start; ``str()`` is the one line to print."""


def check_token(settings: Settings) -> str:
    token = settings.bot_token.get_secret_value().strip() if settings.bot_token is not None else ""
    if not token:
        raise PreflightError("BOT_TOKEN: required for `tradebot run` but empty (get one from @BotFather)")
    if not TOKEN_SHAPE.match(token):
        raise PreflightError(
            "BOT_TOKEN: not a Telegram bot token (expected <digits>:<35 characters>, as @BotFather gives it)"
        )
    return token


def check_port(host: str, port: int) -> None:
    """Bind and release ``host:port`` the way the HTTP server will (SO_REUSEADDR, like aiohttp)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PreflightError(f"HTTP_HOST: cannot resolve {host!r}: {exc.strerror}") from None
    for family, kind, proto, _name, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise PreflightError(
                        f"HTTP_PORT: {host}:{port} is already in use; stop what listens there or set another HTTP_PORT"
                    ) from None
                raise PreflightError(
                    f"HTTP_HOST/HTTP_PORT: cannot listen on {host}:{port}: {exc.strerror}"
                ) from None


async def check_telegram(api_url: str, token: str, seconds: float = TELEGRAM_TIMEOUT_SECONDS) -> str:
    """``getMe`` once; returns the bot's username."""
    import aiohttp

    base = api_url.rstrip("/")
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds)) as http,
            http.get(f"{base}/bot{token}/getMe") as resp,
        ):
            status = resp.status
            body = await resp.json(content_type=None) if status < 500 else None
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        kind = "no answer" if isinstance(exc, TimeoutError) else type(exc).__name__
        raise PreflightError(
            f"TELEGRAM_API_URL: Telegram is unreachable at {base} ({kind}); check the network or the URL"
        ) from None
    if status in (401, 404):
        raise PreflightError(
            "BOT_TOKEN: Telegram does not know this token (revoked or mistyped?); ask @BotFather"
        )
    if status != 200 or not isinstance(body, dict) or not body.get("ok"):
        raise PreflightError(f"TELEGRAM_API_URL: Telegram answered getMe with HTTP {status}; try again later")
    return str((body.get("result") or {}).get("username") or "")


def preflight(settings: Settings) -> str:
    """Every check, in order; returns the bot's username or raises ``PreflightError``."""
    token = check_token(settings)
    check_port(settings.http_host, settings.http_port)
    return asyncio.run(check_telegram(settings.telegram_api_url, token))
