"""Control of the simulated trade server (beyond the MetaTrader5 surface).

Everything here writes the shared state file, so a test in one process can set prices, move
the clock or inject faults that a terminal in another process then sees. Each function takes
``state=`` (a path) or uses the same resolution as the terminal (see ``mt5sim.store``).

Faults (``login=None`` means every account; ``count=None`` means until cleared):
- ``timeout_after_execute``: order_send executes, then returns None, last_error (-10005, 'IPC timeout').
- ``stall_after_execute``: order_send executes (committed), then answers only after ``seconds``.
- ``disconnect`` / ``reconnect``: every call returns None/False with (-10004, 'No IPC connection').
- ``none_result``: order_send returns None without executing.
- ``requote``: market order_send answers TRADE_RETCODE_REQUOTE with fresh bid/ask, not executed.
- ``force_retcode``: order_send answers the given retcode without executing.
- ``partial_fill``: only ``fraction`` of the volume is available: IOC/RETURN fill that much
  (TRADE_RETCODE_DONE_PARTIAL), FOK is rejected (TRADE_RETCODE_REJECT).
- ``latency``: every call of ``func`` ('*' = all) sleeps ``seconds`` first.
- ``fail_initialize``: initialize/login returns False with the given last_error.
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from mt5sim import constants as c
from mt5sim import feed, store
from mt5sim.book import Book
from mt5sim.specs import DEFAULT_SELECTED

StatePath = str | os.PathLike[str] | None
_MARGIN_MODES = frozenset(
    {
        c.ACCOUNT_MARGIN_MODE_RETAIL_NETTING,
        c.ACCOUNT_MARGIN_MODE_EXCHANGE,
        c.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
    }
)


def _conn(state: StatePath) -> sqlite3.Connection:
    return store.connect(state_path(state))


def use_state(path: StatePath) -> None:
    """Make ``path`` this process's default state file (None: back to ``MT5SIM_STATE``)."""
    store.set_process_path(path)


def close() -> None:
    """Close this thread's connections to state files (reopened on next use)."""
    store.close_thread_connections()


def state_path(state: StatePath = None) -> Path:
    return Path(state) if state is not None else store.resolve_path()


def reset(state: StatePath = None) -> None:
    """Forget every account, order, deal, price, fault and setting."""
    conn = _conn(state)
    with store.write(conn):
        for table in ("meta", "accounts", "selected", "symbols", "prices", "positions", "orders", "deals"):
            conn.execute(f"DELETE FROM {table}")  # noqa: S608
        conn.execute("DELETE FROM faults")
        conn.execute("DELETE FROM stats")


# ---- accounts --------------------------------------------------------------------------------


def create_account(
    login: int,
    password: str,
    *,
    server: str = "MT5Sim-Demo",
    balance: Decimal | int | str = 10000,
    leverage: int = 100,
    currency: str = "USD",
    name: str | None = None,
    company: str = "MT5Sim Ltd.",
    margin_mode: int = c.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
    state: StatePath = None,
) -> None:
    """A demo account with an initial deposit (a balance deal), like a broker opens one.

    ``margin_mode``: 2 hedging (the default: one position per order), 0 netting or 1 exchange
    (one position per symbol; see ``mt5sim.netting``)."""
    if margin_mode not in _MARGIN_MODES:
        raise ValueError(f"margin_mode must be one of {sorted(_MARGIN_MODES)}, got {margin_mode}")
    conn = _conn(state)
    with store.write(conn):
        if conn.execute("SELECT 1 FROM accounts WHERE login = ?", (login,)).fetchone():
            raise ValueError(f"account {login} exists")
        conn.execute(
            "INSERT INTO accounts VALUES (?, ?, ?, ?, ?, '0', ?, ?, 1, ?)",
            (login, password, server, name or f"Demo {login}", currency.upper(), leverage,
             margin_mode, company),
        )  # fmt: skip
        conn.executemany("INSERT INTO selected VALUES (?, ?)", [(login, s) for s in DEFAULT_SELECTED])
    deposit(login, Decimal(str(balance)), comment="Initial deposit", state=state)


def deposit(
    login: int, amount: Decimal | int | str, *, comment: str = "Deposit", state: StatePath = None
) -> None:
    conn = _conn(state)
    with store.write(conn):
        book = Book.open(conn, login)
        value = Decimal(str(amount))
        book.add_deal(order_ticket=0, type=c.DEAL_TYPE_BALANCE, entry=c.DEAL_ENTRY_IN, magic=0, position_id=0,
                      reason=c.DEAL_REASON_CLIENT, volume=Decimal(0), price=Decimal(0), profit=value,
                      symbol="", comment=comment)  # fmt: skip
        conn.execute(
            "UPDATE accounts SET balance = ? WHERE login = ?", (str(book.account()["balance"] + value), login)
        )


def set_account(
    login: int,
    *,
    trade_allowed: bool | None = None,
    leverage: int | None = None,
    password: str | None = None,
    margin_mode: int | None = None,
    state: StatePath = None,
) -> None:
    if margin_mode is not None and margin_mode not in _MARGIN_MODES:
        raise ValueError(f"margin_mode must be one of {sorted(_MARGIN_MODES)}, got {margin_mode}")
    conn = _conn(state)
    with store.write(conn):
        for column, value in (
            ("trade_allowed", trade_allowed),
            ("leverage", leverage),
            ("password", password),
            ("margin_mode", margin_mode),
        ):
            if value is not None:
                conn.execute(f"UPDATE accounts SET {column} = ? WHERE login = ?", (value, login))  # noqa: S608


# ---- a person at the terminal -----------------------------------------------------------------


def close_by_hand(
    login: int, ticket: int, volume: Decimal | str | None = None, *, state: StatePath = None
) -> int:
    """Close a position (all, or ``volume`` of it) at the market as a person would in the terminal:
    an out-deal with reason CLIENT and no magic. Returns the deal ticket."""
    conn = _conn(state)
    with store.write(conn):
        book = Book.open(conn, login)
        book.evaluate()
        pos = next((p for p in book.positions() if p["ticket"] == ticket), None)
        if pos is None:
            raise LookupError(f"account {login} has no open position {ticket}")
        amount = pos["volume"] if volume is None else Decimal(str(volume))
        if not 0 < amount <= pos["volume"]:
            raise ValueError(f"volume must be above 0 and at most {pos['volume']}, got {amount}")
        _order, deal = book.close(
            pos, amount, book.close_price(pos), reason=c.DEAL_REASON_CLIENT, comment="", magic=0
        )
    return deal


def move_stop_by_hand(login: int, ticket: int, sl: Decimal | str, *, state: StatePath = None) -> None:
    """Set a position's stop loss as a person would in the terminal (no trade request, no checks)."""
    conn = _conn(state)
    with store.write(conn):
        book = Book.open(conn, login)
        if not any(p["ticket"] == ticket for p in book.positions()):
            raise LookupError(f"account {login} has no open position {ticket}")
        conn.execute(
            "UPDATE positions SET sl = ?, time_update_msc = ? WHERE ticket = ?",
            (str(Decimal(str(sl))), book.now, ticket),
        )


# ---- market ----------------------------------------------------------------------------------


def set_price(
    symbol: str, bid: Decimal | str | float, ask: Decimal | str | float | None = None, *,
    hold: bool = True, state: StatePath = None,
) -> None:  # fmt: skip
    """Push a price. ``hold``: it stays until cleared; else the walk continues from it."""
    conn = _conn(state)
    spec = store.specs(conn)[symbol]
    bid_d = Decimal(str(bid)).quantize(spec.point)
    ask_d = Decimal(str(ask)).quantize(spec.point) if ask is not None else bid_d + feed.spread_of(spec)
    with store.write(conn):
        conn.execute(
            "INSERT OR REPLACE INTO prices VALUES (?, ?, ?, ?, ?)",
            (symbol, str(bid_d), str(ask_d), int(hold), store.now_ms(conn)),
        )


def clear_price(symbol: str | None = None, *, state: StatePath = None) -> None:
    conn = _conn(state)
    with store.write(conn):
        if symbol is None:
            conn.execute("DELETE FROM prices")
        else:
            conn.execute("DELETE FROM prices WHERE symbol = ?", (symbol,))


def quote(symbol: str, *, state: StatePath = None) -> tuple[Decimal, Decimal]:
    """(bid, ask) as the simulated terminal sees it now (pushed prices included)."""
    conn = _conn(state)
    return store.quote(conn, store.specs(conn)[symbol], store.now_ms(conn))


def set_symbol(name: str, *, like: str | None = None, state: StatePath = None, **fields: Any) -> None:
    """Change a symbol's spec (e.g. ``trade_mode=0``, ``stops_level=50``) or add one ``like`` another."""
    conn = _conn(state)
    current = store.specs(conn)
    base = current.get(name) or current[like or "EURUSD"]
    base.with_overrides(fields)  # validates the field names now
    with store.write(conn):
        row = conn.execute("SELECT spec FROM symbols WHERE name = ?", (name,)).fetchone()
        data = json.loads(row["spec"]) if row else ({"like": like or "EURUSD"} if name not in current else {})
        data.update({k: str(v) if isinstance(v, Decimal) else v for k, v in fields.items()})
        conn.execute("INSERT OR REPLACE INTO symbols VALUES (?, ?)", (name, json.dumps(data)))


def set_seed(seed: int, *, state: StatePath = None) -> None:
    conn = _conn(state)
    with store.write(conn):
        store.set_meta(conn, "seed", str(seed))


def ignore_market_hours(flag: bool = True, *, state: StatePath = None) -> None:
    conn = _conn(state)
    with store.write(conn):
        store.set_meta(conn, "ignore_market_hours", "1" if flag else "0")


def set_bar_clock(seconds_per_hour: float | None, *, state: StatePath = None) -> None:
    """Close an H1 bar every ``seconds_per_hour`` real seconds from now on (None: real time).

    Bars keep hourly labels and the feed's prices (see ``mt5sim.bars``); quotes are unchanged.
    """
    conn = _conn(state)
    with store.write(conn):
        if seconds_per_hour is None:
            store.set_meta(conn, "bar_clock", None)
            return
        if not seconds_per_hour > 0:
            raise ValueError(f"seconds_per_hour must be > 0, got {seconds_per_hour}")
        origin = store.now_ms(conn) / 1000
        store.set_meta(
            conn, "bar_clock", json.dumps({"origin": origin, "seconds_per_hour": seconds_per_hour})
        )


def set_terminal_trade_allowed(flag: bool, *, state: StatePath = None) -> None:
    conn = _conn(state)
    with store.write(conn):
        store.set_meta(conn, "terminal_trade_allowed", "1" if flag else "0")


# ---- clock -----------------------------------------------------------------------------------


def now(*, state: StatePath = None) -> datetime:
    return datetime.fromtimestamp(store.now_ms(_conn(state)) / 1000, tz=UTC)


def set_time(at: datetime | None, *, state: StatePath = None) -> None:
    """Freeze the simulated clock at ``at`` (aware), or None to return to the wall clock."""
    conn = _conn(state)
    with store.write(conn):
        store.set_meta(conn, "clock_offset_ms", None)
        store.set_meta(conn, "clock_fixed_ms", None if at is None else str(int(at.timestamp() * 1000)))


def advance_time(seconds: float, *, state: StatePath = None) -> None:
    conn = _conn(state)
    with store.write(conn):
        fixed = store.get_meta(conn, "clock_fixed_ms")
        if fixed is not None:
            store.set_meta(conn, "clock_fixed_ms", str(int(fixed) + int(seconds * 1000)))
        else:
            offset = int(store.get_meta(conn, "clock_offset_ms", "0") or 0)
            store.set_meta(conn, "clock_offset_ms", str(offset + int(seconds * 1000)))


# ---- faults ----------------------------------------------------------------------------------


def timeout_after_execute(
    count: int | None = 1, *, login: int | None = None, state: StatePath = None
) -> None:
    store.add_fault(_conn(state), "timeout_after_execute", login=login, count=count)


def stall_after_execute(
    seconds: float, count: int | None = 1, *, login: int | None = None, state: StatePath = None
) -> None:
    store.add_fault(_conn(state), "stall_after_execute", login=login, count=count, seconds=seconds)


def disconnect(*, login: int | None = None, state: StatePath = None) -> None:
    store.add_fault(_conn(state), "disconnect", login=login, func="*", count=None)


def reconnect(*, login: int | None = None, state: StatePath = None) -> None:
    conn = _conn(state)
    with store.write(conn):
        if login is None:
            conn.execute("DELETE FROM faults WHERE kind = 'disconnect'")
        else:
            conn.execute("DELETE FROM faults WHERE kind = 'disconnect' AND login = ?", (login,))


def none_result(
    count: int | None = 1, *, login: int | None = None, code: int = c.RES_E_FAIL,
    message: str = "Terminal: Call failed", state: StatePath = None,
) -> None:  # fmt: skip
    store.add_fault(_conn(state), "none_result", login=login, count=count, code=code, message=message)


def requote(count: int | None = 1, *, login: int | None = None, state: StatePath = None) -> None:
    store.add_fault(_conn(state), "requote", login=login, count=count)


def force_retcode(
    retcode: int, count: int | None = 1, *, login: int | None = None, state: StatePath = None
) -> None:
    store.add_fault(_conn(state), "force_retcode", login=login, count=count, retcode=retcode)


def partial_fill(
    fraction: float | str, count: int | None = 1, *, login: int | None = None, state: StatePath = None
) -> None:
    store.add_fault(_conn(state), "partial", login=login, count=count, fraction=str(fraction))


def latency(
    seconds: float,
    *,
    func: str = "*",
    login: int | None = None,
    count: int | None = None,
    state: StatePath = None,
) -> None:
    """Add per-call latency (``seconds=0`` removes the latency faults of that login and func)."""
    conn = _conn(state)
    if seconds <= 0:
        with store.write(conn):
            conn.execute(
                "DELETE FROM faults WHERE kind = 'latency' AND func = ? AND login IS ?", (func, login)
            )
        return
    store.add_fault(conn, "latency", login=login, func=func, count=count, seconds=seconds)


def fail_initialize(
    count: int | None = 1, *, login: int | None = None, func: str = "initialize",
    code: int = c.RES_E_INTERNAL_FAIL_INIT, message: str = "IPC initialize failed", state: StatePath = None,
) -> None:  # fmt: skip
    store.add_fault(
        _conn(state), "init_fail", login=login, func=func, count=count, code=code, message=message
    )


def clear_faults(*, state: StatePath = None) -> None:
    conn = _conn(state)
    with store.write(conn):
        conn.execute("DELETE FROM faults")


# ---- inspection ------------------------------------------------------------------------------


def stats(login: int, *, state: StatePath = None) -> dict[str, int]:
    """Counters: order_send_calls, concurrent_sends, max_inflight_sends, initialize_calls."""
    return store.stats(_conn(state), login)


def dump(*, state: StatePath = None) -> dict[str, Any]:
    """All state, after bringing every account up to the simulated clock (SL/TP, triggers, expiry)."""
    conn = _conn(state)
    out: dict[str, Any] = {"accounts": {}}
    with store.write(conn):
        for row in conn.execute("SELECT login FROM accounts ORDER BY login").fetchall():
            book = Book.open(conn, row["login"])
            book.evaluate()
            out["accounts"][row["login"]] = {**book.account(), **book.state()}
        for table in ("positions", "orders", "deals", "faults", "prices", "symbols"):
            out[table] = [store.row_dict(r) for r in conn.execute(f"SELECT * FROM {table}")]  # noqa: S608
        out["meta"] = {r["key"]: r["value"] for r in conn.execute("SELECT * FROM meta")}
    return out
