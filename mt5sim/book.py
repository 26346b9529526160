"""Account arithmetic and the lazy trade-server loop of one account.

``Book`` works inside one open write transaction of the state file. ``evaluate`` brings the
account up to the simulated clock: expired pending orders are cancelled, triggered ones become
positions, and positions whose SL or TP the current price has crossed are closed with an
out-deal whose reason is SL or TP. It runs whenever the account's state is read or changed.

Fills: a TP closes at the TP price; an SL closes at the current price (so a gap slips); a limit
order fills at its price; a stop order fills at the current price.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from mt5sim import constants as c
from mt5sim import store
from mt5sim.specs import Spec, market_open

CENT = Decimal("0.01")
BUY_TYPES = frozenset({c.ORDER_TYPE_BUY, c.ORDER_TYPE_BUY_LIMIT, c.ORDER_TYPE_BUY_STOP})


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT)


def floor_to_step(volume: Decimal, step: Decimal) -> Decimal:
    return (volume / step).to_integral_value(rounding=ROUND_FLOOR) * step


@dataclass
class Book:
    conn: sqlite3.Connection
    login: int
    now: int  # ms on the simulated clock
    specs: dict[str, Spec] = field(default_factory=dict)
    _quotes: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)

    @classmethod
    def open(cls, conn: sqlite3.Connection, login: int) -> Book:
        return cls(conn=conn, login=login, now=store.now_ms(conn), specs=store.specs(conn))

    # ---- reference data ----------------------------------------------------------------------

    def account(self) -> dict[str, Any]:
        row = self.conn.execute("SELECT * FROM accounts WHERE login = ?", (self.login,)).fetchone()
        if row is None:
            raise LookupError(f"no account {self.login}")
        return store.row_dict(row)

    def quote(self, symbol: str) -> tuple[Decimal, Decimal]:
        if symbol not in self._quotes:
            self._quotes[symbol] = store.quote(self.conn, self.specs[symbol], self.now)
        return self._quotes[symbol]

    def tradeable(self, spec: Spec) -> bool:
        if store.ignore_hours(self.conn):
            return True
        return market_open(spec.session, datetime.fromtimestamp(self.now / 1000, tz=UTC))

    def convert(self, amount: Decimal, src: str, dst: str, _depth: int = 0) -> Decimal:
        if src == dst:
            return amount
        for spec in self.specs.values():
            if spec.calc_mode != c.SYMBOL_CALC_MODE_FOREX:
                continue
            if (spec.currency_base, spec.currency_profit) == (src, dst):
                return amount * self.quote(spec.name)[0]
            if (spec.currency_base, spec.currency_profit) == (dst, src):
                return amount / self.quote(spec.name)[1]
        if _depth == 0 and "USD" not in (src, dst):
            return self.convert(self.convert(amount, src, "USD", 1), "USD", dst, 1)
        raise ValueError(f"no conversion from {src} to {dst}")

    # ---- positions and margin ----------------------------------------------------------------

    def positions(self, symbol: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM positions WHERE login = ?"
        args: list[Any] = [self.login]
        if symbol is not None:
            sql, args = sql + " AND symbol = ?", [*args, symbol]
        return [store.row_dict(r) for r in self.conn.execute(sql + " ORDER BY ticket", args)]

    def pending(self) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT * FROM orders WHERE login = ? AND state = ? ORDER BY ticket",
            (self.login, c.ORDER_STATE_PLACED),
        )
        return [store.row_dict(r) for r in rows]

    def close_price(self, pos: dict[str, Any]) -> Decimal:
        bid, ask = self.quote(pos["symbol"])
        return bid if pos["type"] == c.POSITION_TYPE_BUY else ask

    def profit(self, symbol: str, ptype: int, volume: Decimal, open_: Decimal, close: Decimal) -> Decimal:
        spec = self.specs[symbol]
        direction = 1 if ptype == c.POSITION_TYPE_BUY else -1
        raw = (close - open_) * volume * spec.contract_size * direction
        return money(self.convert(raw, spec.currency_profit, self.account()["currency"]))

    def floating(self, pos: dict[str, Any]) -> Decimal:
        return self.profit(
            pos["symbol"], pos["type"], pos["volume"], pos["price_open"], self.close_price(pos)
        )

    def margin_for(self, symbol: str, volume: Decimal, price: Decimal) -> Decimal:
        spec = self.specs[symbol]
        acct = self.account()
        if spec.calc_mode in (c.SYMBOL_CALC_MODE_FOREX, c.SYMBOL_CALC_MODE_FOREX_NO_LEVERAGE):
            leverage = 1 if spec.calc_mode == c.SYMBOL_CALC_MODE_FOREX_NO_LEVERAGE else acct["leverage"]
            raw, ccy = volume * spec.contract_size / leverage, spec.currency_margin
        else:
            raw, ccy = volume * spec.contract_size * price / acct["leverage"], spec.currency_profit
        return money(self.convert(raw, ccy, acct["currency"]))

    def state(self) -> dict[str, Decimal]:
        acct = self.account()
        positions = self.positions()
        profit = sum((self.floating(p) for p in positions), Decimal(0))
        margin = sum(
            (self.margin_for(p["symbol"], p["volume"], p["price_open"]) for p in positions), Decimal(0)
        )
        equity = acct["balance"] + profit
        level = money(equity / margin * 100) if margin else Decimal(0)
        return {
            "balance": acct["balance"],
            "profit": profit,
            "equity": equity,
            "margin": margin,
            "margin_free": equity - margin,
            "margin_level": level,
        }

    # ---- booking -----------------------------------------------------------------------------

    def add_deal(self, **deal: Any) -> int:
        ticket = store.next_ticket(self.conn, "deal")
        row = {"commission": Decimal(0), "swap": Decimal(0), "profit": Decimal(0), **deal}
        row.update(ticket=ticket, login=self.login, time_msc=self.now)
        self._insert("deals", row)
        return ticket

    def add_order(self, **order: Any) -> int:
        ticket = order.pop("ticket", None) or store.next_ticket(self.conn, "order")
        row = {"time_setup_msc": self.now, "time_done_msc": self.now, "time_expiration": 0, **order}
        row.update(ticket=ticket, login=self.login)
        self._insert("orders", row)
        return ticket

    def _insert(self, table: str, row: dict[str, Any]) -> None:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        values = [str(v) if isinstance(v, Decimal) else v for v in row.values()]
        self.conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", values)  # noqa: S608

    def open_position(
        self, order_ticket: int, symbol: str, ptype: int, volume: Decimal, price: Decimal, req: dict[str, Any]
    ) -> int:
        self._insert(
            "positions",
            {
                "ticket": order_ticket,
                "login": self.login,
                "symbol": symbol,
                "type": ptype,
                "volume": volume,
                "price_open": price,
                "sl": req["sl"],
                "tp": req["tp"],
                "magic": req["magic"],
                "comment": req["comment"],
                "reason": c.POSITION_REASON_EXPERT,
                "time_msc": self.now,
                "time_update_msc": self.now,
            },
        )
        return self.add_deal(
            order_ticket=order_ticket,
            type=c.DEAL_TYPE_BUY if ptype == c.POSITION_TYPE_BUY else c.DEAL_TYPE_SELL,
            entry=c.DEAL_ENTRY_IN,
            magic=req["magic"],
            position_id=order_ticket,
            reason=c.DEAL_REASON_EXPERT,
            volume=volume,
            price=price,
            symbol=symbol,
            comment=req["comment"],
        )

    def close(
        self,
        pos: dict[str, Any],
        volume: Decimal,
        price: Decimal,
        *,
        reason: int,
        comment: str,
        magic: int,
        filling: int = c.ORDER_FILLING_FOK,
    ) -> tuple[int, int]:
        """Book a (partial) close: a filled order, an out-deal with its profit, the balance change."""
        deal_type = c.DEAL_TYPE_SELL if pos["type"] == c.POSITION_TYPE_BUY else c.DEAL_TYPE_BUY
        order_ticket = self.add_order(
            symbol=pos["symbol"],
            type=deal_type,  # ORDER_TYPE_BUY/SELL have the same values as DEAL_TYPE_BUY/SELL
            type_time=c.ORDER_TIME_GTC,
            type_filling=filling,
            state=c.ORDER_STATE_FILLED,
            magic=magic,
            position_id=pos["ticket"],
            reason=reason,
            volume_initial=volume,
            volume_current=Decimal(0),
            price_open=price,
            sl=Decimal(0),
            tp=Decimal(0),
            price_current=price,
            comment=comment,
        )
        profit = self.profit(pos["symbol"], pos["type"], volume, pos["price_open"], price)
        deal = self.add_deal(
            order_ticket=order_ticket,
            type=deal_type,
            entry=c.DEAL_ENTRY_OUT,
            magic=magic,
            position_id=pos["ticket"],
            reason=reason,
            volume=volume,
            price=price,
            profit=profit,
            symbol=pos["symbol"],
            comment=comment,
        )
        self.conn.execute(
            "UPDATE accounts SET balance = ? WHERE login = ?",
            (str(self.account()["balance"] + profit), self.login),
        )
        rest = pos["volume"] - volume
        if rest > 0:
            self.conn.execute(
                "UPDATE positions SET volume = ?, time_update_msc = ? WHERE ticket = ?",
                (str(rest), self.now, pos["ticket"]),
            )
        else:
            self.conn.execute("DELETE FROM positions WHERE ticket = ?", (pos["ticket"],))
        return order_ticket, deal

    # ---- the lazy server loop ----------------------------------------------------------------

    def evaluate(self) -> None:
        for order in self.pending():
            spec = self.specs.get(order["symbol"])
            if spec is None:
                continue
            if order["time_expiration"] and self.now >= order["time_expiration"] * 1000:
                self._finish_order(order, c.ORDER_STATE_EXPIRED, order["time_expiration"] * 1000)
            elif self.tradeable(spec):
                self._maybe_trigger(order)
        for pos in self.positions():
            spec = self.specs.get(pos["symbol"])
            if spec is not None and self.tradeable(spec):
                self._maybe_stop_out(pos, spec)

    def _finish_order(self, order: dict[str, Any], state: int, done_ms: int) -> None:
        self.conn.execute(
            "UPDATE orders SET state = ?, time_done_msc = ? WHERE ticket = ?",
            (state, done_ms, order["ticket"]),
        )

    def _maybe_trigger(self, order: dict[str, Any]) -> None:
        bid, ask = self.quote(order["symbol"])
        price, otype = order["price_open"], order["type"]
        fill = {
            c.ORDER_TYPE_BUY_LIMIT: price if ask <= price else None,
            c.ORDER_TYPE_SELL_LIMIT: price if bid >= price else None,
            c.ORDER_TYPE_BUY_STOP: ask if ask >= price else None,
            c.ORDER_TYPE_SELL_STOP: bid if bid <= price else None,
        }.get(otype)
        if fill is None:
            return
        volume = order["volume_current"]
        state = self.state()
        if self.margin_for(order["symbol"], volume, fill) > state["margin_free"]:
            self._finish_order(order, c.ORDER_STATE_REJECTED, self.now)
            return
        ptype = c.POSITION_TYPE_BUY if otype in BUY_TYPES else c.POSITION_TYPE_SELL
        self.open_position(order["ticket"], order["symbol"], ptype, volume, fill, order)
        self.conn.execute(
            "UPDATE orders SET state = ?, time_done_msc = ?, volume_current = '0', position_id = ?, "
            "price_current = ? WHERE ticket = ?",
            (c.ORDER_STATE_FILLED, self.now, order["ticket"], str(fill), order["ticket"]),
        )

    def _maybe_stop_out(self, pos: dict[str, Any], spec: Spec) -> None:
        price = self.close_price(pos)
        buy = pos["type"] == c.POSITION_TYPE_BUY
        sl, tp = pos["sl"], pos["tp"]
        if sl > 0 and (price <= sl if buy else price >= sl):
            reason, fill, level, tag = c.DEAL_REASON_SL, price, sl, "sl"
        elif tp > 0 and (price >= tp if buy else price <= tp):
            reason, fill, level, tag = c.DEAL_REASON_TP, tp, tp, "tp"
        else:
            return
        comment = f"[{tag} {level:.{spec.digits}f}]"
        self.close(pos, pos["volume"], fill, reason=reason, comment=comment, magic=pos["magic"])
