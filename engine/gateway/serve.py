"""Running the gateway: settings in, a listening socket out, until SIGTERM/SIGINT (or Ctrl+C)."""

from __future__ import annotations

import asyncio
import signal
import ssl
from dataclasses import dataclass

from aiohttp import web
from loguru import logger

from engine.api.server import AccessLogger
from engine.gateway.server import build_gateway_app
from engine.gateway.terminals import Isolation, PoolConfig, TerminalPool
from engine.settings import Settings, SettingsError

KEEPALIVE_SECONDS = 75.0


@dataclass(frozen=True)
class ServeOptions:
    host: str = "0.0.0.0"
    port: int = 8765
    isolation: Isolation = "auto"


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen must be HOST:PORT, not {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    cert, key = settings.gateway_tls_cert, settings.gateway_tls_key
    if not cert and not key:
        return None
    if not cert or not key:
        raise SettingsError("GATEWAY_TLS_CERT and GATEWAY_TLS_KEY: set both or neither")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(f"GATEWAY_TLS_CERT/GATEWAY_TLS_KEY: cannot load them ({exc})") from None
    return context


async def start_gateway(settings: Settings, options: ServeOptions) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner (``await runner.cleanup()`` stops it) and the port."""
    if settings.gateway_token is None:
        raise SettingsError("GATEWAY_TOKEN: required for `tradebot gateway serve` (32+ characters)")
    context = tls_context(settings)
    try:
        pool = TerminalPool(
            PoolConfig(
                settings.mt5_module, options.isolation, tuple(sorted(settings.gateway_terminals.items()))
            )
        )
    except (ImportError, AttributeError) as exc:
        raise SettingsError(f"MT5_MODULE: cannot load {settings.mt5_module!r} ({exc})") from None
    app = build_gateway_app(
        pool,
        settings.gateway_token.get_secret_value(),
        max_skew=settings.gateway_max_skew_seconds,
        rate_per_second=settings.gateway_rate_per_second,
        burst=settings.gateway_burst,
    )
    runner = web.AppRunner(app, access_log_class=AccessLogger, keepalive_timeout=KEEPALIVE_SECONDS)
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.port, ssl_context=context)
    await site.start()
    port = int(runner.addresses[0][1])
    scheme = "https" if context else "http"
    logger.info(
        "gateway serving {} on {}://{}:{} ({} isolation)",
        settings.mt5_module, scheme, options.host, port, pool.isolation,
    )  # fmt: skip
    if context is None:
        logger.warning(
            "gateway: NO TLS. Requests are signed and replay-proof, but everything they carry, broker "
            "passwords at login included, crosses the network in clear. Set GATEWAY_TLS_CERT and "
            "GATEWAY_TLS_KEY (`tradebot gateway cert`) unless this link is private."
        )
    return runner, port


async def serve(settings: Settings, options: ServeOptions) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
        except NotImplementedError:  # Windows event loops: Ctrl+C raises KeyboardInterrupt instead
            pass
    runner, _port = await start_gateway(settings, options)
    try:
        await stop.wait()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        logger.info("gateway stopping: terminal sessions are shut down")
        await runner.cleanup()
