"""The link to one MT5 terminal: loading the module, logging in with retries, health and market data.

Every method must run on the one thread that owns the session (the worker thread of
``engine.brokers.mt5``, in this process or in a child process): the real package keeps
module-level state and is not thread-safe. A call that fails at the transport level (``None``
with an IPC error, or an exception from a bridge) marks the link disconnected; the next call
logs in again (``reconnect_attempts`` tries) before it does anything.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from loguru import logger
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential, wait_random

from engine.brokers import mt5_convert as cv
from engine.brokers.base import AccountSnapshot, BrokerError, BrokerHealth, SymbolSpec, Tick


def load_module(name: str) -> Any:
    """Import ``package.module`` or ``package.module:attribute`` (an attribute path is followed)."""
    module_name, _, attribute = name.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in filter(None, attribute.split(".")):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class MT5Config:
    """One account's terminal and how the broker talks to it (picklable, for the child process)."""

    module: str = "MetaTrader5"
    login: int = 0
    password: str = field(default="", repr=False)
    server: str = ""
    path: str | None = None
    magic: int = cv.DEFAULT_MAGIC
    connect_attempts: int = 5
    reconnect_attempts: int = 2
    backoff_initial: float = 0.5
    backoff_max: float = 10.0
    history_days: int = 7
    spec_ttl: float = 60.0  # seconds a symbol's spec is reused before symbol_info is asked again
    close_deviation: int = 20
    close_requote_retries: int = 3
    init_timeout_ms: int = 60000
    # MT5 reports times in the trade server's clock: how many seconds it runs ahead of UTC
    server_utc_offset: int = 0


class _Transient(BrokerError):
    """The terminal could not be reached this time; worth another attempt."""


class MT5Link:
    """Connection, retries and reads that every MT5 session needs."""

    def __init__(self, config: MT5Config) -> None:
        self.config = config
        self._mt5: Any = None
        self._k: cv.K | None = None
        self._connected = False
        self._specs: dict[str, tuple[float, SymbolSpec]] = {}
        self._money_digits = 2

    @property
    def mt5(self) -> Any:
        if self._mt5 is None:
            self._mt5 = load_module(self.config.module)
            self._k = cv.K(self._mt5)
        return self._mt5

    @property
    def k(self) -> cv.K:
        _ = self.mt5
        assert self._k is not None
        return self._k

    @property
    def edge(self) -> cv.Edge:
        return cv.Edge(self.k, self.config.magic, self._money_digits, self.config.server_utc_offset)

    def _server_time(self, at: datetime) -> datetime:
        return at + timedelta(seconds=self.config.server_utc_offset)

    def _last_error(self) -> tuple[int, str]:
        try:
            code, message = self.mt5.last_error()
            return int(code), str(message)
        except Exception as exc:
            return -1, f"last_error() failed: {exc!r}"

    def _note_failure(self) -> tuple[int, str]:
        error = self._last_error()
        if error[0] in cv.IPC_ERRORS:
            self._connected = False
        return error

    def _attempt_connect(self) -> None:
        try:
            self._login_once()
        except BrokerError:
            raise
        except Exception as exc:  # a bridge (e.g. RPyC) failing in transport
            raise _Transient(f"MT5 login {self.config.login}: {exc!r}") from exc

    def _login_once(self) -> None:
        cfg = self.config
        creds = {
            "login": cfg.login,
            "password": cfg.password,
            "server": cfg.server,
            "timeout": cfg.init_timeout_ms,
        }
        ok = self.mt5.initialize(cfg.path, **creds) if cfg.path else self.mt5.initialize(**creds)
        if ok:
            info = self.mt5.account_info()
            if info is None or int(info.login) != cfg.login:
                ok = self.mt5.login(
                    cfg.login, password=cfg.password, server=cfg.server, timeout=cfg.init_timeout_ms
                )
        if not ok:
            code, message = self._last_error()
            text = f"MT5 login {cfg.login}@{cfg.server}: ({code}, {message})"
            if code == cv.RES_E_AUTH_FAILED:
                raise BrokerError(f"authorization failed for {text}")
            raise _Transient(text)
        info = self.mt5.account_info()
        self._money_digits = int(getattr(info, "currency_digits", 2)) if info is not None else 2
        self._connected = True
        self._specs.clear()

    def connect(self, attempts: int | None = None) -> None:
        """initialize + login, retried with jittered exponential backoff on transient failures."""
        cfg = self.config
        retrying = Retrying(
            stop=stop_after_attempt(attempts or cfg.connect_attempts),
            wait=wait_exponential(multiplier=cfg.backoff_initial, max=cfg.backoff_max)
            + wait_random(0, cfg.backoff_initial),
            retry=retry_if_exception_type(_Transient),
            reraise=True,
            before_sleep=lambda state: logger.warning(
                "MT5 {} connect attempt {} failed: {}",
                cfg.login,
                state.attempt_number,
                state.outcome.exception() if state.outcome else None,
            ),
        )
        try:
            for attempt in retrying:
                with attempt:
                    self._attempt_connect()
        except _Transient as exc:
            raise BrokerError(f"terminal unreachable: {exc}") from exc

    def _ensure(self) -> None:
        if not self._connected:
            self.connect(self.config.reconnect_attempts)

    def _raw(self, func: str, *args: Any, **kwargs: Any) -> Any:
        """One module call; a transport exception (e.g. from a bridge) becomes a BrokerError."""
        try:
            return getattr(self.mt5, func)(*args, **kwargs)
        except Exception as exc:
            self._connected = False
            raise BrokerError(f"{func} raised {exc!r}") from exc

    def _query(self, func: str, *args: Any, empty_ok: bool = False, **kwargs: Any) -> Any:
        self._ensure()
        result = self._raw(func, *args, **kwargs)
        if result is None:
            code, message = self._note_failure()
            if empty_ok and code == cv.RES_S_OK:
                return ()
            raise BrokerError(f"{func} failed: ({code}, {message})")
        return result

    def shutdown(self) -> None:
        self._connected = False
        if self._mt5 is not None:
            try:
                self._mt5.shutdown()
            except Exception as exc:
                logger.warning("MT5 {} shutdown failed: {!r}", self.config.login, exc)

    def health(self) -> BrokerHealth:
        try:
            self._ensure()
            terminal = self.mt5.terminal_info()
            account = self.mt5.account_info()
        except Exception as exc:
            self._connected = False
            return BrokerHealth(False, str(exc))
        if terminal is None or account is None:
            code, message = self._note_failure()
            return BrokerHealth(False, f"terminal not answering: ({code}, {message})")
        trade_allowed = bool(terminal.trade_allowed) and bool(account.trade_allowed)
        detail = "ok" if terminal.connected else "terminal not connected to the trade server"
        if terminal.connected and not trade_allowed:
            detail = "connected, but trading is disabled"
        return BrokerHealth(
            bool(terminal.connected),
            detail,
            {"login": str(account.login), "server": str(account.server), "trade_allowed": str(trade_allowed),
             "build": str(terminal.build), "ping_ms": str(int(terminal.ping_last) // 1000)},
        )  # fmt: skip

    def account(self) -> AccountSnapshot:
        a = self._query("account_info")
        d = int(a.currency_digits)
        return AccountSnapshot(
            login=str(a.login), balance=cv.dec(a.balance, d), equity=cv.dec(a.equity, d),
            margin=cv.dec(a.margin, d), free_margin=cv.dec(a.margin_free, d), currency=str(a.currency),
            hedging=int(a.margin_mode) == cv.MARGIN_MODE_HEDGING,
        )  # fmt: skip

    def symbol_spec(self, symbol: str) -> SymbolSpec | None:
        cached = self._specs.get(symbol)
        if cached is not None and time.monotonic() - cached[0] < self.config.spec_ttl:
            return cached[1]
        self._ensure()
        if not self._raw("symbol_select", symbol, True):
            code, message = self._note_failure()
            if code in cv.IPC_ERRORS:
                raise BrokerError(f"symbol_select failed: ({code}, {message})")
            return None
        info = self._raw("symbol_info", symbol)
        if info is None:
            code, message = self._note_failure()
            if code in cv.IPC_ERRORS:
                raise BrokerError(f"symbol_info failed: ({code}, {message})")
            return None
        spec = cv.spec_from_info(info, self.k)
        self._specs[symbol] = (time.monotonic(), spec)
        return spec

    def _digits(self, symbol: str) -> tuple[int, int]:
        spec = self.symbol_spec(symbol)
        if spec is None:
            return 8, 8
        return spec.digits, cv.step_digits(spec.volume_step)

    def tick(self, symbol: str) -> Tick:
        if self.symbol_spec(symbol) is None:
            raise BrokerError(f"unknown symbol {symbol}")
        t = self._query("symbol_info_tick", symbol)
        digits, _ = self._digits(symbol)
        return Tick(
            symbol,
            cv.dec(t.bid, digits),
            cv.dec(t.ask, digits),
            cv.utc_ms(int(t.time_msc), self.config.server_utc_offset),
        )

    def rates_h1(self, symbol: str, start_pos: int, count: int) -> Any:
        """``copy_rates_from_pos`` on H1: the module's structured array (times in UTC seconds),
        oldest first; position 0 is the forming bar. ``BrokerError`` when it cannot be read."""
        if self.symbol_spec(symbol) is None:
            raise BrokerError(f"unknown symbol {symbol}")
        rates = self._query("copy_rates_from_pos", symbol, self.mt5.TIMEFRAME_H1, start_pos, count)
        if self.config.server_utc_offset:
            rates = rates.copy()
            rates["time"] -= self.config.server_utc_offset
        return rates
