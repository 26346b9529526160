"""Where an MT5 session runs: a worker thread in this process, or a child process of its own.

Both runners give the same contract: calls for one account run one at a time, in order, on
one thread that owns the terminal session, and the event loop only awaits them. A call that
outlives its timeout raises ``CallTimeout`` (the work itself may still finish later; later
calls queue behind it, so a reconciliation always sees its effect).

The child-process runner exists because the real MetaTrader5 package drives one terminal per
process. Requests and replies travel over a ``multiprocessing`` pipe as ``(call_id, method,
args)`` / ``(call_id, ok, payload)``; replies to calls that already timed out are skipped. A
dead child is noticed on the next call, which starts a fresh one (it logs in again on demand).
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from multiprocessing.connection import Connection
from typing import Any

from engine.brokers.base import BrokerError
from engine.brokers.mt5_link import MT5Config
from engine.brokers.mt5_session import MT5Session


class CallTimeout(BrokerError):
    """No answer from the terminal within the call's timeout."""


# What runs on the worker: built from the config on the worker's own thread or process.
# ``MT5Session`` for the broker; the gateway runs bare module calls (``engine.gateway.terminals``).
SessionFactory = Callable[[MT5Config], Any]


class ThreadRunner:
    """The session lives in this process, on one dedicated worker thread."""

    def __init__(self, config: MT5Config, factory: SessionFactory = MT5Session) -> None:
        self.session = factory(config)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"mt5-{config.login}")

    async def call(self, method: str, args: tuple[Any, ...], seconds: float) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, partial(getattr(self.session, method), *args))
        try:
            return await asyncio.wait_for(future, seconds)
        except TimeoutError:
            raise CallTimeout(f"{method} gave no answer within {seconds:g} s") from None

    async def close(self) -> None:
        try:
            await self.call("shutdown", (), seconds=10)
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)


def worker_main(conn: Connection, config: MT5Config, factory: SessionFactory = MT5Session) -> None:
    """The child process: its main thread is the session's one worker thread."""
    session = factory(config)
    try:
        while True:
            try:
                call_id, method, args = conn.recv()
            except (EOFError, OSError):
                break
            try:
                reply = (call_id, True, getattr(session, method)(*args))
            except Exception as exc:
                reply = (call_id, False, f"{type(exc).__name__}: {exc}")
            try:
                conn.send(reply)
            except (EOFError, OSError):
                break
            if method == "shutdown":
                break
    finally:
        try:
            session.shutdown()
        except Exception:  # noqa: S110 - the process is ending anyway
            pass


class ProcessRunner:
    """The session lives in a dedicated child process (spawned), reached over a pipe."""

    def __init__(self, config: MT5Config, factory: SessionFactory = MT5Session) -> None:
        self._config = config
        self._factory = factory  # a top-level callable: it is pickled by name into the child
        self._ctx = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._conn: Connection | None = None
        self._ids = itertools.count(1)
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"mt5-pipe-{config.login}")

    @property
    def pid(self) -> int | None:
        return None if self._process is None else int(self._process.pid)

    def _start(self) -> Connection:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(
            target=worker_main,
            args=(child, self._config, self._factory),
            name=f"mt5-{self._config.login}",
            daemon=True,
        )
        process.start()
        child.close()
        self._process, self._conn = process, parent
        return parent

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._process, self._conn = None, None

    def _roundtrip(self, method: str, args: tuple[Any, ...], seconds: float) -> Any:
        conn = self._conn
        if conn is None or self._process is None or not self._process.is_alive():
            self._drop()
            conn = self._start()
        call_id = next(self._ids)
        deadline = time.monotonic() + seconds
        try:
            conn.send((call_id, method, args))
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not conn.poll(remaining):
                    raise CallTimeout(f"{method} gave no answer within {seconds:g} s")
                reply_id, ok, payload = conn.recv()
                if reply_id != call_id:
                    continue  # the late answer of a call that already timed out
                if ok:
                    return payload
                raise BrokerError(str(payload))
        except (EOFError, OSError) as exc:
            self._drop()
            raise BrokerError(f"MT5 worker process for {self._config.login} died: {exc!r}") from exc

    async def call(self, method: str, args: tuple[Any, ...], seconds: float) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._io, self._roundtrip, method, args, seconds)

    async def close(self) -> None:
        try:
            if self._process is not None and self._process.is_alive():
                await self.call("shutdown", (), seconds=10)
        finally:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._io, self._drop)
            self._io.shutdown(wait=False, cancel_futures=True)
