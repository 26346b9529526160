"""The gateway's terminals: one session per account, isolated as the broker isolates them.

Each MT5 login gets a worker (``engine.brokers.mt5_process``): a dedicated child process when
the module drives one terminal per process (the real ``MetaTrader5`` package), or a dedicated
thread when it declares ``MULTI_ACCOUNT = True`` (``mt5sim``). On that worker, ``ModuleTerminal``
calls the module's functions, looked up in a table of the allow-listed names only, and encodes
the answer with the terminal's ``last_error()`` right after it. A worker lives while the login
has a session; a call that outlives its timeout answers ``(-10005, 'IPC timeout')``, a dead
worker ``(-10004, ...)``, as the package itself would.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from loguru import logger

from engine.brokers.base import BrokerError
from engine.brokers.mt5_link import MT5Config, load_module
from engine.brokers.mt5_process import CallTimeout, ProcessRunner, ThreadRunner
from engine.gateway.protocol import FUNCTIONS, CodecError, encode

Isolation = Literal["auto", "thread", "process"]

RES_E_FAIL = -1
RES_E_INVALID_PARAMS = -2
RES_E_INTERNAL_FAIL_CONNECT = -10004
RES_E_INTERNAL_FAIL_TIMEOUT = -10005

CALL_SECONDS = {"initialize": 180.0, "login": 180.0, "order_send": 60.0}
DEFAULT_CALL_SECONDS = 30.0
HEALTH_SECONDS = 5.0

Reply = tuple[Any, list[Any]]  # (encoded result, [code, message])


class ModuleTerminal:
    """Runs on one account's worker: the module's allow-listed functions, nothing else."""

    def __init__(self, config: MT5Config) -> None:
        self._name = config.module
        self._module: Any = None
        self._table: dict[str, Any] = {}

    def _load(self) -> Any:
        if self._module is None:
            self._module = load_module(self._name)
            self._table = {
                n: getattr(self._module, n) for n in FUNCTIONS if callable(getattr(self._module, n, None))
            }
        return self._module

    def _error(self) -> list[Any]:
        try:
            code, message = self._load().last_error()
            return [int(code), str(message)]
        except Exception as exc:
            return [RES_E_FAIL, f"last_error() failed: {type(exc).__name__}"]

    def invoke(self, func: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Reply:
        self._load()
        function = self._table.get(func)
        if function is None:  # the server checks first; this is the second lock on the door
            return None, [RES_E_INVALID_PARAMS, f"{func!r} is not served by this gateway"]
        try:
            result = function(*args, **kwargs)
        except TypeError as exc:
            return None, [RES_E_INVALID_PARAMS, f"Invalid arguments: {exc}"]
        except Exception as exc:
            return None, [RES_E_FAIL, f"{func} raised {type(exc).__name__}"]
        try:
            return encode(result), self._error()
        except CodecError as exc:
            return None, [RES_E_FAIL, f"{func}: unexpected answer ({exc})"]

    def health(self) -> dict[str, Any]:
        """What ``/healthz`` shows for this terminal (no call changes anything)."""
        module = self._load()
        terminal, account = module.terminal_info(), module.account_info()
        if terminal is None or account is None:
            code, message = self._error()
            return {"connected": False, "trade_allowed": False, "ping_ms": None,
                    "detail": f"terminal not answering: ({code}, {message})"}  # fmt: skip
        trade_allowed = bool(terminal.trade_allowed) and bool(account.trade_allowed)
        detail = "ok" if terminal.connected else "terminal not connected to the trade server"
        if terminal.connected and not trade_allowed:
            detail = "connected, but trading is disabled"
        return {"connected": bool(terminal.connected), "trade_allowed": trade_allowed,
                "ping_ms": int(terminal.ping_last) // 1000, "detail": detail}  # fmt: skip

    def shutdown(self) -> None:
        if self._module is not None:
            try:
                self._module.shutdown()
            except Exception as exc:
                logger.warning("terminal shutdown failed: {}", type(exc).__name__)


@dataclass(frozen=True)
class PoolConfig:
    module: str = "MetaTrader5"
    isolation: Isolation = "auto"
    terminals: tuple[tuple[int, str], ...] = ()  # login -> terminal path on this host

    def path_for(self, login: int) -> str | None:
        return dict(self.terminals).get(login)


class TerminalPool:
    """The workers of the accounts that have a session, made on first use."""

    def __init__(self, config: PoolConfig) -> None:
        self.config = config
        module = load_module(config.module)  # fails at start-up, not at the first call
        self.isolation = config.isolation
        if self.isolation == "auto":
            self.isolation = "thread" if getattr(module, "MULTI_ACCOUNT", False) is True else "process"
        self._runners: dict[int, ThreadRunner | ProcessRunner] = {}
        self._lock = asyncio.Lock()

    @property
    def logins(self) -> list[int]:
        return sorted(self._runners)

    async def _runner(self, login: int) -> ThreadRunner | ProcessRunner:
        async with self._lock:
            runner = self._runners.get(login)
            if runner is None:
                config = MT5Config(module=self.config.module, login=login, path=self.config.path_for(login))
                runner = (
                    ThreadRunner(config, ModuleTerminal)
                    if self.isolation == "thread"
                    else ProcessRunner(config, ModuleTerminal)
                )
                self._runners[login] = runner
                logger.info("gateway: terminal worker for login {} ({})", login, self.isolation)
            return runner

    async def invoke(self, login: int, func: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Reply:
        runner = await self._runner(login)
        seconds = CALL_SECONDS.get(func, DEFAULT_CALL_SECONDS)
        try:
            reply: Reply = await runner.call("invoke", (func, args, kwargs), seconds)
        except CallTimeout:
            return None, [
                RES_E_INTERNAL_FAIL_TIMEOUT,
                f"IPC timeout: {func} gave no answer within {seconds:g} s",
            ]
        except BrokerError as exc:
            return None, [RES_E_INTERNAL_FAIL_CONNECT, f"No IPC connection: {exc}"]
        return reply

    async def health(self) -> list[dict[str, Any]]:
        async def one(login: int, runner: ThreadRunner | ProcessRunner) -> dict[str, Any]:
            try:
                state: dict[str, Any] = await runner.call("health", (), HEALTH_SECONDS)
            except BrokerError as exc:
                state = {"connected": False, "trade_allowed": False, "ping_ms": None, "detail": str(exc)}
            return {"login": login, **state}

        return list(await asyncio.gather(*(one(n, r) for n, r in sorted(self._runners.items()))))

    async def release(self, login: int) -> None:
        """Stop the login's worker (its module session is shut down first)."""
        async with self._lock:
            runner = self._runners.pop(login, None)
        if runner is not None:
            try:
                await runner.close()
            except BrokerError as exc:
                logger.warning("gateway: closing the worker of login {} was not clean: {}", login, exc)

    async def close(self) -> None:
        for login in list(self._runners):
            await self.release(login)
