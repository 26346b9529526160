"""A terminal session: connection, login, account and market data (``mt5sim.Terminal``'s base).

``Session`` holds what the real package keeps as module-level state (state file, login, last
error). Every call first applies the latency and disconnect faults of the state file.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from mt5sim import constants as c
from mt5sim import records as r
from mt5sim import store
from mt5sim.book import Book
from mt5sim.specs import DEFAULT_SELECTED, Spec
from mt5sim.views import symbol_record, tick_record

BUILD = 4755
NO_IPC = (c.RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")
NOT_LOGGED_IN = (c.RES_E_AUTH_FAILED, "Terminal: Not logged in")
AUTH_FAILED = (c.RES_E_AUTH_FAILED, "Terminal: Authorization failed")
NOT_FOUND = (c.RES_E_NOT_FOUND, "Terminal: Not found")
OK = (c.RES_S_OK, "Success")


def group_match(symbol: str, group: str | None) -> bool:
    """MT5 group syntax: comma-separated wildcards, later ones win, ``!`` excludes."""
    if not group:
        return True
    matched = False
    for raw in group.split(","):
        pattern = raw.strip()
        if pattern.startswith("!"):
            if fnmatchcase(symbol, pattern[1:]):
                matched = False
        elif fnmatchcase(symbol, pattern):
            matched = True
    return matched


class Session:
    """Session state and the non-trading calls."""

    def __init__(self) -> None:
        self._path: Path | None = None
        self._connected = False
        self._login: int | None = None
        self._error: tuple[int, str] = OK
        self._watch: set[str] = set(DEFAULT_SELECTED)

    def _fail(self, error: tuple[int, str]) -> None:
        self._error = error

    def _conn(self) -> sqlite3.Connection:
        if self._path is None:
            self._path = store.resolve_path()
        return store.connect(self._path)

    def _enter(self, func: str, *, need_login: bool = True) -> sqlite3.Connection | None:
        """Apply latency and disconnect faults; the connection when the call may proceed."""
        if not self._connected:
            self._fail(NO_IPC)
            return None
        conn = self._conn()
        latency = store.take_fault(conn, "latency", self._login, func)
        if latency is not None:
            time.sleep(float(latency["seconds"]))
        if store.peek_fault(conn, "disconnect", self._login, func) is not None:
            self._fail(NO_IPC)
            return None
        if need_login and self._login is None:
            self._fail(NOT_LOGGED_IN)
            return None
        self._error = OK
        return conn

    @contextmanager
    def _book(self, conn: sqlite3.Connection) -> Iterator[Book]:
        assert self._login is not None
        with store.write(conn):
            book = Book.open(conn, self._login)
            book.evaluate()
            yield book

    def initialize(
        self,
        path: str | None = None,
        *,
        login: int | None = None,
        password: str = "",
        server: str = "",
        timeout: int = 60000,
        portable: bool = False,
    ) -> bool:
        self._path = store.resolve_path(path)
        self._login = None
        conn = self._conn()
        if login is not None:
            store.bump(conn, int(login), "initialize_calls")
        failure = store.take_fault(conn, "init_fail", login, "initialize")
        if failure is not None or store.peek_fault(conn, "disconnect", login, "initialize") is not None:
            self._connected = False
            self._fail(
                (int(failure.get("code", -10003)), str(failure.get("message", "IPC initialize failed")))
                if failure
                else NO_IPC
            )
            return False
        self._connected = True
        self._error = OK
        if login is not None and not self.login(login, password=password, server=server, timeout=timeout):
            self._connected = False
            return False
        return True

    def login(self, login: int, password: str = "", server: str = "", timeout: int = 60000) -> bool:
        conn = self._enter("login", need_login=False)
        if conn is None:
            return False
        failure = store.take_fault(conn, "init_fail", int(login), "login")
        if failure is not None:
            self._fail(
                (int(failure.get("code", -10003)), str(failure.get("message", "IPC initialize failed")))
            )
            return False
        row = conn.execute("SELECT password, server FROM accounts WHERE login = ?", (int(login),)).fetchone()
        if row is None or row["password"] != password or (server and row["server"] != server):
            self._fail(AUTH_FAILED)
            return False
        self._login = int(login)
        return True

    def shutdown(self) -> None:
        self._connected = False
        self._login = None
        self._error = OK

    def last_error(self) -> tuple[int, str]:
        return self._error

    def version(self) -> tuple[int, int, str] | None:
        if self._enter("version", need_login=False) is None:
            return None
        return (500, BUILD, "1 May 2026")

    def terminal_info(self) -> r.TerminalInfo | None:
        conn = self._enter("terminal_info", need_login=False)
        if conn is None:
            return None
        folder = str(self._conn_path().parent.resolve())
        return r.TerminalInfo(
            False, False, self._login is not None, False,
            store.get_meta(conn, "terminal_trade_allowed", "1") == "1", False, False, False, False, False,
            BUILD, 100000, 0, 1000, 0.0, 0.0, "MT5Sim Ltd.", "MT5Sim Terminal", "English",
            folder, folder, folder,
        )  # fmt: skip

    def _conn_path(self) -> Path:
        return self._path or store.resolve_path()

    def account_info(self) -> r.AccountInfo | None:
        conn = self._enter("account_info")
        if conn is None:
            return None
        with self._book(conn) as book:
            a, s = book.account(), book.state()
        return r.AccountInfo(
            a["login"], c.ACCOUNT_TRADE_MODE_DEMO, a["leverage"], 200, c.ACCOUNT_STOPOUT_MODE_PERCENT,
            bool(a["trade_allowed"]), True, a["margin_mode"], 2, False, float(s["balance"]), 0.0,
            float(s["profit"]), float(s["equity"]), float(s["margin"]), float(s["margin_free"]),
            float(s["margin_level"]), 50.0, 30.0, 0.0, 0.0, 0.0, 0.0, 0.0, a["name"], a["server"],
            a["currency"], a["company"],
        )  # fmt: skip

    def _selected(self, conn: sqlite3.Connection) -> set[str]:
        if self._login is None:
            return self._watch
        rows = conn.execute("SELECT symbol FROM selected WHERE login = ?", (self._login,))
        return {row["symbol"] for row in rows}

    def _spec(self, conn: sqlite3.Connection, symbol: str) -> Spec | None:
        spec = store.specs(conn).get(symbol)
        if spec is None:
            self._fail(NOT_FOUND)
        return spec

    def symbols_total(self) -> int:
        conn = self._enter("symbols_total", need_login=False)
        return 0 if conn is None else len(store.specs(conn))

    def symbols_get(self, group: str | None = None) -> tuple[r.SymbolInfo, ...] | None:
        conn = self._enter("symbols_get", need_login=False)
        if conn is None:
            return None
        names = sorted(n for n in store.specs(conn) if group_match(n, group))
        out = tuple(self.symbol_info(n) for n in names)
        return tuple(x for x in out if x is not None)

    def symbol_info(self, symbol: str) -> r.SymbolInfo | None:
        conn = self._enter("symbol_info", need_login=False)
        if conn is None:
            return None
        spec = self._spec(conn, symbol)
        if spec is None:
            return None
        selected = symbol in self._selected(conn)
        book = Book.open(conn, self._login or 0)
        currency = "USD"
        if self._login is not None:
            currency = book.account()["currency"]
        tick_value = book.convert(spec.tick_size * spec.contract_size, spec.currency_profit, currency)
        bid, ask = book.quote(symbol) if selected else (Decimal(0), Decimal(0))
        return symbol_record(spec, selected, bid, ask, book.now, tick_value)

    def symbol_info_tick(self, symbol: str) -> r.Tick | None:
        conn = self._enter("symbol_info_tick", need_login=False)
        if conn is None:
            return None
        spec = self._spec(conn, symbol)
        if spec is None:
            return None
        if symbol not in self._selected(conn):
            self._fail((c.RES_E_FAIL, "Terminal: Call failed"))
            return None
        now = store.now_ms(conn)
        bid, ask = store.quote(conn, spec, now)
        return tick_record(bid, ask, now)

    def symbol_select(self, symbol: str, enable: bool = True) -> bool:
        conn = self._enter("symbol_select", need_login=False)
        if conn is None or self._spec(conn, symbol) is None:
            return False
        if self._login is None:
            (self._watch.add if enable else self._watch.discard)(symbol)
            return True
        with store.write(conn):
            if enable:
                conn.execute("INSERT OR IGNORE INTO selected VALUES (?, ?)", (self._login, symbol))
                return True
            busy = conn.execute(
                "SELECT 1 FROM positions WHERE login = ? AND symbol = ? UNION "
                "SELECT 1 FROM orders WHERE login = ? AND symbol = ? AND state = ?",
                (self._login, symbol, self._login, symbol, c.ORDER_STATE_PLACED),
            ).fetchone()
            if busy is not None:
                self._fail((c.RES_E_FAIL, "Terminal: Call failed"))
                return False
            conn.execute("DELETE FROM selected WHERE login = ? AND symbol = ?", (self._login, symbol))
            return True

    def copy_rates_from_pos(self, symbol: str, timeframe: int, start_pos: int, count: int) -> Any:
        """Bars back from the forming one (position 0), oldest first (see ``mt5sim.bars``)."""
        from mt5sim.bars import MAX_COUNT, TIMEFRAME_SECONDS, rates_from_pos

        conn = self._enter("copy_rates_from_pos", need_login=False)
        if conn is None:
            return None
        spec = self._spec(conn, symbol)
        if spec is None:
            return None
        if timeframe not in TIMEFRAME_SECONDS or start_pos < 0 or not 0 < count <= MAX_COUNT:
            self._fail((c.RES_E_INVALID_PARAMS, "Invalid arguments"))
            return None
        return rates_from_pos(conn, spec, int(timeframe), int(start_pos), int(count))
