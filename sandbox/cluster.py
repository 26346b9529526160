"""``make cluster``: several ``tradebot run`` instances on one machine, on PostgreSQL and Redis, offline.

Starts the Telegram Bot API emulator (Telegram's limits on), a round-robin balancer
(``sandbox.balancer``) in front of N instances (``tradebot run`` in webhook mode, each its own
process, ``INSTANCE_ID`` cluster-1..N), prints where everything is, and stops them all on Ctrl-C
(SIGTERM each, so they hand their MT5 accounts back). The database is migrated once before the
instances start; it is created when missing. Logs go to ``<data-dir>/cluster-N.log``; the
``SECRET_KEY`` used is kept in ``<data-dir>/secret_key`` so the next run opens the same store.

    python -m sandbox.cluster --instances 3 [--port 8080] [--database-url URL] [--redis-url URL]

Production puts nginx in front of the instances instead (docs/deploy.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import ClientError, ClientSession, ClientTimeout
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from emulator import BotAPIEmulator, EmulatorConfig
from engine.store.migrate import upgrade_async
from sandbox.balancer import RoundRobin

DEFAULT_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:5432/tradebot_cluster"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
# The emulator's bot (it accepts any well-formed token); no real Telegram bot has it.
TOKEN = "5550001234:AAClusterSandboxTokenForTheEmulator"  # noqa: S105
ROOT = Path(__file__).resolve().parents[1]


class ClusterError(Exception):
    """A setting the cluster cannot run with (said in one line, exit status 2)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def ensure_database(url: str) -> None:
    """Create the database when missing (through the server's ``postgres`` database), then migrate."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgresql"):
        raise ClusterError("--database-url: several instances need PostgreSQL (postgresql+asyncpg://...)")
    name = parts.path.lstrip("/")
    if not name or not name.replace("_", "").isalnum():
        raise ClusterError("--database-url: name a database of letters, digits and _")
    admin = create_async_engine(urlunsplit(parts._replace(path="/postgres")), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            found = await conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if not found:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OSError as exc:
        raise ClusterError(f"--database-url: PostgreSQL does not answer ({exc})") from None
    finally:
        await admin.dispose()
    await upgrade_async(url)


def secret_key(data_dir: Path) -> str:
    path = data_dir / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


class InstanceProcess:
    """One ``tradebot run`` as a child process (its output in ``log``): the cluster's, the
    multi-instance tests' and the benchmark's."""

    def __init__(self, name: str, port: int, env: dict[str, str], log: Path) -> None:
        self.name, self.port, self.log = name, port, log
        self.env = {
            **os.environ,
            **env,
            "INSTANCE_ID": name,
            "HTTP_PORT": str(port),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
        }
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        with self.log.open("a") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tradebot.cli", "run", env=self.env, cwd=ROOT, stdout=out, stderr=out
            )

    async def ready(self, seconds: float = 90.0) -> None:
        """Until ``/healthz`` answers; ClusterError when the process exits or takes too long."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        async with ClientSession(timeout=ClientTimeout(total=2)) as http:
            while self.running and loop.time() < deadline:
                with contextlib.suppress(ClientError, TimeoutError):
                    async with http.get(self.url + "/healthz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise ClusterError(f"{self.name} did not start:\n{self.tail()}")

    async def readyz(self) -> dict[str, Any] | None:
        """``/readyz`` (whatever its status), or None when the process does not answer."""
        try:
            async with ClientSession(timeout=ClientTimeout(total=3)) as http:
                async with http.get(self.url + "/readyz") as resp:
                    return dict(await resp.json())
        except (ClientError, TimeoutError, ValueError):
            return None

    async def kill(self) -> None:
        """SIGKILL: as a crash or a pulled plug."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    async def terminate(self, seconds: float = 30.0) -> int:
        """SIGTERM (a graceful stop), then its exit status; SIGKILL after ``seconds``."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), seconds)
        except TimeoutError:
            await self.kill()
            raise

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text().splitlines()[-lines:]) if self.log.exists() else ""


async def run(args: argparse.Namespace, key: str) -> None:
    data_dir = Path(args.data_dir)
    await ensure_database(args.database_url)
    emulator = BotAPIEmulator(EmulatorConfig())
    await emulator.start(port=args.emulator_port)
    ports = [free_port() for _ in range(args.instances)]
    balancer = await RoundRobin([f"http://127.0.0.1:{p}" for p in ports], port=args.port).start()
    env = {
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": emulator.base_url,
        "TELEGRAM_MODE": "webhook",
        "WEBHOOK_URL": balancer.url + "/telegram/webhook",
        "WEBHOOK_SECRET": secrets.token_hex(16),
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "SECRET_KEY": key,
        "HTTP_HOST": "127.0.0.1",
    }
    processes = [
        InstanceProcess(f"cluster-{n}", port, env, data_dir / f"cluster-{n}.log")
        for n, port in enumerate(ports, start=1)
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for process in processes:
            await process.start()
        for process in processes:
            await process.ready()
        print(banner(args, emulator.base_url, balancer.url, processes), flush=True)
        waiting: list[asyncio.Task[object]] = [asyncio.create_task(stop.wait())]
        waiting += [asyncio.create_task(p.proc.wait()) for p in processes if p.proc is not None]
        while not stop.is_set():
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                waiting.remove(task)
            if not stop.is_set():
                print("an instance exited (killed?): the others carry on; Ctrl-C stops them", flush=True)
        for task in waiting:
            task.cancel()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        for process in processes:
            if process.running:
                assert process.proc is not None
                process.proc.send_signal(signal.SIGTERM)
        for process in processes:
            if process.proc is not None:
                with contextlib.suppress(TimeoutError):
                    await process.terminate()
        await balancer.stop()
        await emulator.stop()
        print("cluster stopped", flush=True)


def banner(
    args: argparse.Namespace,
    emulator_url: str,
    balancer_url: str,
    processes: list[InstanceProcess],
) -> str:
    lines = [
        f"tradebot cluster: {len(processes)} instances on {args.database_url} and {args.redis_url}",
        f"  balancer (webhook and producer API): {balancer_url}",
        f"  Bot API emulator:                    {emulator_url}",
    ]
    for p in processes:
        pid = p.proc.pid if p.proc is not None else "?"
        lines.append(f"  {p.name}: pid {pid}, {p.url}/readyz, log {p.log}")
    lines += [
        "Act as a subscriber through the emulator:",
        f'  curl -s {emulator_url}/_emulator/users -d \'{{"id": 1001, "first_name": "Ann"}}\'',
        f'  curl -s {emulator_url}/_emulator/send -d \'{{"user_id": 1001, "text": "/start"}}\'',
        f"  curl -s {emulator_url}/_emulator/chats/1001/messages",
        "Kill one instance (kill -9 <pid>) and watch /readyz of the others take its accounts.",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.cluster", description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=3, help="how many tradebot run (1..16)")
    parser.add_argument("--port", type=int, default=8080, help="the balancer's port")
    parser.add_argument("--emulator-port", type=int, default=0, help="the emulator's port (0: any free)")
    parser.add_argument("--database-url", default=os.environ.get("CLUSTER_DATABASE_URL", DEFAULT_DATABASE))
    parser.add_argument("--redis-url", default=os.environ.get("CLUSTER_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument("--data-dir", default="data/cluster", help="logs and the cluster's SECRET_KEY")
    args = parser.parse_args(argv)
    if not 1 <= args.instances <= 16:
        print("cluster: --instances must be 1..16", file=sys.stderr)
        return 2
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(run(args, secret_key(data_dir)))
    except ClusterError as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
