"""The simulated terminal's persistent state: one SQLite file shared by every process using it.

Path resolution, first match wins: a path given to ``initialize(path=...)`` that ends in
``.sqlite3``/``.sqlite``/``.db``; ``mt5sim.control.use_state(path)`` in this process; the
``MT5SIM_STATE`` environment variable; ``./data/mt5sim.sqlite3``.

Every state change runs in a ``BEGIN IMMEDIATE`` transaction (one writer at a time across
processes, WAL so readers never block). Connections are per thread and per path.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from mt5sim import feed
from mt5sim.specs import DEFAULT_SPECS, Spec

STATE_SUFFIXES = (".sqlite3", ".sqlite", ".db")
_process_path: str | None = None
_local = threading.local()
_schema_lock = threading.Lock()

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    login INTEGER PRIMARY KEY, password TEXT NOT NULL, server TEXT NOT NULL, name TEXT NOT NULL,
    currency TEXT NOT NULL, balance TEXT NOT NULL, leverage INTEGER NOT NULL,
    margin_mode INTEGER NOT NULL, trade_allowed INTEGER NOT NULL, company TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS selected (login INTEGER NOT NULL, symbol TEXT NOT NULL,
    PRIMARY KEY (login, symbol));
CREATE TABLE IF NOT EXISTS symbols (name TEXT PRIMARY KEY, spec TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS prices (symbol TEXT PRIMARY KEY, bid TEXT NOT NULL, ask TEXT NOT NULL,
    hold INTEGER NOT NULL, set_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS positions (
    ticket INTEGER PRIMARY KEY, login INTEGER NOT NULL, symbol TEXT NOT NULL, type INTEGER NOT NULL,
    volume TEXT NOT NULL, price_open TEXT NOT NULL, sl TEXT NOT NULL, tp TEXT NOT NULL,
    magic INTEGER NOT NULL, comment TEXT NOT NULL, reason INTEGER NOT NULL,
    time_msc INTEGER NOT NULL, time_update_msc INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    ticket INTEGER PRIMARY KEY, login INTEGER NOT NULL, symbol TEXT NOT NULL, type INTEGER NOT NULL,
    type_time INTEGER NOT NULL, type_filling INTEGER NOT NULL, state INTEGER NOT NULL,
    magic INTEGER NOT NULL, position_id INTEGER NOT NULL, reason INTEGER NOT NULL,
    volume_initial TEXT NOT NULL, volume_current TEXT NOT NULL, price_open TEXT NOT NULL,
    sl TEXT NOT NULL, tp TEXT NOT NULL, price_current TEXT NOT NULL,
    time_setup_msc INTEGER NOT NULL, time_done_msc INTEGER NOT NULL,
    time_expiration INTEGER NOT NULL, comment TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS orders_login_state ON orders (login, state);
CREATE TABLE IF NOT EXISTS deals (
    ticket INTEGER PRIMARY KEY, login INTEGER NOT NULL, order_ticket INTEGER NOT NULL,
    time_msc INTEGER NOT NULL, type INTEGER NOT NULL, entry INTEGER NOT NULL, magic INTEGER NOT NULL,
    position_id INTEGER NOT NULL, reason INTEGER NOT NULL, volume TEXT NOT NULL, price TEXT NOT NULL,
    commission TEXT NOT NULL, swap TEXT NOT NULL, profit TEXT NOT NULL, symbol TEXT NOT NULL,
    comment TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS deals_login_time ON deals (login, time_msc);
CREATE TABLE IF NOT EXISTS faults (
    id INTEGER PRIMARY KEY AUTOINCREMENT, login INTEGER, func TEXT NOT NULL, kind TEXT NOT NULL,
    remaining INTEGER, params TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stats (login INTEGER NOT NULL, key TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (login, key));
"""

DECIMAL_COLUMNS = frozenset(
    {"balance", "volume", "price_open", "sl", "tp", "volume_initial", "volume_current", "price_current"}
    | {"price", "commission", "swap", "profit", "bid", "ask"}
)
FIRST_ORDER_TICKET = 500_000_001
FIRST_DEAL_TICKET = 300_000_001


def set_process_path(path: str | os.PathLike[str] | None) -> None:
    global _process_path
    _process_path = None if path is None else str(path)


def resolve_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit is not None and str(explicit).lower().endswith(STATE_SUFFIXES):
        return Path(explicit)
    if _process_path is not None:
        return Path(_process_path)
    env = os.environ.get("MT5SIM_STATE")
    if env:
        return Path(env)
    return Path("data") / "mt5sim.sqlite3"


def connect(path: Path) -> sqlite3.Connection:
    """This thread's connection to the state file at ``path`` (created with its schema if new)."""
    conns: dict[str, sqlite3.Connection] = getattr(_local, "conns", None) or {}
    _local.conns = conns
    key = str(path.resolve())
    conn = conns.get(key)
    if conn is not None:
        return conn
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(key, timeout=30.0, isolation_level=None, check_same_thread=True)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 30000")
    with _schema_lock:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.executescript(SCHEMA)
    conns[key] = conn
    return conn


def close_thread_connections() -> None:
    """Close this thread's connections (they are reopened on next use)."""
    conns: dict[str, sqlite3.Connection] = getattr(_local, "conns", None) or {}
    for conn in conns.values():
        conn.close()
    conns.clear()


@contextmanager
def write(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction; nested uses join the outer one."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def row_dict(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for key in out.keys() & DECIMAL_COLUMNS:
        out[key] = Decimal(out[key])
    return out


# ---- meta: clock, seed, switches, ticket counters -------------------------------------------


def get_meta(conn: sqlite3.Connection, key: str, default: str | None = None) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return default if row is None else str(row[0])


def set_meta(conn: sqlite3.Connection, key: str, value: str | None) -> None:
    if value is None:
        conn.execute("DELETE FROM meta WHERE key = ?", (key,))
    else:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def now_ms(conn: sqlite3.Connection) -> int:
    """The simulated clock: a fixed time if one is set, else the wall clock plus an offset."""
    fixed = get_meta(conn, "clock_fixed_ms")
    if fixed is not None:
        return int(fixed)
    return int(time.time() * 1000) + int(get_meta(conn, "clock_offset_ms", "0") or 0)


def seed(conn: sqlite3.Connection) -> int:
    return int(get_meta(conn, "seed") or feed.default_seed())


def ignore_hours(conn: sqlite3.Connection) -> bool:
    flag = get_meta(conn, "ignore_market_hours")
    if flag is None:
        return os.environ.get("MT5SIM_IGNORE_MARKET_HOURS", "") in {"1", "true", "yes"}
    return flag == "1"


def next_ticket(conn: sqlite3.Connection, kind: str) -> int:
    first = FIRST_ORDER_TICKET if kind == "order" else FIRST_DEAL_TICKET
    key = f"next_{kind}"
    value = int(get_meta(conn, key) or first)
    set_meta(conn, key, str(value + 1))
    return value


# ---- symbols and prices ----------------------------------------------------------------------


def specs(conn: sqlite3.Connection) -> dict[str, Spec]:
    out = dict(DEFAULT_SPECS)
    for row in conn.execute("SELECT name, spec FROM symbols"):
        data = json.loads(row["spec"])
        like = data.pop("like", None) or "EURUSD"
        base = out.get(row["name"]) or DEFAULT_SPECS[like]
        out[row["name"]] = base.with_overrides({**data, "name": row["name"]})
    return out


def quote(conn: sqlite3.Connection, spec: Spec, at_ms: int) -> tuple[Decimal, Decimal]:
    """The price the terminal sees: a pushed price if any (held, or walking from it), else the feed."""
    row = conn.execute("SELECT * FROM prices WHERE symbol = ?", (spec.name,)).fetchone()
    sd = seed(conn)
    if row is None:
        return feed.quote_for(spec, at_ms / 1000, sd)
    bid, ask = Decimal(row["bid"]), Decimal(row["ask"])
    if row["hold"]:
        return bid, ask
    drift = feed.walk_mid(spec, at_ms / 1000, sd) - feed.walk_mid(spec, row["set_ms"] / 1000, sd)
    moved = feed.to_grid(bid + drift, spec)
    return moved, moved + (ask - bid)


# ---- faults and stats ------------------------------------------------------------------------


def add_fault(
    conn: sqlite3.Connection,
    kind: str,
    *,
    login: int | None = None,
    func: str = "order_send",
    count: int | None = 1,
    **params: Any,
) -> None:
    with write(conn):
        conn.execute(
            "INSERT INTO faults (login, func, kind, remaining, params) VALUES (?, ?, ?, ?, ?)",
            (login, func, kind, count, json.dumps(params)),
        )


def peek_fault(conn: sqlite3.Connection, kind: str, login: int | None, func: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT * FROM faults WHERE kind = ? AND (login IS NULL OR login = ?) AND (func = ? OR func = '*') "
        "AND (remaining IS NULL OR remaining > 0) ORDER BY id LIMIT 1",
        (kind, login, func),
    ).fetchone()
    if row is None:
        return None
    return {"id": row["id"], "remaining": row["remaining"], **json.loads(row["params"])}


def take_fault(conn: sqlite3.Connection, kind: str, login: int | None, func: str) -> dict[str, Any] | None:
    """Consume one use of the oldest matching fault (faults with no count never run out)."""
    fault = peek_fault(conn, kind, login, func)  # the common case, no fault: no write transaction
    if fault is None or fault["remaining"] is None:
        return fault
    with write(conn):
        fault = peek_fault(conn, kind, login, func)
        if fault is not None and fault["remaining"] is not None:
            if fault["remaining"] <= 1:
                conn.execute("DELETE FROM faults WHERE id = ?", (fault["id"],))
            else:
                conn.execute("UPDATE faults SET remaining = remaining - 1 WHERE id = ?", (fault["id"],))
        return fault


def bump(conn: sqlite3.Connection, login: int, key: str, amount: int = 1) -> None:
    with write(conn):
        conn.execute(
            "INSERT INTO stats (login, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (login, key) DO UPDATE SET value = value + excluded.value",
            (login, key, amount),
        )


def raise_to(conn: sqlite3.Connection, login: int, key: str, value: int) -> None:
    with write(conn):
        conn.execute(
            "INSERT INTO stats (login, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (login, key) DO UPDATE SET value = max(value, excluded.value)",
            (login, key, value),
        )


def stats(conn: sqlite3.Connection, login: int) -> dict[str, int]:
    rows = conn.execute("SELECT key, value FROM stats WHERE login = ?", (login,))
    return {row["key"]: int(row["value"]) for row in rows}
