"""One terminal session: the MetaTrader5 functions, bound to a connection object.

The real package drives one terminal per process through module-level state. Here a ``Terminal``
object holds the session (state file, login, last error), and the module-level functions of
``mt5sim`` use one ``Terminal`` per thread, so several threads can each be logged in to their
own account in one process (``mt5sim.MULTI_ACCOUNT``).

``order_send`` is serialized per account and state file by a process-wide lock. Before taking
that lock it counts the calls in flight for the account; a second call arriving while one is in
flight is recorded as ``concurrent_sends`` in the state file's stats (see ``control.stats``).
"""

from __future__ import annotations

import calendar
import itertools
import threading
import time
from datetime import datetime
from decimal import Decimal
from typing import Any

from mt5sim import constants as c
from mt5sim import records as r
from mt5sim import store
from mt5sim.checks import parse_request
from mt5sim.session import NO_IPC, NOT_LOGGED_IN, Session, group_match
from mt5sim.trading import Outcome, process
from mt5sim.views import deal_record, order_record, position_record

_guard = threading.Lock()
_send_locks: dict[tuple[str, int], threading.Lock] = {}
_inflight: dict[tuple[str, int], int] = {}
_request_ids = itertools.count(1)


def _seconds(value: Any) -> int:
    """Unix seconds of a history bound: an aware datetime, a naive one read as UTC, or a number."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return calendar.timegm(value.timetuple())
        return int(value.timestamp())
    return int(value)


class Terminal(Session):
    """A MetaTrader5-compatible session; not thread-safe (use one per thread)."""

    def order_check(self, request: dict[str, Any]) -> r.OrderCheckResult | None:
        conn = self._enter("order_check")
        if conn is None:
            return None
        req, error = parse_request(request)
        if req is None:
            self._fail(error)
            return None
        with self._book(conn) as book:
            outcome = process(book, req, dry_run=True)
            s = book.state()
        margin = s["margin"] + outcome.margin
        free = s["equity"] - margin
        level = (s["equity"] / margin * 100).quantize(Decimal("0.01")) if margin else Decimal(0)
        return r.OrderCheckResult(
            outcome.retcode, float(s["balance"]), float(s["equity"]), float(s["profit"]), float(margin),
            float(free), float(level), c.RETCODE_COMMENTS.get(outcome.retcode, "Error"), self._echo(request),
        )  # fmt: skip

    @staticmethod
    def _echo(request: dict[str, Any]) -> r.TradeRequest:
        return r.TradeRequest(
            *(request.get(f, "" if f in ("symbol", "comment") else 0) for f in r.TRADE_REQUEST_FIELDS)
        )

    def order_send(self, request: dict[str, Any]) -> r.OrderSendResult | None:
        if not self._connected or self._login is None:
            self._fail(NO_IPC if not self._connected else NOT_LOGGED_IN)
            return None
        conn = self._conn()
        key = (str(self._conn_path().resolve()), self._login)
        with _guard:
            inflight = _inflight[key] = _inflight.get(key, 0) + 1
            lock = _send_locks.setdefault(key, threading.Lock())
        try:
            store.bump(conn, self._login, "order_send_calls")
            store.raise_to(conn, self._login, "max_inflight_sends", inflight)
            if inflight > 1:
                store.bump(conn, self._login, "concurrent_sends")
            with lock:
                return self._send_locked(request)
        finally:
            with _guard:
                _inflight[key] -= 1

    def _send_locked(self, request: dict[str, Any]) -> r.OrderSendResult | None:
        conn = self._enter("order_send")
        if conn is None:
            return None
        req, error = parse_request(request)
        if req is None:
            self._fail(error)
            return None
        login = self._login
        none_fault = store.take_fault(conn, "none_result", login, "order_send")
        if none_fault is not None:
            self._fail(
                (int(none_fault.get("code", -1)), str(none_fault.get("message", "Terminal: Call failed")))
            )
            return None
        forced = store.take_fault(conn, "force_retcode", login, "order_send")
        requote = None
        if req["action"] == c.TRADE_ACTION_DEAL:
            requote = store.take_fault(conn, "requote", login, "order_send")
        liquidity = None
        deal = req["action"] == c.TRADE_ACTION_DEAL
        partial = (
            store.take_fault(conn, "partial", login, "order_send")
            if deal and forced is None and requote is None
            else None
        )
        if partial is not None:
            liquidity = Decimal(str(partial["fraction"]))
        timeout = store.take_fault(conn, "timeout_after_execute", login, "order_send")
        stall = store.take_fault(conn, "stall_after_execute", login, "order_send")
        with self._book(conn) as book:
            if forced is not None:
                outcome = Outcome(int(forced["retcode"]))
            elif requote is not None and req["symbol"] in book.specs:
                bid, ask = book.quote(req["symbol"])
                outcome = Outcome(c.TRADE_RETCODE_REQUOTE, bid=bid, ask=ask)
            else:
                outcome = process(book, req, liquidity=liquidity)
        if stall is not None:  # executed and committed; the answer is late (a bridge may die meanwhile)
            time.sleep(float(stall["seconds"]))
        if timeout is not None:
            self._fail((c.RES_E_INTERNAL_FAIL_TIMEOUT, "IPC timeout"))
            return None
        return r.OrderSendResult(
            outcome.retcode, outcome.deal, outcome.order, float(outcome.volume), float(outcome.price),
            float(outcome.bid), float(outcome.ask), c.RETCODE_COMMENTS.get(outcome.retcode, "Error"),
            next(_request_ids), 0, self._echo(request),
        )  # fmt: skip

    def positions_total(self) -> int:
        found = self.positions_get()
        return 0 if found is None else len(found)

    def positions_get(
        self, symbol: str | None = None, group: str | None = None, ticket: int | None = None
    ) -> tuple[r.TradePosition, ...] | None:
        conn = self._enter("positions_get")
        if conn is None:
            return None
        with self._book(conn) as book:
            out = []
            for pos in book.positions(symbol):
                if (ticket is None or pos["ticket"] == ticket) and group_match(pos["symbol"], group):
                    out.append(position_record(pos, book.close_price(pos), book.floating(pos)))
        return tuple(out)

    def orders_total(self) -> int:
        found = self.orders_get()
        return 0 if found is None else len(found)

    def orders_get(
        self, symbol: str | None = None, group: str | None = None, ticket: int | None = None
    ) -> tuple[r.TradeOrder, ...] | None:
        conn = self._enter("orders_get")
        if conn is None:
            return None
        with self._book(conn) as book:
            out = []
            for order in book.pending():
                if (
                    (symbol is None or order["symbol"] == symbol)
                    and (ticket is None or order["ticket"] == ticket)
                    and group_match(order["symbol"], group)
                ):
                    bid, ask = book.quote(order["symbol"])
                    current = ask if order["type"] in (c.ORDER_TYPE_BUY_LIMIT, c.ORDER_TYPE_BUY_STOP) else bid
                    out.append(order_record(order, current))
        return tuple(out)

    def _history(
        self, table: str, func: str, args: tuple[Any, ...], kw: dict[str, Any]
    ) -> list[dict[str, Any]] | None:
        conn = self._enter(func)
        if conn is None:
            return None
        group, ticket, position = kw.get("group"), kw.get("ticket"), kw.get("position")
        time_col = "time_setup_msc" if table == "orders" else "time_msc"
        sql = f"SELECT * FROM {table} WHERE login = ?"  # noqa: S608
        params: list[Any] = [self._login]
        if table == "orders":
            sql += f" AND state != {c.ORDER_STATE_PLACED}"
        if ticket is not None:
            sql += " AND ticket = ?" if table == "orders" else " AND order_ticket = ?"
            params.append(int(ticket))
        elif position is not None:
            sql += " AND position_id = ?"
            params.append(int(position))
        else:
            start = args[0] if args else kw.get("date_from")
            end = args[1] if len(args) > 1 else kw.get("date_to")
            if start is None or end is None:
                self._fail((c.RES_E_INVALID_PARAMS, "Invalid arguments"))
                return None
            sql += f" AND {time_col} >= ? AND {time_col} <= ?"
            params += [_seconds(start) * 1000, _seconds(end) * 1000 + 999]
        with self._book(conn):
            rows = [store.row_dict(row) for row in conn.execute(sql + " ORDER BY ticket", params)]
        return [row for row in rows if group_match(row["symbol"], group)]

    def history_orders_get(self, *args: Any, **kw: Any) -> tuple[r.TradeOrder, ...] | None:
        rows = self._history("orders", "history_orders_get", args, kw)
        return None if rows is None else tuple(order_record(o, o["price_current"]) for o in rows)

    def history_deals_get(self, *args: Any, **kw: Any) -> tuple[r.TradeDeal, ...] | None:
        rows = self._history("deals", "history_deals_get", args, kw)
        return None if rows is None else tuple(deal_record(d) for d in rows)

    def history_orders_total(self, date_from: Any, date_to: Any) -> int:
        found = self.history_orders_get(date_from, date_to)
        return 0 if found is None else len(found)

    def history_deals_total(self, date_from: Any, date_to: Any) -> int:
        found = self.history_deals_get(date_from, date_to)
        return 0 if found is None else len(found)
