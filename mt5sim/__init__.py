"""mt5sim: a simulated MetaTrader 5 terminal with the ``MetaTrader5`` module's surface.

Import it where ``MetaTrader5`` would be imported (``MT5_MODULE=mt5sim``). Functions return
named tuples shaped like the real package's (floats for prices and money), ``None``/``False``
plus ``last_error()`` on failure. State lives in a SQLite file (see ``mt5sim.store``), so
several processes share one simulated trade server; ``mt5sim.control`` drives it (accounts,
prices, clock, faults) and ``mt5sim.feed`` gives prices without any terminal.

Unlike the real package, the session is per thread: each thread that calls ``initialize`` /
``login`` has its own terminal session, so one process can serve many accounts at once
(``MULTI_ACCOUNT = True``). ``Terminal()`` gives an explicit session object with the same methods.
"""

from __future__ import annotations

import threading
from typing import Any

from mt5sim.constants import *  # noqa: F403  (the MetaTrader5 constants)
from mt5sim.terminal import Terminal

__version__ = "5.0.45"
__author__ = "tradebot mt5sim"
MULTI_ACCOUNT = True

_local = threading.local()


def current_terminal() -> Terminal:
    """This thread's session (created on first use)."""
    terminal = getattr(_local, "terminal", None)
    if terminal is None:
        terminal = _local.terminal = Terminal()
    return terminal


def initialize(path: str | None = None, **kwargs: Any) -> bool:
    return current_terminal().initialize(path, **kwargs)


def login(login: int, password: str = "", server: str = "", timeout: int = 60000) -> bool:
    return current_terminal().login(login, password=password, server=server, timeout=timeout)


def shutdown() -> None:
    current_terminal().shutdown()


def last_error() -> tuple[int, str]:
    return current_terminal().last_error()


def version() -> Any:
    return current_terminal().version()


def terminal_info() -> Any:
    return current_terminal().terminal_info()


def account_info() -> Any:
    return current_terminal().account_info()


def symbols_total() -> int:
    return current_terminal().symbols_total()


def symbols_get(group: str | None = None) -> Any:
    return current_terminal().symbols_get(group)


def symbol_info(symbol: str) -> Any:
    return current_terminal().symbol_info(symbol)


def symbol_info_tick(symbol: str) -> Any:
    return current_terminal().symbol_info_tick(symbol)


def symbol_select(symbol: str, enable: bool = True) -> bool:
    return current_terminal().symbol_select(symbol, enable)


def order_check(request: dict[str, Any]) -> Any:
    return current_terminal().order_check(request)


def order_send(request: dict[str, Any]) -> Any:
    return current_terminal().order_send(request)


def positions_total() -> int:
    return current_terminal().positions_total()


def positions_get(symbol: str | None = None, group: str | None = None, ticket: int | None = None) -> Any:
    return current_terminal().positions_get(symbol=symbol, group=group, ticket=ticket)


def orders_total() -> int:
    return current_terminal().orders_total()


def orders_get(symbol: str | None = None, group: str | None = None, ticket: int | None = None) -> Any:
    return current_terminal().orders_get(symbol=symbol, group=group, ticket=ticket)


def history_orders_total(date_from: Any, date_to: Any) -> int:
    return current_terminal().history_orders_total(date_from, date_to)


def history_orders_get(*args: Any, **kwargs: Any) -> Any:
    return current_terminal().history_orders_get(*args, **kwargs)


def history_deals_total(date_from: Any, date_to: Any) -> int:
    return current_terminal().history_deals_total(date_from, date_to)


def history_deals_get(*args: Any, **kwargs: Any) -> Any:
    return current_terminal().history_deals_get(*args, **kwargs)


def copy_rates_from_pos(symbol: str, timeframe: int, start_pos: int, count: int) -> Any:
    return current_terminal().copy_rates_from_pos(symbol, timeframe, start_pos, count)
