"""Gateways for tests: in a thread of the test process, as a real child process, behind a TCP proxy."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

from engine.brokers import remote
from engine.gateway.certs import write_pair
from engine.gateway.serve import KEEPALIVE_SECONDS
from engine.gateway.server import build_gateway_app
from engine.gateway.terminals import PoolConfig, TerminalPool
from tests.support.ports import free_port

LOGIN, PASSWORD, SERVER = 6101, "pw-6101-secret", "MT5Sim-Demo"  # the gateway suites' account
TOKEN = "gateway-test-token-" + "k" * 24


def eventually(check: Callable[[], Any], seconds: float = 10.0, every: float = 0.02) -> Any:
    """Poll ``check`` until it returns something truthy (that value), or fail at the deadline."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds} s")
        time.sleep(every)


@dataclass
class Tls:
    cert: Path
    key: Path

    @classmethod
    def make(cls, directory: Path) -> Tls:
        cert, key = write_pair(directory, ["127.0.0.1", "localhost"])
        return cls(cert, key)


@dataclass
class GatewayThread:
    """The gateway app on its own event loop in a thread of this process."""

    tls: Tls | None
    module: str = "mt5sim"
    isolation: str = "auto"
    token: str = TOKEN
    rate_per_second: Decimal = Decimal(1000)
    burst: int = 2000
    max_skew: int = 30
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None
    app: web.Application | None = None
    _ready: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def endpoint(self, name: str = "default", url: str | None = None) -> remote.Endpoint:
        return remote.Endpoint(name, url or self.url, self.token, str(self.tls.cert) if self.tls else None)

    def start(self) -> GatewayThread:
        import ssl

        async def boot() -> None:
            pool = TerminalPool(PoolConfig(self.module, self.isolation))  # type: ignore[arg-type]
            self.app = build_gateway_app(
                pool,
                self.token,
                max_skew=self.max_skew,
                rate_per_second=self.rate_per_second,
                burst=self.burst,
            )
            self._runner = web.AppRunner(self.app, keepalive_timeout=KEEPALIVE_SECONDS)
            await self._runner.setup()
            context = None
            if self.tls is not None:
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(self.tls.cert, self.tls.key)
            site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=context)
            await site.start()
            self.port = int(self._runner.addresses[0][1])

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            loop.run_until_complete(boot())
            self._ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="gateway", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the gateway thread did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None or self._runner is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        assert self._thread is not None
        self._thread.join(10)
        self._loop = None


@dataclass
class GatewayProcess:
    """``tradebot gateway serve`` as a real child process (in its own process group)."""

    tls: Tls | None
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    isolation: str = "auto"
    log: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self, seconds: float = 30.0) -> GatewayProcess:
        env = {
            **os.environ,
            **self.env,
            "GATEWAY_TOKEN": TOKEN,
            "MT5_MODULE": self.env.get("MT5_MODULE", "mt5sim"),
        }
        if self.tls is not None:
            env |= {"GATEWAY_TLS_CERT": str(self.tls.cert), "GATEWAY_TLS_KEY": str(self.tls.key)}
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tradebot.cli", "gateway", "serve", "--listen", f"127.0.0.1:{self.port}",
             "--isolation", self.isolation],
            env=env, stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip
        eventually(self._live, seconds, every=0.05)
        return self

    def _live(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the gateway exited with status {self.process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the gateway and every process it started (its terminal workers)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


class Proxy:
    """A TCP forwarder that can cut the network (drop every connection, refuse new ones) and restore it."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()

    @property
    def url_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Proxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread: no new connections
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for s in (a, b):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                s.close()

    def restore(self) -> None:
        self.start()


def live(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/livez", timeout=1):
            return True
    except (urllib.error.URLError, OSError):
        return False
