"""Sandbox options, its data directory, and the product settings it runs with.

Everything the sandbox writes lives in one data directory (``./data`` by default):
``sandbox.db`` (the engine's SQLite store), ``sandbox-mt5sim.sqlite3`` (the simulated MT5 trade
server), ``sandbox.secret_key`` (a generated ``SECRET_KEY``, kept across runs) and
``sandbox.env`` (the settings of the running sandbox, for trying the CLI against it).
The Bot API emulator keeps its chats in memory, so the store and the simulated terminal start
fresh on every run to stay consistent with it; the secret key is reused.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import string
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from engine.settings import Settings, load_settings
from sandbox.strategy import BAR_SECONDS, HISTORY_BARS, MIN_BAR_SECONDS, poll_seconds, strategies_setting

DB_FILE = "sandbox.db"
MT5SIM_FILE = "sandbox-mt5sim.sqlite3"
KEY_FILE = "sandbox.secret_key"
ENV_FILE = "sandbox.env"
PLANS_FILE = "sandbox-plans.toml"
LOCK_FILE = "sandbox.lock"
OPEN_ALL_WEEK = "*=24/7"
_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:-\s*(\d+(?:\.\d+)?)\s*)?$")
_TOKEN_ALPHABET = string.ascii_letters + string.digits + "_-"

# With --broker mt5 the sandbox's free plan includes MT5 execution (the shipped plans keep it for
# paying subscribers), so approvals execute on the simulated terminal without a Stars payment.
SANDBOX_PLANS = """\
# Written by `tradebot sandbox --broker mt5` (PLANS_FILE): in the sandbox, MT5 execution is free.
default_plan = "free"

[plans.free]
title = "Sandbox"
description = "Signals, a paper account and MT5 execution: everything is free in the sandbox."
price_stars = 0
entitlements = ["signals", "execute_paper", "execute_mt5"]

[plans.auto]
title = "Auto"
description = "Everything, plus opt-in auto-execution within your own risk settings."
price_stars = 600
period_days = 30
recurring = true
entitlements = ["signals", "execute_paper", "execute_mt5", "auto_execute"]
"""


class SandboxError(Exception):
    """The sandbox cannot start (bad option, data directory in use); one clear line."""


def parse_interval(text: str) -> tuple[float, float]:
    """``"20-60"`` -> (20.0, 60.0); ``"5"`` -> (5.0, 5.0). Seconds, at least 0.5."""
    match = _INTERVAL.match(text)
    if match is None:
        raise SandboxError(f"--signal-every: expected seconds like 30 or 20-60, got {text!r}")
    low = float(match.group(1))
    high = float(match.group(2)) if match.group(2) is not None else low
    if low < 0.5 or high < low:
        raise SandboxError(f"--signal-every: need 0.5 <= low <= high, got {text!r}")
    return low, high


def new_bot_token() -> str:
    """A token of Telegram's shape (``<bot id>:<35 characters>``); the emulator accepts any such."""
    bot_id = secrets.randbelow(9 * 10**9) + 10**9
    return f"{bot_id}:" + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(35))


@dataclass(frozen=True)
class SandboxOptions:
    broker: str = "paper"  # paper | mt5
    host: str = "127.0.0.1"
    port: int = 8080  # the engine's HTTP server, which also serves the page
    emulator_port: int = 0  # 0: any free port
    data_dir: Path = Path("data")
    signal_every: tuple[float, float] = (20.0, 60.0)
    first_signal_after: float = 1.0
    bar_seconds: float = BAR_SECONDS  # real seconds per simulated H1 bar (sandbox/strategy.py)

    def __post_init__(self) -> None:
        if self.broker not in ("paper", "mt5"):
            raise SandboxError(f"--broker: paper or mt5, got {self.broker!r}")
        if not 1 <= self.port <= 65535:
            raise SandboxError(f"--port: 1..65535, got {self.port}")
        if not MIN_BAR_SECONDS <= self.bar_seconds <= 3600:
            raise SandboxError(f"--bar-seconds: {MIN_BAR_SECONDS:g} to 3600, got {self.bar_seconds:g}")

    @property
    def page_url(self) -> str:
        return f"http://{self.host}:{self.port}/sandbox"

    @property
    def db_path(self) -> Path:
        return self.data_dir / DB_FILE

    @property
    def mt5sim_path(self) -> Path:
        return self.data_dir / MT5SIM_FILE


class DataDir:
    """The sandbox's data directory, locked for the life of one sandbox."""

    def __init__(self, options: SandboxOptions) -> None:
        self.options = options
        self.path = options.data_dir
        self._lock: IO[str] | None = None

    def prepare(self) -> str:
        """Lock the directory, start the store fresh, and return the (kept) secret key."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = (self.path / LOCK_FILE).open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise SandboxError(f"another sandbox is running with the data directory {self.path}") from None
        self._lock = lock
        for name in (DB_FILE, MT5SIM_FILE, PLANS_FILE):
            for suffix in ("", "-wal", "-shm", "-journal"):
                (self.path / (name + suffix)).unlink(missing_ok=True)
        return self._secret_key()

    def _secret_key(self) -> str:
        path = self.path / KEY_FILE
        if path.exists():
            key = path.read_text().strip()
            if len(key) >= 32:
                return key
        key = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(key + "\n")
        return key

    def write_plans(self) -> Path:
        path = self.path / PLANS_FILE
        path.write_text(SANDBOX_PLANS)
        return path

    def write_env(self, values: dict[str, str]) -> Path:
        """The running sandbox's settings as a ``.env``-style file (mode 600: it holds secrets)."""
        path = self.path / ENV_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("# The settings of the running sandbox (rewritten at every start).\n")
            for key, value in values.items():
                out.write(f"{key}={value}\n")
        return path

    def release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None


def sandbox_settings(
    options: SandboxOptions,
    *,
    secret_key: str,
    bot_token: str,
    telegram_api_url: str,
    admin_id: int,
    ops_chat_id: int,
    data_login: tuple[int, str, str] | None = None,
    plans_file: Path | None = None,
) -> Settings:
    """The product's settings for the sandbox: everything local, the market open all week.

    ``data_login`` (login, password, server) is the operator's login on the simulated terminal:
    with it, paper accounts price from the terminal and ``STRATEGIES`` runs Fib-RSI on its bars
    (``sandbox/strategy.py``). A ``.env`` file is ignored (it is for the real product); other
    environment variables still apply where the sandbox does not set the value (``LOG_LEVEL``,
    ``MIN_RR``, ``PAPER_BALANCE``, ``INSTRUMENTS``...).
    """
    overrides: dict[str, Any] = {
        "_env_file": None,
        "bot_token": bot_token,
        "telegram_api_url": telegram_api_url,
        "telegram_mode": "polling",
        "webhook_url": None,
        "admin_ids": [admin_id],
        "ops_chat_id": ops_chat_id,
        "signal_channel_id": None,
        "database_url": f"sqlite+aiosqlite:///{options.db_path.resolve()}",
        "redis_url": None,
        "http_host": options.host,
        "http_port": options.port,
        "broker": options.broker,
        "mt5_module": "mt5sim",
        "mt5_path": str(options.mt5sim_path.resolve()),
        "market_hours": OPEN_ALL_WEEK,
        "secret_key": secret_key,
        "outbound_url": None,
        # the Mini App on this very server, with the bundled telegram-web-app.js (no internet)
        "miniapp_url": f"http://{options.host}:{options.port}/app/",
        "miniapp_script": "local",
    }
    if plans_file is not None:
        overrides["plans_file"] = str(plans_file.resolve())
    if "OPS_HEARTBEAT_SECONDS" not in os.environ:
        overrides["ops_heartbeat_seconds"] = 300  # an ops summary every 5 minutes, not hourly
    if data_login is None:
        return load_settings(**overrides)
    login, password, server = data_login
    overrides.update(mt5_login=login, mt5_password=password, mt5_server=server)
    instruments = load_settings(**overrides).instruments  # INSTRUMENTS may come from the environment
    overrides.update(
        strategies=strategies_setting(instruments),
        strategy_poll_seconds=str(poll_seconds(options.bar_seconds)),
        strategy_history_bars=HISTORY_BARS,
    )
    return load_settings(**overrides)
